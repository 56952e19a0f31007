// Editing operations as pure functions on the pipeline document: each takes a document and returns
// a new one (the input is never changed). The shared (Yjs) document and the merge of a refused save
// are built on them, and they mirror what the server's validation checks: node ids are unique and
// match NODE_ID_RE, edges join existing nodes (and, given the catalog, existing ports of one type),
// an input port takes one edge, and there is no cycle. Each refusal carries the issue code the
// server's validation (engine/validation.py) gives the document the operation would have made:
// editing-cases.json holds the cases both sides are tested with.

import { NODE_ID_RE } from "../document.js";

export class OperationError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

const clone = (value) => JSON.parse(JSON.stringify(value));
const nodeOf = (doc, id) => (doc.nodes || []).find((node) => node.id === id);

export function addNode(doc, node) {
  if (!NODE_ID_RE.test(node.id || "")) throw new OperationError(`"${node.id}" is not a valid node id.`, "document.malformed");
  if (nodeOf(doc, node.id)) throw new OperationError(`The id ${node.id} is already used.`, "node.duplicate_id");
  return { ...doc, nodes: [...(doc.nodes || []), clone(node)] };
}

export function removeNodes(doc, ids) {
  const gone = new Set(ids);
  return {
    ...doc,
    nodes: (doc.nodes || []).filter((node) => !gone.has(node.id)),
    edges: (doc.edges || []).filter((edge) => !gone.has(edge.source) && !gone.has(edge.target)),
  };
}

function updateNode(doc, id, change) {
  if (!nodeOf(doc, id)) throw new OperationError(`There is no node ${id}.`);
  return { ...doc, nodes: doc.nodes.map((node) => (node.id === id ? change({ ...node }) : node)) };
}

export const setParam = (doc, id, name, value) =>
  updateNode(doc, id, (node) => ({ ...node, params: { ...(node.params || {}), [name]: clone(value) } }));

export const setParams = (doc, id, params) => updateNode(doc, id, (node) => ({ ...node, params: clone(params) }));

export const moveNode = (doc, id, position) =>
  updateNode(doc, id, (node) => ({ ...node, position: { x: Math.round(position.x), y: Math.round(position.y) } }));

export const setLabel = (doc, id, label) =>
  updateNode(doc, id, (node) => {
    if (label === undefined || label === "") delete node.label;
    else node.label = label;
    return node;
  });

/** Whether the edges lead from ``from`` to ``to``. */
function reaches(edges, from, to) {
  const seen = new Set([from]);
  const queue = [from];
  while (queue.length) {
    const at = queue.shift();
    if (at === to) return true;
    for (const edge of edges) {
      if (edge.source === at && !seen.has(edge.target)) {
        seen.add(edge.target);
        queue.push(edge.target);
      }
    }
  }
  return false;
}

function portOf(catalog, node, direction, name) {
  const spec = catalog.get(node.block, node.version);
  if (!spec) return undefined; // an unknown block: the server names that, not the edge
  return (direction === "in" ? spec.inputs : spec.outputs).find((port) => port.name === name) || null;
}

/** Add an edge. ``catalog`` (makeCatalog), when given, also checks the ports and their types. */
export function connect(doc, edge, catalog = null) {
  const source = nodeOf(doc, edge.source);
  const target = nodeOf(doc, edge.target);
  if (!source || !target) throw new OperationError("Both ends must be nodes of the pipeline.", "edge.unknown_node");
  const same = (other) =>
    other.source === edge.source && other.source_port === edge.source_port && other.target === edge.target && other.target_port === edge.target_port;
  if ((doc.edges || []).some(same)) throw new OperationError("These two ports are already connected.", "edge.duplicate");
  if (catalog) {
    const output = portOf(catalog, source, "out", edge.source_port);
    const input = portOf(catalog, target, "in", edge.target_port);
    if (output === null) throw new OperationError(`${edge.source} has no output "${edge.source_port}".`, "edge.unknown_port");
    if (input === null) throw new OperationError(`${edge.target} has no input "${edge.target_port}".`, "edge.unknown_port");
    if (output && input && !(input.type === "any" || output.type === input.type)) {
      throw new OperationError(`Output ${edge.source_port} gives ${output.type}, input ${edge.target_port} expects ${input.type}.`, "edge.type_mismatch");
    }
  }
  const taken = (doc.edges || []).some((other) => other.target === edge.target && other.target_port === edge.target_port);
  if (taken) throw new OperationError(`The input ${edge.target}.${edge.target_port} is already connected.`, "edge.input_taken");
  if (edge.source === edge.target) throw new OperationError("A block cannot feed itself.", "graph.cycle");
  if (reaches(doc.edges || [], edge.target, edge.source)) throw new OperationError("This would make a cycle.", "graph.cycle");
  const added = { source: edge.source, source_port: edge.source_port, target: edge.target, target_port: edge.target_port };
  return { ...doc, edges: [...(doc.edges || []), added] };
}

