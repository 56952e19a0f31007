import { useEffect, useState } from "react";
import { formatList, parseList } from "../params.js";

// Custom fields of the parameter form (react-jsonschema-form): lists typed on one line, and names the
// data offer (variables of the file, columns of the table upstream) one click away.

function Offered({ id, names, taken, onPick }) {
  const left = names.filter((name) => !taken.includes(name));
  if (!left.length) return null;
  return (
    <div className="list-field-known" id={`${id}__offered`} role="group" aria-label="In the data">
      <span className="meta">In the data:</span>
      {left.map((name) => (
        <button key={name} type="button" className="secondary small" onClick={() => onPick(name)} aria-label={`Use ${name}`}>
          {name}
        </button>
      ))}
    </div>
  );
}

/** A list of strings or numbers as one text field, items separated by commas. */
export function ScalarListField(props) {
  const { schema, uiSchema, fieldPathId, formData, onChange, required, disabled, readonly, rawErrors, name, registry } = props;
  const itemType = schema.items && schema.items.type;
  const id = fieldPathId.$id;
  const [text, setText] = useState(() => formatList(formData));
  // A change from outside (undo, someone else's edit) replaces what is typed, unless it means the same.
  useEffect(() => {
    if (JSON.stringify(parseList(text, itemType)) !== JSON.stringify(formData)) setText(formatList(formData));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [formData]);
  const set = (value) => {
    setText(value);
    onChange(parseList(value, itemType), fieldPathId.path);
  };
  const label = (uiSchema && uiSchema["ui:title"]) || schema.title || name;
  const names = (registry.formContext && registry.formContext.choices && registry.formContext.choices[name]) || [];
  const described = [schema.description ? `${id}__description` : null, names.length ? `${id}__offered` : null].filter(Boolean);
  return (
    <div className="form-group list-field">
      <label className="control-label" htmlFor={id}>
        {label}
        {required ? <span className="required">*</span> : null}
      </label>
      {schema.description ? (
        <div id={`${id}__description`} className="field-description">{schema.description} Separate several with commas.</div>
      ) : null}
      <input
        id={id}
        className="form-control"
        type="text"
        value={text}
        disabled={disabled || readonly}
        aria-invalid={rawErrors && rawErrors.length ? "true" : "false"}
        aria-describedby={described.join(" ") || undefined}
        onChange={(event) => set(event.target.value)}
      />
      {disabled || readonly ? null : (
        <Offered id={id} names={names} taken={Array.isArray(formData) ? formData.map(String) : []} onPick={(picked) => set(text.trim() ? `${text.replace(/[,\s]*$/, "")}, ${picked}` : picked)} />
      )}
    </div>
  );
}

/** A text parameter that names one variable or column: a text field with the data's names offered. */
export function ChoiceWidget(props) {
  const { id, value, onChange, onBlur, onFocus, disabled, readonly, rawErrors, registry, name, schema } = props;
  const names = (registry.formContext && registry.formContext.choices && registry.formContext.choices[name]) || [];
  const described = [schema.description ? `${id}__description` : null, `${id}__offered`];
  return (
    <>
      <input
        id={id}
        className="form-control"
        type="text"
        value={value ?? ""}
        disabled={disabled || readonly}
        aria-invalid={rawErrors && rawErrors.length ? "true" : "false"}
        aria-describedby={described.filter(Boolean).join(" ")}
        onChange={(event) => onChange(event.target.value === "" ? undefined : event.target.value)}
        onBlur={(event) => onBlur(id, event.target.value)}
        onFocus={(event) => onFocus(id, event.target.value)}
      />
      {disabled || readonly ? null : <Offered id={id} names={names} taken={value ? [String(value)] : []} onPick={(picked) => onChange(picked)} />}
    </>
  );
}
