import { useMemo, useState } from "react";
import { PORT_TYPES, portClass } from "../ports.js";

export const DRAG_TYPE = "application/x-iliad-block";

export default function Palette({ catalog, categories, onAdd }) {
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const text = query.trim().toLowerCase();
    const blocks = catalog.blocks().filter((spec) =>
      !text || `${spec.id} ${spec.title} ${spec.description} ${spec.category}`.toLowerCase().includes(text),
    );
    const order = [...(categories || [])];
    for (const spec of blocks) if (!order.includes(spec.category)) order.push(spec.category);
    return order
      .map((category) => ({
        category,
        blocks: blocks.filter((spec) => spec.category === category).sort((a, b) => a.title.localeCompare(b.title)),
      }))
      .filter((group) => group.blocks.length);
  }, [catalog, categories, query]);

  return (
    <aside className="ed-palette" aria-labelledby="palette-title">
      <h2 id="palette-title">Blocks</h2>
      <label htmlFor="palette-search" className="visually-hidden">Search blocks</label>
      <input
        id="palette-search"
        type="search"
        placeholder="Search blocks…"
        value={query}
        onChange={(event) => setQuery(event.target.value)}
      />
      <p className="hint">Drag a block onto the canvas, or press Enter on it to add it.</p>
      {groups.length === 0 ? <p>No block matches “{query}”.</p> : null}
      {groups.map((group) => (
        <section key={group.category} className="palette-group" aria-labelledby={`cat-${group.category}`}>
          <h3 id={`cat-${group.category}`}>{group.category}</h3>
          <ul>
            {group.blocks.map((spec) => (
              <li key={spec.id}>
                <button
                  type="button"
                  className="palette-item"
                  draggable="true"
                  data-block={spec.id}
                  onDragStart={(event) => {
                    event.dataTransfer.setData(DRAG_TYPE, `${spec.id}@${spec.version}`);
                    event.dataTransfer.setData("text/plain", spec.id);
                    event.dataTransfer.effectAllowed = "copy";
                  }}
                  onClick={() => onAdd(spec.id, spec.version)}
                >
                  <span className="palette-title"><span className="visually-hidden">Add </span>{spec.title}</span>
                  <span className="palette-meta">
                    <code>{spec.id}</code> v{spec.version}
                  </span>
                  <span className="palette-ports" aria-hidden="true">
                    {spec.inputs.map((port) => <span key={`i${port.name}`} className={portClass(port.type)} title={`in: ${port.type}`} />)}
                    {spec.inputs.length ? " → " : ""}
                    {spec.outputs.map((port) => <span key={`o${port.name}`} className={portClass(port.type)} title={`out: ${port.type}`} />)}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
      <section className="legend" aria-labelledby="legend-title">
        <h3 id="legend-title">Port types</h3>
        <ul>
          {PORT_TYPES.map((entry) => (
            <li key={entry.type}>
              <span className={portClass(entry.type)} aria-hidden="true" /> <strong>{entry.type}</strong> {entry.shape} — {entry.label}
            </li>
          ))}
        </ul>
      </section>
    </aside>
  );
}
