// The review of a refused save: someone saved a newer version after the one this editor started
// from. Shows both sides and lets the person merge (their version with my changes on top) or keep
// mine as the next version on purpose — never a silent overwrite.
import { useEffect, useRef } from "react";
import "../collab/collab.css";

function Changes({ diff }) {
  if (!diff) return null;
  const rows = [
    ...diff.nodes_added.map((id) => `added ${id}`),
    ...diff.nodes_removed.map((id) => `removed ${id}`),
    ...diff.nodes_changed.map((change) => `changed ${change.fields.join(", ")} of ${change.id}`),
    ...diff.edges_added.map((key) => `connected ${key}`),
    ...diff.edges_removed.map((key) => `disconnected ${key}`),
  ];
  return rows.length ? <ul>{rows.map((row) => <li key={row}>{row}</li>)}</ul> : <p>No differences.</p>;
}

/** ``conflict``: the 409 body ({detail, base_version, latest, changes, yours}); null when closed. */
export default function ConflictDialog({ conflict, busy, onMerge, onKeepMine, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (conflict && !dialog.open) dialog.showModal();
    if (!conflict && dialog.open) dialog.close();
  }, [conflict]);
  const latest = conflict && conflict.latest;
  return (
    <dialog ref={ref} className="ed-dialog collab-dialog" aria-labelledby="conflict-title" onClose={onClose} data-testid="conflict-dialog">
      {conflict ? (
        <>
          <h2 id="conflict-title">Not saved: version {latest.number} was saved meanwhile</h2>
          <p>
            <strong>{latest.created_by || "Someone"}</strong> saved version {latest.number} at {new Date(latest.created_at).toLocaleString()}
            {latest.message ? <> (“{latest.message}”)</> : null}, after version {conflict.base_version} that you started from. Nothing was overwritten.
          </p>
          <div className="columns">
            <section aria-label={`Their changes in version ${latest.number}`}>
              <h3>Their changes (version {conflict.base_version} → {latest.number})</h3>
              <Changes diff={conflict.changes} />
            </section>
            <section aria-label="Your changes">
              <h3>Yours compared with version {latest.number}</h3>
              <Changes diff={conflict.yours} />
            </section>
          </div>
          <div className="actions">
            <button type="button" onClick={onMerge} disabled={busy}>Merge: take version {latest.number} and re-apply my changes</button>
            <button type="button" className="secondary" onClick={onKeepMine} disabled={busy}>Keep mine as version {latest.number + 1}</button>
            <button type="button" className="secondary" onClick={onClose}>Cancel</button>
          </div>
        </>
      ) : null}
    </dialog>
  );
}
