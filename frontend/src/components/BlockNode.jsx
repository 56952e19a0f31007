import { memo, useContext } from "react";
import { Handle, Position } from "@xyflow/react";
import { inHandle, outHandle } from "../document.js";
import { portClass } from "../ports.js";
import { EditorContext, IssuesContext } from "../context.js";
import { fixLabel, fixOf } from "../fixes.js";

function Port({ nodeId, port, direction, issues, pending, onActivate }) {
  const isInput = direction === "in";
  const handleId = isInput ? inHandle(port.name) : outHandle(port.name);
  const chosen = pending && pending.nodeId === nodeId && pending.direction === direction && pending.port === port.name;
  const optional = isInput && port.required === false;
  return (
    <li className={`ed-port port-${direction}${issues ? " port-error" : ""}${chosen ? " port-pending" : ""}`} data-port={port.name} data-direction={direction}>
      <Handle
        type={isInput ? "target" : "source"}
        position={isInput ? Position.Left : Position.Right}
        id={handleId}
        className={portClass(port.type)}
        title={`${port.title || port.name}: ${port.type}`}
      />
      <button
        type="button"
        className="port-button nodrag"
        aria-pressed={chosen ? "true" : "false"}
        title={issues ? issues.map((issue) => issue.message).join("\n") : port.description || port.title}
        onClick={(event) => {
          event.stopPropagation();
          onActivate(nodeId, direction, port.name);
        }}
      >
        <span className="visually-hidden">{isInput ? "Input " : "Output "}</span>
        <span className={`port-name${optional ? " optional" : ""}`}>{port.name}</span>{" "}
        <span className="port-type">({port.type})</span>
        <span className="visually-hidden"> of {nodeId}{optional ? ", optional" : ""}</span>
      </button>
    </li>
  );
}

function BlockNode({ id, data, selected }) {
  const { catalog, pending, onPortActivate } = useContext(EditorContext);
  const { byNode, byPort, applyFix } = useContext(IssuesContext);
  const spec = catalog.get(data.block, data.version);
  const issues = byNode.get(id);
  const docId = data.docId !== undefined ? String(data.docId) : id;
  const title = data.label || (spec ? spec.title : String(data.block));
  return (
    <div className={`block-node${issues ? " has-errors" : ""}${selected ? " is-selected" : ""}${spec ? ` cat-${spec.category}` : " unknown"}`} data-node-id={docId}>
      <div className="block-head">
        <span className="block-title">{title}</span>
        <span className="block-version">v{String(data.version)}</span>
      </div>
      <div className="block-sub">
        <code>{docId}</code>
        {issues ? <span className="error-count" aria-label={`${issues.length} problem(s)`}>{issues.length} ⚠</span> : null}
      </div>
      {spec ? (
        <div className="block-ports">
          {spec.inputs.length ? (
            <ul className="ports-in" aria-label="Inputs">
              {spec.inputs.map((port) => (
                <Port key={port.name} nodeId={id} port={port} direction="in" issues={byPort.get(`${id}|in|${port.name}`)} pending={pending} onActivate={onPortActivate} />
              ))}
            </ul>
          ) : null}
          {spec.outputs.length ? (
            <ul className="ports-out" aria-label="Outputs">
              {spec.outputs.map((port) => (
                <Port key={port.name} nodeId={id} port={port} direction="out" issues={byPort.get(`${id}|out|${port.name}`)} pending={pending} onActivate={onPortActivate} />
              ))}
            </ul>
          ) : null}
        </div>
      ) : (
        <p className="block-unknown">Unknown block {String(data.block)}@{String(data.version)}</p>
      )}
      {issues ? (
        <ul className="node-issues">
          {issues.map((issue, index) => (
            <li key={index} data-code={issue.code} title={issue.message}>
              <span className="issue-text">{issue.message}</span>
              {fixOf(issue) && applyFix ? (
                <button
                  type="button"
                  className="fix-button nodrag"
                  title={fixOf(issue).title}
                  onClick={(event) => {
                    event.stopPropagation();
                    applyFix(issue);
                  }}
                >
                  {fixLabel(fixOf(issue))}
                </button>
              ) : null}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

export default memo(BlockNode);
