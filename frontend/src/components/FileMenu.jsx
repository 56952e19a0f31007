import { useEffect, useRef, useState } from "react";

/**
 * "File ▾": importing, exporting and starting from a template, folded into one toolbar button so that
 * the toolbar stays on one line on a 1280 px laptop. A disclosure (a button that shows a group of
 * ordinary buttons), closed by Escape, a click elsewhere, or choosing an action.
 */
export default function FileMenu({ onImport, onExport, onTemplates }) {
  const [open, setOpen] = useState(false);
  const root = useRef(null);
  const toggle = useRef(null);

  useEffect(() => {
    if (!open) return undefined;
    const away = (event) => {
      if (root.current && !root.current.contains(event.target)) setOpen(false);
    };
    const escape = (event) => {
      if (event.key === "Escape") {
        setOpen(false);
        toggle.current?.focus();
      }
    };
    document.addEventListener("pointerdown", away);
    document.addEventListener("keydown", escape);
    return () => {
      document.removeEventListener("pointerdown", away);
      document.removeEventListener("keydown", escape);
    };
  }, [open]);

  const choose = (action) => () => {
    setOpen(false);
    action();
  };

  return (
    <div className="ed-menu" ref={root}>
      <button type="button" className="secondary" ref={toggle} aria-expanded={open} aria-controls="file-menu" onClick={() => setOpen(!open)}>
        File ▾
      </button>
      <div id="file-menu" className="ed-menu-items" role="group" aria-label="File" hidden={!open}>
        <label className="button secondary" htmlFor="import-file">Import JSON</label>
        <input id="import-file" type="file" accept=".json,application/json" className="visually-hidden" onChange={(event) => { setOpen(false); onImport(event.target.files[0]); event.target.value = ""; }} />
        <button type="button" className="secondary" onClick={choose(onExport)}>Export JSON</button>
        <button type="button" className="secondary" onClick={choose(onTemplates)}>New from template</button>
      </div>
    </div>
  );
}
