import { Suspense, lazy, useEffect, useState } from "react";

// The form library (rjsf + ajv) loads on first use, keeping the editor's first paint light.
const ParamsForm = lazy(() => import("./ParamsForm.jsx"));
// The area map (d3-geo, coastlines) likewise, on the first block with an area or a period.
const DataExtent = lazy(() => import("./DataExtent.jsx"));
import { NODE_ID_RE } from "../document.js";
import { portClass } from "../ports.js";
import { fixLabel, fixOf } from "../fixes.js";
import TargetPicker from "./TargetPicker.jsx";

function NodeIdField({ node, onRename }) {
  const current = node.data.docId !== undefined ? String(node.data.docId) : node.id;
  const [value, setValue] = useState(current);
  const [error, setError] = useState("");
  useEffect(() => {
    setValue(current);
    setError("");
  }, [current]);
  const commit = () => {
    if (value === current) return;
    const problem = onRename(node.id, value);
    setError(problem || "");
  };
  return (
    <div className="field">
      <label htmlFor="node-id-input">Node id</label>
      <input
        id="node-id-input"
        value={value}
        aria-invalid={error ? "true" : "false"}
        aria-describedby={error ? "node-id-error" : undefined}
        onChange={(event) => setValue(event.target.value)}
        onBlur={commit}
        onKeyDown={(event) => {
          if (event.key === "Enter") commit();
        }}
      />
      {error ? <p id="node-id-error" className="field-error">{error}</p> : null}
    </div>
  );
}

// The node's id in the document (the server's choices and extents are keyed by it).
const docIdOf = (node) => (node.data.docId !== undefined ? node.data.docId : node.id);

function Inspector({ node, catalog, issues, choices, extent, readOnly, onParams, onLabel, onVersion, onRename, onDelete, onTarget }) {
  const spec = catalog.get(node.data.block, node.data.version);
  const versions = catalog.versions(node.data.block);
  const params = node.data.params && typeof node.data.params === "object" ? node.data.params : {};
  return (
    <section className="inspector" aria-labelledby="inspector-title">
      <h2 id="inspector-title">{node.data.label || (spec ? spec.title : String(node.data.block))}</h2>
      <p className="meta">
        <code>{String(node.data.block)}</code>
        {spec ? ` · ${spec.category}` : " · unknown block"}
      </p>
      {issues && issues.length ? (
        <ul className="inspector-issues" aria-label="Problems of this node">
          {issues.map((issue, index) => <li key={index} data-code={issue.code}>{issue.message}</li>)}
        </ul>
      ) : null}
      <NodeIdField node={node} onRename={onRename} />
      <div className="field">
        <label htmlFor="node-label-input">Label (optional)</label>
        <input
          id="node-label-input"
          value={node.data.label || ""}
          onChange={(event) => onLabel(node.id, event.target.value)}
        />
      </div>
      {onTarget ? <TargetPicker node={node} onTarget={onTarget} /> : null}
      {versions.length > 1 || !spec ? (
        <div className="field">
          <label htmlFor="node-version-select">Block version</label>
          <select id="node-version-select" value={String(node.data.version)} onChange={(event) => onVersion(node.id, event.target.value)}>
            {!versions.includes(node.data.version) ? <option value={String(node.data.version)}>{String(node.data.version)} (not available)</option> : null}
            {versions.map((version) => <option key={version} value={version}>{version}</option>)}
          </select>
        </div>
      ) : (
        <p className="meta">Version {spec.version}</p>
      )}
      {spec ? (
        <>
          <h3>Parameters</h3>
          {Object.keys((spec.parameters && spec.parameters.properties) || {}).length ? (
            <Suspense fallback={<p>Loading the form…</p>}>
              <DataExtent
                nodeId={node.id}
                schema={spec.parameters}
                extent={extent}
                params={params}
                onParams={(params) => onParams(node.id, params)}
                readOnly={readOnly}
              />
              <ParamsForm
                key={`${node.id}@${spec.version}`}
                nodeId={node.id}
                schema={spec.parameters}
                params={params}
                onChange={(params) => onParams(node.id, params)}
                choices={choices}
              />
            </Suspense>
          ) : (
            <p>This block has no parameters.</p>
          )}
          <h3>Ports</h3>
          <ul className="port-list">
            {spec.inputs.map((port) => (
              <li key={`in-${port.name}`}><span className={portClass(port.type)} aria-hidden="true" /> in <strong>{port.name}</strong> ({port.type}{port.required === false ? ", optional" : ""}) — {port.description || port.title}</li>
            ))}
            {spec.outputs.map((port) => (
              <li key={`out-${port.name}`}><span className={portClass(port.type)} aria-hidden="true" /> out <strong>{port.name}</strong> ({port.type}) — {port.description || port.title}</li>
            ))}
          </ul>
          <h3>About this block</h3>
          <div className="block-description" dangerouslySetInnerHTML={{ __html: spec.description_html || "" }} />
        </>
      ) : null}
      <p>
        <button type="button" className="danger" onClick={() => onDelete([node.id])}>Delete node</button>
      </p>
    </section>
  );
}

