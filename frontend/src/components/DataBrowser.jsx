import { useCallback, useEffect, useState } from "react";
import { api, errorText } from "../api.js";

// The editor's data browser: choose a data space, walk its folders (or search it), see what a file
// holds (variables with units and standard names, dimensions, time range, area, size) with a quick
// look, and pick it: the selected data-access block's source is filled in, or a new one is added.

const BASE = "/api/data-spaces/";

function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(0)} kB`;
  return `${bytes} B`;
}

/** -1, 0 or 1 as semantic version ``a`` is lower, equal or higher than ``b``. */
export function compareVersions(a, b) {
  const left = String(a).split(".").map(Number);
  const right = String(b).split(".").map(Number);
  for (let index = 0; index < 3; index += 1) {
    if ((left[index] || 0) !== (right[index] || 0)) return (left[index] || 0) < (right[index] || 0) ? -1 : 1;
  }
  return 0;
}

function Description({ space, described, onPick, target }) {
  const [variable, setVariable] = useState("");
  const variables = Object.entries(described.variables || {});
  const canPreview = described.block && (described.kind === "gridded" || described.kind === "table");
  const previewUrl = canPreview
    ? `${BASE}${space.id}/preview/?path=${encodeURIComponent(described.entry.path)}${variable ? `&variable=${encodeURIComponent(variable)}` : ""}`
    : null;
  const box = described.bounding_box;
  const time = described.time_range;
  return (
    <div className="data-describe" data-testid="data-describe">
      <h4>{described.entry.name || described.entry.path}</h4>
      <p className="data-meta">
        {described.size !== null && described.size !== undefined ? <span>Size {formatBytes(described.size)}</span> : null}
        {described.estimated_bytes ? <span> · {formatBytes(described.estimated_bytes)} of values</span> : null}
        {described.dimensions && Object.keys(described.dimensions).length ? (
          <span> · {Object.entries(described.dimensions).map(([name, size]) => `${name} ${size}`).join(" × ")}</span>
        ) : null}
      </p>
      {described.size_warning ? <p className="data-warning" role="alert">Large file: {described.size_warning}</p> : null}
      {time ? <p>Time: {String(time.start).slice(0, 19)} → {String(time.end).slice(0, 19)}{time.steps ? ` (${time.steps} steps)` : ""}</p> : null}
      {box ? (
        <p>Area: {box.lat_min}…{box.lat_max} °N, {box.lon_min}…{box.lon_max} °E</p>
      ) : null}
      {variables.length ? (
        <table className="data-variables">
          <caption className="visually-hidden">Variables</caption>
          <thead><tr><th scope="col">Variable</th><th scope="col">Units</th><th scope="col">Standard name</th></tr></thead>
          <tbody>
            {variables.map(([name, info]) => (
              <tr key={name}>
                <td><button type="button" className="linklike" onClick={() => setVariable(name)} aria-pressed={variable === name}>{name}</button></td>
                <td>{info.units || "—"}</td>
                <td>{info.standard_name || info.long_name || "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {described.assets ? (
        <ul className="data-assets">
          {Object.entries(described.assets).map(([key, asset]) => <li key={key}><code>{key}</code> {asset.type || ""} {asset.title || ""}</li>)}
        </ul>
      ) : null}
      {previewUrl ? <img className="data-preview" src={previewUrl} alt={`Quick look of ${variable || (variables[0] && variables[0][0]) || described.entry.name}`} loading="lazy" /> : null}
      {described.reference && described.block ? (
        <p>
          <button type="button" onClick={() => onPick(described)}>
            {described.size_warning ? "Use it anyway" : target ? `Use in ${target.id}` : "Add a block that opens it"}
          </button>
          <code className="data-reference">{described.reference}</code>
        </p>
      ) : null}
    </div>
  );
}

export default function DataBrowser({ selected, catalog, onParams, onVersion, onAdd, say }) {
  const [spaces, setSpaces] = useState(null);
  const [spaceId, setSpaceId] = useState("");
  const [path, setPath] = useState("");
  const [listing, setListing] = useState(null);
  const [query, setQuery] = useState("");
  const [bbox, setBbox] = useState("");
  const [period, setPeriod] = useState("");
  const [described, setDescribed] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const space = spaces && spaces.find((candidate) => String(candidate.id) === String(spaceId));

  useEffect(() => {
    let live = true;
    api("GET", BASE)
      .then((found) => {
        if (!live) return;
        setSpaces(found);
        const first = found.find((candidate) => candidate.is_default_store) || found[0];
        if (first) setSpaceId(String(first.id));
      })
      .catch((failure) => live && setError(errorText(failure)));
    return () => { live = false; };
  }, []);

  const browse = useCallback((id, where) => {
    if (!id) return;
    setBusy(true);
    setError("");
    setDescribed(null);
    api("GET", `${BASE}${id}/browse/?path=${encodeURIComponent(where)}`)
      .then((answer) => { setListing(answer); setPath(where); })
      .catch((failure) => setError(errorText(failure)))
      .finally(() => setBusy(false));
  }, []);

  useEffect(() => { if (spaceId) browse(spaceId, ""); }, [spaceId, browse]);

  const search = (event) => {
    event.preventDefault();
    const filters = new URLSearchParams();
    if (query.trim()) filters.set("q", query.trim());
    if (bbox.trim()) filters.set("bbox", bbox.trim());
    if (period.trim()) filters.set("datetime", period.trim());
    if (![...filters.keys()].length) { browse(spaceId, path); return; }
    setBusy(true);
    setError("");
    const searched = [...filters.values()].join(", ");
    api("GET", `${BASE}${spaceId}/search/?${filters}`)
      .then((answer) => setListing({ ...answer, path: "", searched, size_warning_bytes: listing && listing.size_warning_bytes }))
      .catch((failure) => setError(errorText(failure)))
      .finally(() => setBusy(false));
  };

  const describe = (entry) => {
    setBusy(true);
    setError("");
    api("GET", `${BASE}${spaceId}/describe/?path=${encodeURIComponent(entry.path)}`)
      .then(setDescribed)
      .catch((failure) => setError(errorText(failure)))
      .finally(() => setBusy(false));
  };

  const browseItem = (entry) => {
    api("GET", `${BASE}${spaceId}/browse/?path=${encodeURIComponent(entry.path)}`)
      .then((answer) => { setListing(answer); setPath(entry.path); })
      .catch((failure) => setError(errorText(failure)));
  };

  // A STAC item is described (area, time, assets) and opened at once: its assets are the files.
  const open = (entry) => {
    if (entry.extra && entry.extra.type === "Item") {
      describe(entry);
      browseItem(entry);
    } else if (entry.is_dir) {
      browse(spaceId, entry.path);
    } else {
      describe(entry);
    }
  };

  const single = selected && selected.length === 1 ? selected[0] : null;
  const target = (chosen) => (single && chosen && single.data.block === chosen.block ? single : null);

  const pick = (chosen) => {
    const node = target(chosen);
    if (node) {
      if (chosen.block_version && compareVersions(node.data.version, chosen.block_version) < 0) {
        onVersion(node.id, chosen.block_version);
      }
      onParams(node.id, { ...(node.data.params || {}), source: chosen.reference });
      say(`${node.id}: source set to ${chosen.reference}.`);
    } else {
      const spec = catalog.latest(chosen.block);
      onAdd(chosen.block, spec ? spec.version : chosen.block_version, { source: chosen.reference });
    }
  };

  const crumbs = path ? path.split("/") : [];
  const warnAbove = listing && listing.size_warning_bytes;
  return (
    <section className="ed-data" aria-labelledby="data-title">
      <h2 id="data-title">Data</h2>
      {spaces && spaces.length === 0 ? <p>No data space is available to you.</p> : null}
      {spaces && spaces.length ? (
        <>
          <label htmlFor="data-space">Data space</label>
          <select id="data-space" value={spaceId} onChange={(event) => { setQuery(""); setSpaceId(event.target.value); }}>
            {spaces.map((candidate) => (
              <option key={candidate.id} value={candidate.id}>{candidate.title} ({candidate.kind})</option>
            ))}
          </select>
          <form onSubmit={search} className="data-search" role="search">
            <label htmlFor="data-query" className="visually-hidden">Search the data space</label>
            <input id="data-query" type="search" placeholder="Search files or items…" value={query} onChange={(event) => setQuery(event.target.value)} />
            {space && space.kind === "stac" ? (
              <>
                <label htmlFor="data-bbox">Area (west,south,east,north)</label>
                <input id="data-bbox" type="text" placeholder="-10,43,-1,48" value={bbox} onChange={(event) => setBbox(event.target.value)} />
                <label htmlFor="data-period">Time (start/end)</label>
                <input id="data-period" type="text" placeholder="2024-06-01/2024-06-30" value={period} onChange={(event) => setPeriod(event.target.value)} />
                <button type="submit" className="secondary">Search</button>
              </>
            ) : null}
          </form>
          <nav aria-label="Folder" className="data-crumbs">
            <button type="button" className="linklike" onClick={() => browse(spaceId, "")}>{space ? space.name : "root"}</button>
            {crumbs.map((part, index) => (
              <span key={index}> / <button type="button" className="linklike" onClick={() => browse(spaceId, crumbs.slice(0, index + 1).join("/"))}>{part}</button></span>
            ))}
          </nav>
        </>
      ) : null}
      {error ? <p className="data-error" role="alert">{error}</p> : null}
      {/* Not a second status region: the editor's status line is the one place screen readers hear. */}
      {busy ? <p className="data-loading" aria-hidden="true">Loading…</p> : null}
      {listing ? (
        <ul className="data-entries" aria-busy={busy ? "true" : "false"} aria-label={listing.searched ? `Search results for ${listing.searched}` : `Contents of ${path || "the space"}`}>
          {listing.entries.length === 0 ? <li>Nothing here.</li> : null}
          {listing.entries.map((entry) => (
            <li key={entry.path}>
              <button type="button" className={`data-entry${entry.is_dir ? " dir" : ""}`} onClick={() => open(entry)} data-path={entry.path}>
                <span aria-hidden="true">{entry.is_dir ? "📁" : "📄"} </span>
                {listing.searched ? entry.path : entry.name}
                {!entry.is_dir && entry.size !== null ? <span className="data-size"> {formatBytes(entry.size)}</span> : null}
                {warnAbove && entry.size > warnAbove ? <span className="data-warning"> (large)</span> : null}
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      {described && space ? <Description space={space} described={described} onPick={pick} target={target(described)} /> : null}
    </section>
  );
}
