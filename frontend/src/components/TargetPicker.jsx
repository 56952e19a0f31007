import { useEffect, useState } from "react";

import { api, errorText } from "../api.js";

// The compute targets the user may use, asked for once per page load (they change rarely).
let targetsPromise = null;

export function loadTargets() {
  if (!targetsPromise) {
    targetsPromise = api("GET", "/api/compute-targets/?limit=1000")
      .then((page) => (page.results || []).filter((target) => target.enabled))
      .catch((error) => {
        targetsPromise = null; // try again next time the panel opens
        throw error;
      });
  }
  return targetsPromise;
}

/** The node's "Compute target" select: where its step runs (the node's `target` in the document);
 * empty means the run's target. Shows each target's title, and the description of the chosen one. */
export default function TargetPicker({ node, onTarget }) {
  const [targets, setTargets] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    loadTargets().then(
      (loaded) => live && setTargets(loaded),
      (failure) => live && setError(errorText(failure)),
    );
    return () => {
      live = false;
    };
  }, []);
  const value = typeof node.data.target === "string" ? node.data.target : "";
  const list = targets || [];
  const fallback = list.find((target) => target.is_default);
  const chosen = list.find((target) => target.name === value) || (value ? null : fallback);
  const unknown = value && targets && !chosen;
  return (
    <div className="field target-picker">
      <label htmlFor="node-target-select">Compute target</label>
      <select
        id="node-target-select"
        value={value}
        disabled={!targets}
        aria-describedby="node-target-description"
        onChange={(event) => onTarget(node.id, event.target.value)}
      >
        <option value="">{fallback ? `Run's target (default: ${fallback.title})` : "Run's target"}</option>
        {unknown ? <option value={value}>{value} (not available to you)</option> : null}
        {list.map((target) => (
          <option key={target.name} value={target.name} title={target.description}>
            {target.title}
          </option>
        ))}
      </select>
      <p id="node-target-description" className="meta target-description">
        {error
          ? `Compute targets could not be loaded: ${error}`
          : !targets
            ? "Loading compute targets…"
            : unknown
              ? `"${value}" is not a compute target you may use; the run will be refused.`
              : chosen
                ? chosen.description
                : ""}
      </p>
    </div>
  );
}