function Problems({ issues, checking, onFocusIssue, onFix, readOnly }) {
  return (
    <section className="problems" aria-labelledby="problems-title">
      <h2 id="problems-title">
        Problems <span className="count">{checking ? "(checking…)" : `(${issues.length})`}</span>
      </h2>
      {issues.length === 0 ? (
        <p className="ok">{checking ? "Checking the pipeline…" : "No problems found."}</p>
      ) : (
        <ul className="problem-list">
          {issues.map((issue, index) => (
            <li key={index} data-code={issue.code}>
              <button type="button" className="link" onClick={() => onFocusIssue(issue)} disabled={!issue.nodeRef}>
                {issue.node ? <code>{issue.node}{issue.port ? `.${issue.port}` : ""}</code> : null} {issue.message}
              </button>
              {fixOf(issue) && !readOnly ? (
                <button type="button" className="small fix-button" title={fixOf(issue).title} onClick={() => onFix(issue)}>
                  {fixLabel(fixOf(issue))}
                </button>
              ) : null}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function Versions({ pipeline, versions, onRestore, readOnly }) {
  if (!pipeline) return null;
  return (
    <details className="versions">
      <summary>Version history ({versions.length})</summary>
      <ul>
        {versions.map((version) => (
          <li key={version.number}>
            <strong>v{version.number}</strong> {new Date(version.created_at).toLocaleString()}
            {version.message ? ` — ${version.message}` : ""}{" "}
            {readOnly ? null : <button type="button" className="small" onClick={() => onRestore(version)} aria-label={`Restore version ${version.number}`}>Restore</button>}
          </li>
        ))}
      </ul>
    </details>
  );
}

export default function SidePanel(props) {
  const { selected, catalog, issuesByNode, readOnly } = props;
  return (
    <aside className="ed-side" aria-label="Details">
      {/* first and sticky: what stops the pipeline from running stays in view while parameters scroll */}
      <Problems issues={props.issues} checking={props.checking} onFocusIssue={props.onFocusIssue} onFix={props.onFix} readOnly={readOnly} />
      {/* read-only: every field and button of the inspector is disabled (a viewer's editor) */}
      <fieldset className="plain" disabled={Boolean(readOnly)}>
      {selected.length === 1 ? (
        <Inspector
          node={selected[0]}
          catalog={catalog}
          issues={issuesByNode.get(selected[0].id)}
          choices={(props.choices || {})[docIdOf(selected[0])]}
          extent={(props.extents || {})[docIdOf(selected[0])]}
          readOnly={Boolean(readOnly)}
          onParams={props.onParams}
          onLabel={props.onLabel}
          onVersion={props.onVersion}
          onRename={props.onRename}
          onDelete={props.onDelete}
          onTarget={props.onTarget}
        />
      ) : selected.length > 1 && !readOnly ? (
        <section className="inspector" aria-labelledby="inspector-title">
          <h2 id="inspector-title">{selected.length} nodes selected</h2>
          <p>
            <button type="button" onClick={props.onCopy}>Copy</button>{" "}
            <button type="button" className="danger" onClick={() => props.onDelete(selected.map((node) => node.id))}>Delete</button>
          </p>
        </section>
      ) : (
        <section className="inspector" aria-labelledby="inspector-title">
          <h2 id="inspector-title">Pipeline</h2>
          <p>Select a block on the canvas to set its parameters.</p>
          <div className="field">
            <label htmlFor="pipeline-description">Description</label>
            <textarea id="pipeline-description" rows={3} value={props.description} onChange={(event) => props.onDescription(event.target.value)} />
          </div>
        </section>
      )}
      </fieldset>
      <Versions pipeline={props.pipeline} versions={props.versions} onRestore={props.onRestore} readOnly={readOnly} />
    </aside>
  );
}
