// The pipeline document <-> React Flow graph conversion. Pure functions, no React.
//
// A document node {id, block, version, params, position, label?} becomes a React Flow node of type
// "block" whose data holds block, version, params and label; edges use the handle ids "in:<port>"
// and "out:<port>". graphToDocument(documentToGraph(d)) === d for every document the editor writes
// (key order included), which is what undo/redo and "reload and find it unchanged" rely on.

export const FORMAT = "iliad.pipeline";
export const VERSION = 1;
export const NODE_ID_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

export class ImportError extends Error {}

export function emptyDocument() {
  return { format: FORMAT, version: VERSION, nodes: [], edges: [] };
}

export const inHandle = (port) => `in:${port}`;
export const outHandle = (port) => `out:${port}`;
export const portOfHandle = (handle) => (handle || "").replace(/^(in|out):/, "");

export function edgeKey(source, sourcePort, target, targetPort) {
  return `${source}.${sourcePort}->${target}.${targetPort}`;
}

function semverKey(version) {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version || "");
  return match ? match.slice(1).map(Number) : [-1, -1, -1];
}

export function compareVersions(a, b) {
  const ka = semverKey(a);
  const kb = semverKey(b);
  for (let i = 0; i < 3; i += 1) if (ka[i] !== kb[i]) return ka[i] - kb[i];
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The catalog embedded in the page: {block: {version: spec}} with helpers. */
export function makeCatalog(specs) {
  const latest = {};
  for (const [block, versions] of Object.entries(specs || {})) {
    const sorted = Object.keys(versions).sort(compareVersions);
    latest[block] = sorted[sorted.length - 1];
  }
  return {
    specs: specs || {},
    get: (block, version) => (specs && specs[block] && specs[block][version]) || null,
    versions: (block) => Object.keys((specs && specs[block]) || {}).sort(compareVersions),
    latest: (block) => (latest[block] ? specs[block][latest[block]] : null),
    blocks: () => Object.keys(latest).map((block) => specs[block][latest[block]]),
  };
}

/** Default parameter values from a block's JSON Schema (top-level properties with a default). */
export function defaultParams(spec) {
  const params = {};
  const properties = (spec && spec.parameters && spec.parameters.properties) || {};
  for (const [name, schema] of Object.entries(properties)) {
    if (schema && Object.prototype.hasOwnProperty.call(schema, "default")) {
      params[name] = JSON.parse(JSON.stringify(schema.default));
    }
  }
  return params;
}

/** Whether ``after`` differs from ``before`` only by top-level parameters added at their default. */
export function onlyDefaultsAdded(schema, before, after) {
  const properties = (schema && schema.properties) || {};
  const was = before || {};
  const now = after || {};
  for (const key of new Set([...Object.keys(was), ...Object.keys(now)])) {
    const value = JSON.stringify(now[key]);
    if (JSON.stringify(was[key]) === value) continue;
    if (key in was || !properties[key] || !("default" in properties[key])) return false;
    if (JSON.stringify(properties[key].default) !== value) return false;
  }
  return true;
}

/** A fresh node id derived from the block id ("ocean.subset" -> "subset", "subset_2", ...). */
export function freshNodeId(blockId, taken) {
  let base = String(blockId || "node").split(".").pop().replace(/[^A-Za-z0-9_-]/g, "_");
  if (!/^[A-Za-z]/.test(base)) base = `n_${base}`;
  base = base.slice(0, 56);
  const used = taken instanceof Set ? taken : new Set(taken);
  if (!used.has(base)) return base;
  for (let i = 2; ; i += 1) {
    const candidate = `${base}_${i}`;
    if (!used.has(candidate)) return candidate;
  }
}

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

function ariaLabelFor(docNode, catalog) {
  const spec = catalog ? catalog.get(docNode.block, docNode.version) : null;
  const title = docNode.label || (spec ? spec.title : String(docNode.block));
  return `${title} (${docNode.id})`;
}

/**
 * A document (parsed JSON) -> {nodes, edges, metadata}. Tolerant: imports keep nodes with unknown
 * blocks, bad parameters or missing positions so the server's validation can point at them; only a
 * document that is not an object with node and edge lists raises ImportError.
 */
export function documentToGraph(doc, catalog) {
  if (!isObject(doc)) throw new ImportError("The document must be a JSON object.");
  if (doc.nodes !== undefined && !Array.isArray(doc.nodes)) throw new ImportError("'nodes' must be a list.");
  if (doc.edges !== undefined && !Array.isArray(doc.edges)) throw new ImportError("'edges' must be a list.");
  const rawNodes = doc.nodes || [];
  const rawEdges = doc.edges || [];
  const nodes = [];
  const owners = new Set();
  rawNodes.forEach((raw, index) => {
    if (!isObject(raw)) throw new ImportError(`Node ${index} must be an object.`);
    const docId = typeof raw.id === "string" ? raw.id : `node${index}`;
    let id = docId;
    // Duplicate (or missing) ids still get a node on the canvas, under an internal id.
    if (owners.has(id) || typeof raw.id !== "string") id = `${docId}~${index}`;
    owners.add(id);
    const position = isObject(raw.position) && isNumber(raw.position.x) && isNumber(raw.position.y)
      ? { x: raw.position.x, y: raw.position.y }
      : { x: 40 + (index % 6) * 280, y: 40 + Math.floor(index / 6) * 200 };
    const data = {
      block: raw.block,
      version: raw.version,
      params: raw.params === undefined ? {} : raw.params,
    };
    if (raw.label !== undefined) data.label = raw.label;
    if (raw.target !== undefined) data.target = raw.target;
    if (id !== docId || typeof raw.id !== "string") data.docId = raw.id;
    nodes.push({
      id,
      type: "block",
      position,
      data,
      ariaLabel: ariaLabelFor({ id: docId, block: raw.block, version: raw.version, label: raw.label }, catalog),
    });
  });
  const edges = rawEdges.map((raw, index) => {
    if (!isObject(raw)) throw new ImportError(`Edge ${index} must be an object.`);
    return {
      id: `e${index}:${edgeKey(raw.source, raw.source_port, raw.target, raw.target_port)}`,
      source: String(raw.source),
      target: String(raw.target),
      sourceHandle: outHandle(raw.source_port),
      targetHandle: inHandle(raw.target_port),
    };
  });
  const metadata = isObject(doc.metadata) ? doc.metadata : undefined;
  return { nodes, edges, metadata };
}

/** React Flow nodes and edges -> the pipeline document (positions rounded to whole pixels). */
export function graphToDocument(nodes, edges, metadata) {
  const docIdOf = {};
  const docNodes = nodes.map((node) => {
    const { data } = node;
    const id = data.docId !== undefined ? data.docId : node.id;
    docIdOf[node.id] = id;
    const out = { id, block: data.block, version: data.version, params: data.params };
    out.position = { x: Math.round(node.position.x), y: Math.round(node.position.y) };
    if (data.label !== undefined) out.label = data.label;
    if (data.target !== undefined) out.target = data.target;
    return out;
  });
  const docEdges = edges.map((edge) => ({
    source: docIdOf[edge.source] !== undefined ? docIdOf[edge.source] : edge.source,
    source_port: portOfHandle(edge.sourceHandle),
    target: docIdOf[edge.target] !== undefined ? docIdOf[edge.target] : edge.target,
    target_port: portOfHandle(edge.targetHandle),
  }));
  const doc = { format: FORMAT, version: VERSION, nodes: docNodes, edges: docEdges };
  if (metadata && Object.keys(metadata).length) doc.metadata = metadata;
  return doc;
}

/** A stable text form of a document: compare it, store it, undo to it. */
export const serialise = (doc) => JSON.stringify(doc);
