import { memo, useMemo, useRef } from "react";
import Form from "@rjsf/core";
import validator from "@rjsf/validator-ajv8";
import { onlyDefaultsAdded } from "../document.js";
import { humanErrors, uiSchemaFor } from "../params.js";
import { ChoiceWidget, ScalarListField } from "./ParamFields.jsx";

const fields = { scalarList: ScalarListField };
const widgets = { choice: ChoiceWidget };
const NO_CHOICES = {};
// Never invent array items the user did not type (an empty optional list stays absent).
const defaultsBehaviour = { arrayMinItems: { populate: "never" } };

/**
 * The block's parameter form, generated from its JSON Schema by react-jsonschema-form with the ajv8
 * validator (formats such as "date" included): live validation, inline errors, help text and
 * defaults from the spec. Changes count only once the user has touched the form, so that merely
 * selecting a node never alters the document; and a change that only fills in defaults (the form
 * does that when the parameters change from outside: an undo, someone else's live edit) is not
 * written back as a change of this user's. Lists are typed on one line; names the data offer
 * (``choices``: parameter → names, from the server's check) are one click away; errors use the
 * server's wording.
 */
function ParamsForm({ nodeId, schema, params, onChange, choices = NO_CHOICES }) {
  const touched = useRef(false);
  const uiSchema = useMemo(() => uiSchemaFor(schema, choices), [schema, choices]);
  const formContext = useMemo(() => ({ choices }), [choices]);
  const touch = () => {
    touched.current = true;
  };
  return (
    <div onInputCapture={touch} onChangeCapture={touch} onClickCapture={touch} onKeyDownCapture={touch}>
      <Form
        className="params-form"
        schema={schema || { type: "object", properties: {} }}
        uiSchema={uiSchema}
        fields={fields}
        widgets={widgets}
        formContext={formContext}
        transformErrors={humanErrors}
        formData={params}
        validator={validator}
        idPrefix={`param-${nodeId}`}
        experimental_defaultFormStateBehavior={defaultsBehaviour}
        liveValidate
        showErrorList={false}
        noHtml5Validate
        onChange={(event) => {
          if (touched.current && !onlyDefaultsAdded(schema, params, event.formData)) onChange(event.formData);
        }}
        onSubmit={() => {}}
      />
    </div>
  );
}

export default memo(ParamsForm);
