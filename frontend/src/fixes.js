// One-click fixes the server's validation offers (issue.details.fix), applied to the canvas graph.
import { defaultParams, edgeKey, freshNodeId, inHandle, outHandle, portOfHandle } from "./document.js";

export class FixError extends Error {}

const docIdOf = (node) => (node.data.docId !== undefined ? node.data.docId : node.id);

/** The fix an issue offers, or null: {insert, version, params, edge, title}. */
export function fixOf(issue) {
  const fix = issue && issue.details && issue.details.fix;
  return fix && typeof fix.insert === "string" && Number.isInteger(fix.edge) ? fix : null;
}

/** The button text of a fix. */
export function fixLabel(fix) {
  return fix.insert === "transform.convert_units" ? "Insert unit conversion" : `Insert ${fix.insert}`;
}

/**
 * Insert the block a fix names on the edge it names: source → new node → target.
 *
 * ``issue`` is the validation issue carrying the fix; its node and port must still be the target of
 * edge number ``fix.edge`` (the document edge order is the canvas edge order), otherwise the graph
 * changed since the check and FixError is thrown. Returns {nodes, edges, id} with the new node
 * selected, placed between the two ends, and the two new edges where the old one was.
 */
export function insertOnEdge(nodes, edges, issue, catalog) {
  const fix = fixOf(issue);
  if (!fix) throw new FixError("This problem has no automatic fix.");
  const edge = edges[fix.edge];
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const source = edge && byId.get(edge.source);
  const target = edge && byId.get(edge.target);
  if (!source || !target || docIdOf(target) !== issue.node || portOfHandle(edge.targetHandle) !== issue.port) {
    throw new FixError("The pipeline changed since it was checked; wait for the new check and try again.");
  }
  const spec = (fix.version && catalog.get(fix.insert, fix.version)) || catalog.latest(fix.insert);
  if (!spec || !spec.inputs.length || !spec.outputs.length) {
    throw new FixError(`The block ${fix.insert} is not in the catalog.`);
  }
  const taken = new Set(nodes.map(docIdOf));
  const id = freshNodeId(spec.id, taken);
  const inPort = spec.inputs[0].name;
  const outPort = spec.outputs[0].name;
  const sourcePort = portOfHandle(edge.sourceHandle);
  const targetPort = portOfHandle(edge.targetHandle);
  const node = {
    id,
    type: "block",
    position: {
      x: Math.round((source.position.x + target.position.x) / 2),
      y: Math.round((source.position.y + target.position.y) / 2) + 60,
    },
    data: { block: spec.id, version: spec.version, params: { ...defaultParams(spec), ...(fix.params || {}) } },
    ariaLabel: `${spec.title} (${id})`,
    selected: true,
  };
  const link = (from, fromPort, to, toPort) => ({
    id: `e:${edgeKey(from, fromPort, to, toPort)}`,
    source: from,
    target: to,
    sourceHandle: outHandle(fromPort),
    targetHandle: inHandle(toPort),
  });
  const replaced = [link(edge.source, sourcePort, id, inPort), link(id, outPort, edge.target, targetPort)];
  return {
    id,
    nodes: [...nodes.map((other) => (other.selected ? { ...other, selected: false } : other)), node],
    edges: [...edges.slice(0, fix.edge), ...replaced, ...edges.slice(fix.edge + 1)],
  };
}
