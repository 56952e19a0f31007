import { useEffect, useRef, useState } from "react";
import { api, errorText } from "../api.js";

/** A native modal <dialog>: focus is trapped and Escape closes it. */
function Modal({ open, onClose, labelId, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog ref={ref} className="ed-dialog" aria-labelledby={labelId} onClose={onClose}>
      {open ? children : null}
    </dialog>
  );
}

export function RunDialog({ open, onClose, config, pipeline, dirty, onSave }) {
  const targets = config.targets || [];
  const spaces = config.data_spaces || [];
  const [target, setTarget] = useState(targets[0] || "");
  const [space, setSpace] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (saveFirst) => {
    setBusy(true);
    setError("");
    try {
      let id = pipeline && pipeline.id;
      if (saveFirst || !id) {
        const saved = await onSave();
        if (!saved) {
          setError("The pipeline could not be saved; see the problems list.");
          return;
        }
        id = saved.id;
      }
      const body = { target };
      if (space) body.data_space = space;
      const run = await api("POST", config.urls.runs.replace("{id}", id), body);
      window.location.assign(config.urls.run_page.replace("{id}", run.id));
    } catch (caught) {
      const errors = caught && caught.body && caught.body.errors;
      setError(errors ? errors.map((issue) => issue.message).join(" ") : errorText(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal open={open} onClose={onClose} labelId="run-dialog-title">
      <h2 id="run-dialog-title">Run the pipeline</h2>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          submit(dirty);
        }}
      >
        <div className="field">
          <label htmlFor="run-target">Compute target</label>
          <select id="run-target" value={target} onChange={(event) => setTarget(event.target.value)}>
            {targets.map((name) => <option key={name} value={name}>{name}</option>)}
          </select>
        </div>
        {spaces.length ? (
          <div className="field">
            <label htmlFor="run-space">Deliver results to data space</label>
            <select id="run-space" value={space} onChange={(event) => setSpace(event.target.value)}>
              <option value="">(none)</option>
              {spaces.map((entry) => (
                <option key={entry.id ?? entry} value={entry.id ?? entry}>{entry.name ?? entry}</option>
              ))}
            </select>
          </div>
        ) : null}
        <p>
          {dirty || !pipeline
            ? "The pipeline has unsaved changes: it is saved as a new version, then that version runs."
            : `Runs the saved version v${pipeline.version}.`}
        </p>
        {error ? <p role="alert" className="field-error">{error}</p> : null}
        <div className="dialog-actions">
          <button type="submit" disabled={busy || !target}>{dirty || !pipeline ? "Save and run" : "Submit run"}</button>
          <button type="button" className="secondary" onClick={onClose}>Cancel</button>
        </div>
      </form>
    </Modal>
  );
}

export function TemplateDialog({ open, onClose, config, onChoose }) {
  const [templates, setTemplates] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!open || templates) return;
    api("GET", config.urls.templates)
      .then((data) => setTemplates(Array.isArray(data) ? data : (data && data.results) || []))
      .catch((caught) => setError(caught.status === 404 ? "The template gallery is not available yet." : errorText(caught)));
  }, [open, templates, config.urls.templates]);
  return (
    <Modal open={open} onClose={onClose} labelId="template-dialog-title">
      <h2 id="template-dialog-title">New pipeline from a template</h2>
      {error ? <p role="alert" className="field-error">{error}</p> : null}
      {!templates && !error ? <p>Loading templates…</p> : null}
      {templates && templates.length === 0 ? <p>There are no templates yet.</p> : null}
      {templates && templates.length ? (
        <ul className="template-list">
          {templates.map((template) => (
            <li key={template.slug}>
              <h3>{template.title}</h3>
              <p className="meta">{template.sector}</p>
              <p>{template.summary}</p>
              <button type="button" onClick={() => onChoose(template)} aria-label={`Use template ${template.title}`}>Use this template</button>
            </li>
          ))}
        </ul>
      ) : null}
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={onClose}>Close</button>
      </div>
    </Modal>
  );
}
