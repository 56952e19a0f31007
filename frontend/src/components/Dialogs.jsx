import { useEffect, useRef, useState } from "react";
import { api, errorText } from "../api.js";
import { loadTargets } from "./TargetPicker.jsx";

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
  const [target, setTarget] = useState(targets[0] || "");
  // Where the results are delivered: the spaces the user may write to, and their last choice for
  // this pipeline (GET /api/pipelines/{id}/delivery-choice/), asked for when the dialog opens.
  const [spaces, setSpaces] = useState([]);
  const [space, setSpace] = useState("");
  const [folder, setFolder] = useState("");
  // Off: every step executes again (a model with a random seed, data that changed at its source).
  const [reuse, setReuse] = useState(true);
  // Targets by their titles ("Cloud workers"), not their internal names, once those are loaded.
  const [titles, setTitles] = useState({});
  useEffect(() => {
    if (!open) return undefined;
    let live = true;
    loadTargets().then(
      (loaded) => live && setTitles(Object.fromEntries(loaded.map((entry) => [entry.name, entry.title]))),
      () => {}, // the names stay
    );
    return () => {
      live = false;
    };
  }, [open]);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const pipelineId = pipeline && pipeline.id;
  useEffect(() => {
    if (!open || !pipelineId) return undefined;
    let live = true;
    api("GET", `/api/pipelines/${pipelineId}/delivery-choice/`).then(
      (options) => {
        if (!live) return;
        setSpaces(options.spaces || []);
        if (options.choice) {
          setSpace(options.choice.space);
          setFolder(options.choice.folder);
        }
      },
      () => live && setSpaces([]), // delivery can still be chosen on the run page
    );
    return () => {
      live = false;
    };
  }, [open, pipelineId]);

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
      const run = await api("POST", config.urls.runs.replace("{id}", id), { target, cache: reuse });
      if (space) {
        try {
          await api("POST", `/api/runs/${run.id}/delivery/`, { space, folder });
        } catch (caught) {
          // The run is submitted: say why delivery was refused; it can be chosen on the run page.
          setError(`The run started, but its delivery was refused: ${errorText(caught)}`);
          window.setTimeout(() => window.location.assign(config.urls.run_page.replace("{id}", run.id)), 4000);
          return;
        }
      }
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
            {targets.map((name) => <option key={name} value={name}>{titles[name] || name}</option>)}
          </select>
        </div>
        {spaces.length ? (
          <>
            <div className="field">
              <label htmlFor="run-space">Deliver results to data space</label>
              <select id="run-space" value={space} onChange={(event) => setSpace(event.target.value)}>
                <option value="">(do not deliver)</option>
                {spaces.map((entry) => (
                  <option key={entry.name} value={entry.name}>{entry.title} ({entry.name})</option>
                ))}
              </select>
            </div>
            {space ? (
              <div className="field">
                <label htmlFor="run-folder">Folder in the space</label>
                <input
                  id="run-folder"
                  type="text"
                  value={folder}
                  maxLength={1000}
                  placeholder="results/2026"
                  onChange={(event) => setFolder(event.target.value)}
                />
              </div>
            ) : null}
          </>
        ) : null}
        <div className="field checkbox-field">
          <input id="run-reuse" type="checkbox" checked={reuse} onChange={(event) => setReuse(event.target.checked)} aria-describedby="run-reuse-help" />
          <label htmlFor="run-reuse">Reuse results of identical earlier steps</label>
          <p id="run-reuse-help" className="meta">
            A step with the same block version, parameters and inputs as one that succeeded before is not executed
            again. Untick to execute every step.
          </p>
        </div>
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
              <button type="button" onClick={() => onChoose(template)} aria-label={`Use template ${template.title}`}>Use template</button>
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
