// The pipeline document inside a Yjs document, the shape apps/collab/ydoc.py seeds on the server:
//
//   map "nodes":  node id -> Y.Map {block, version, x, y, label?, target?, params: Y.Map name -> JSON text}
//   array "order": node ids in document order (concurrent additions both stay; read deduplicated)
//   array "edges": JSON text of {source, source_port, target, target_port} (read deduplicated)
//   map "meta":   "metadata" (JSON text), "saved" (JSON text of {number, by, at, text})
//
// Each parameter is its own map entry, so two people changing different parameters (or different
// nodes) both keep their change; values are JSON text because Yjs maps do not keep key order.
// Pure functions: the editor calls writeDocument with its document after every edit (only what
// differs is written) and readDocument when someone else's change arrives.

import * as Y from "yjs";

export const FORMAT = "iliad.pipeline";
const EDGE_KEYS = ["source", "source_port", "target", "target_port"];
// Node fields besides block, version, params and position, in the order the editor writes them.
const OPTIONAL_FIELDS = ["label", "target"];

export function parts(ydoc) {
  return {
    nodes: ydoc.getMap("nodes"),
    order: ydoc.getArray("order"),
    edges: ydoc.getArray("edges"),
    meta: ydoc.getMap("meta"),
  };
}

export const edgeText = (edge) => JSON.stringify(Object.fromEntries(EDGE_KEYS.map((key) => [key, edge[key]])));

/** True once the shared document holds anything (the server seeds it from the latest version). */
export function isEmpty(ydoc) {
  const { nodes, order, edges, meta } = parts(ydoc);
  return nodes.size === 0 && order.length === 0 && edges.length === 0 && !meta.has("metadata");
}

/**
 * The pipeline document the shared document holds. ``previous`` (the editor's current document)
 * only lends its parameter key order, so a document read back is byte-identical to what was written.
 */
export function readDocument(ydoc, previous) {
  const { nodes, order, edges, meta } = parts(ydoc);
  const keyOrder = new Map();
  for (const node of (previous && previous.nodes) || []) {
    if (node && node.params && typeof node.params === "object") keyOrder.set(node.id, Object.keys(node.params));
  }
  const seen = new Set();
  const docNodes = [];
  for (const id of order.toArray()) {
    if (seen.has(id) || !nodes.has(id)) continue;
    seen.add(id);
    const fields = nodes.get(id);
    const yparams = fields.get("params");
    const names = yparams ? Array.from(yparams.keys()) : [];
    const known = keyOrder.get(id) || [];
    const ordered = [...known.filter((name) => names.includes(name)), ...names.filter((name) => !known.includes(name)).sort()];
    const params = {};
    for (const name of ordered) params[name] = JSON.parse(yparams.get(name));
    const node = { id, block: fields.get("block"), version: fields.get("version"), params };
    if (fields.has("x") && fields.has("y")) node.position = { x: fields.get("x"), y: fields.get("y") };
    for (const key of OPTIONAL_FIELDS) if (fields.get(key) !== undefined && fields.get(key) !== null) node[key] = fields.get(key);
    docNodes.push(node);
  }
  const texts = new Set();
  const docEdges = [];
  for (const text of edges.toArray()) {
    if (texts.has(text)) continue;
    texts.add(text);
    docEdges.push(JSON.parse(text));
  }
  const doc = { format: FORMAT, version: 1, nodes: docNodes, edges: docEdges };
  if (meta.has("metadata")) doc.metadata = JSON.parse(meta.get("metadata"));
  return doc;
}

function setIfChanged(map, key, value) {
  if (value === undefined || value === null) {
    if (map.has(key)) map.delete(key);
  } else if (map.get(key) !== value) {
    map.set(key, value);
  }
}