export function disconnect(doc, edge) {
  const same = (other) =>
    other.source === edge.source && other.source_port === edge.source_port && other.target === edge.target && other.target_port === edge.target_port;
  return { ...doc, edges: (doc.edges || []).filter((other) => !same(other)) };
}

export function renameNode(doc, id, newId) {
  if (!NODE_ID_RE.test(newId)) throw new OperationError("Use 1 to 64 letters, digits, _ or -, starting with a letter.", "document.malformed");
  if (nodeOf(doc, newId)) throw new OperationError(`The id ${newId} is already used.`, "node.duplicate_id");
  const rename = (value) => (value === id ? newId : value);
  return {
    ...updateNode(doc, id, (node) => ({ ...node, id: newId })),
    edges: (doc.edges || []).map((edge) => ({ ...edge, source: rename(edge.source), target: rename(edge.target) })),
  };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const edgeId = (edge) => `${edge.source}.${edge.source_port}->${edge.target}.${edge.target_port}`;

/**
 * Three-way merge for a save that was refused because ``theirs`` was saved after ``base``: the
 * changes from ``base`` to ``mine`` re-applied on top of ``theirs``, parameter by parameter. Where
 * both changed the same field, mine wins and the field is listed in ``conflicts`` ("node.field").
 * Returns {document, conflicts}.
 */
export function mergeDocuments(base, mine, theirs) {
  const baseNodes = new Map((base.nodes || []).map((node) => [node.id, node]));
  const mineNodes = new Map((mine.nodes || []).map((node) => [node.id, node]));
  const conflicts = [];
  let doc = clone(theirs);
  for (const [id, node] of mineNodes) {
    const before = baseNodes.get(id);
    const current = nodeOf(doc, id);
    if (!before) {
      if (!current) doc = { ...doc, nodes: [...doc.nodes, clone(node)] };
      else if (!same(current, node)) {
        conflicts.push(`${id}.added`);
        doc = updateNode(doc, id, () => clone(node));
      }
      continue;
    }
    if (!current) {
      if (!same(before, node)) conflicts.push(`${id}.removed`); // they deleted what I changed: keep it deleted
      continue;
    }
    doc = updateNode(doc, id, (merged) => {
      for (const field of ["block", "version", "position", "label", "target"]) {
        if (same(before[field], node[field])) continue;
        if (!same(before[field], merged[field]) && !same(merged[field], node[field])) conflicts.push(`${id}.${field}`);
        if (node[field] === undefined) delete merged[field];
        else merged[field] = clone(node[field]);
      }
      const params = { ...(merged.params || {}) };
      const names = new Set([...Object.keys(before.params || {}), ...Object.keys(node.params || {})]);
      for (const name of names) {
        const was = (before.params || {})[name];
        const now = (node.params || {})[name];
        if (same(was, now)) continue;
        if (!same(was, params[name]) && !same(params[name], now)) conflicts.push(`${id}.params.${name}`);
        if (now === undefined) delete params[name];
        else params[name] = clone(now);
      }
      merged.params = params;
      return merged;
    });
  }
  for (const id of baseNodes.keys()) if (!mineNodes.has(id)) doc = removeNodes(doc, [id]);
  const baseEdges = new Set((base.edges || []).map(edgeId));
  const mineEdges = new Set((mine.edges || []).map(edgeId));
  const ids = new Set(doc.nodes.map((node) => node.id));
  for (const edge of mine.edges || []) {
    const key = edgeId(edge);
    if (!baseEdges.has(key) && !doc.edges.some((other) => edgeId(other) === key) && ids.has(edge.source) && ids.has(edge.target)) {
      doc = { ...doc, edges: [...doc.edges, clone(edge)] };
    }
  }
  doc = { ...doc, edges: doc.edges.filter((edge) => !baseEdges.has(edgeId(edge)) || mineEdges.has(edgeId(edge))) };
  return { document: doc, conflicts };
}

/**
 * What to write into the shared document for a local edit: the changes from ``base`` (what this
 * editor last had in common with the shared document) to ``mine`` (its document now), re-applied on
 * ``theirs`` (the shared document now, which may hold others' changes this editor has not drawn
 * yet). Writing ``mine`` as it is would put back the stale values of what the others just changed.
 */
export function localChangeOnto(base, mine, theirs) {
  if (!base || JSON.stringify(theirs) === JSON.stringify(base)) return mine;
  const { document } = mergeDocuments(base, mine, theirs);
  const out = { ...document };
  if (!same(base.metadata, mine.metadata)) {
    if (mine.metadata === undefined) delete out.metadata;
    else out.metadata = clone(mine.metadata);
  }
  return out;
}