function writeNode(fields, node) {
  setIfChanged(fields, "block", node.block);
  setIfChanged(fields, "version", node.version);
  setIfChanged(fields, "x", node.position ? node.position.x : undefined);
  setIfChanged(fields, "y", node.position ? node.position.y : undefined);
  for (const key of OPTIONAL_FIELDS) setIfChanged(fields, key, node[key]);
  let params = fields.get("params");
  if (!(params instanceof Y.Map)) {
    params = new Y.Map();
    fields.set("params", params);
  }
  const values = node.params && typeof node.params === "object" && !Array.isArray(node.params) ? node.params : {};
  for (const name of Array.from(params.keys())) if (!(name in values)) params.delete(name);
  for (const [name, value] of Object.entries(values)) setIfChanged(params, name, JSON.stringify(value));
}

/**
 * Write ``doc`` into the shared document, changing only what differs (one transaction, tagged with
 * ``origin``). Nodes are matched by id: a node another person changed meanwhile keeps their change
 * in every field this document did not change. Returns whether anything was written.
 */
export function writeDocument(ydoc, doc, origin = "local") {
  const { nodes, order, edges, meta } = parts(ydoc);
  let changed = false;
  ydoc.transact((transaction) => {
    const wanted = new Map();
    for (const node of doc.nodes || []) if (node && typeof node.id === "string" && !wanted.has(node.id)) wanted.set(node.id, node);
    for (const id of Array.from(nodes.keys())) if (!wanted.has(id)) nodes.delete(id);
    const ids = order.toArray();
    for (let index = ids.length - 1; index >= 0; index -= 1) {
      if (!wanted.has(ids[index]) || ids.indexOf(ids[index]) !== index) order.delete(index, 1);
    }
    const present = new Set(order.toArray());
    for (const [id, node] of wanted) {
      let fields = nodes.get(id);
      if (!(fields instanceof Y.Map)) {
        fields = new Y.Map();
        nodes.set(id, fields);
      }
      writeNode(fields, node);
      if (!present.has(id)) order.push([id]);
    }
    const wantedEdges = new Set((doc.edges || []).map(edgeText));
    const texts = edges.toArray();
    const kept = new Set();
    for (let index = texts.length - 1; index >= 0; index -= 1) {
      if (!wantedEdges.has(texts[index]) || texts.indexOf(texts[index]) !== index) edges.delete(index, 1);
      else kept.add(texts[index]);
    }
    for (const text of wantedEdges) if (!kept.has(text)) edges.push([text]);
    setIfChanged(meta, "metadata", doc.metadata ? JSON.stringify(doc.metadata) : undefined);
    changed = transaction.changed.size > 0 || transaction.deleteSet.clients.size > 0;
  }, origin);
  return changed;
}

/** Record in the shared document that a version was saved from it (the others update their base). */
export function markSaved(ydoc, saved) {
  parts(ydoc).meta.set("saved", JSON.stringify(saved));
}

export function lastSaved(ydoc) {
  const text = parts(ydoc).meta.get("saved");
  return text ? JSON.parse(text) : null;
}

/**
 * ``doc`` with its parameter keys in the order ``reference`` (this editor's document) has them,
 * and every other key in the editor's order: two documents that differ only in key order then
 * serialise to the same text (a version saved elsewhere is "not a change" here).
 */
export function alignTo(doc, reference) {
  const keyOrder = new Map();
  for (const node of (reference && reference.nodes) || []) {
    if (node && node.params && typeof node.params === "object") keyOrder.set(node.id, Object.keys(node.params));
  }
  const nodes = (doc.nodes || []).map((node) => {
    const names = Object.keys(node.params || {});
    const known = (keyOrder.get(node.id) || []).filter((name) => names.includes(name));
    const params = {};
    for (const name of [...known, ...names.filter((name) => !known.includes(name))]) params[name] = node.params[name];
    const out = { id: node.id, block: node.block, version: node.version, params };
    if (node.position) out.position = { x: node.position.x, y: node.position.y };
    for (const key of OPTIONAL_FIELDS) if (node[key] !== undefined) out[key] = node[key];
    return out;
  });
  const edges = (doc.edges || []).map((edge) => JSON.parse(edgeText(edge)));
  const out = { format: doc.format, version: doc.version, nodes, edges };
  if (doc.metadata && Object.keys(doc.metadata).length) out.metadata = doc.metadata;
  return out;
}
