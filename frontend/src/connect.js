// Connection rules, checked while the user drags or picks ports: the same rules as the server
// (engine/validation.py): output type == input type or the input accepts "any"; one edge per input;
// no cycles. Each refusal comes with a reason in words.

import { portOfHandle } from "./document.js";

export function portsCompatible(outputType, inputType) {
  return inputType === "any" || outputType === inputType;
}

function findPort(node, catalog, direction, port) {
  if (!node) return null;
  const spec = catalog.get(node.data.block, node.data.version);
  if (!spec) return null;
  return (direction === "in" ? spec.inputs : spec.outputs).find((p) => p.name === port) || null;
}

/** A path of node ids from `from` to `to` following edges, or null. */
export function findPath(edges, from, to) {
  const next = new Map();
  for (const edge of edges) {
    if (!next.has(edge.source)) next.set(edge.source, []);
    next.get(edge.source).push(edge.target);
  }
  const previous = new Map([[from, null]]);
  const queue = [from];
  while (queue.length) {
    const current = queue.shift();
    if (current === to) {
      const path = [];
      for (let at = to; at !== null; at = previous.get(at)) path.unshift(at);
      return path;
    }
    for (const target of next.get(current) || []) {
      if (!previous.has(target)) {
        previous.set(target, current);
        queue.push(target);
      }
    }
  }
  return null;
}

/**
 * Why `connection` ({source, sourceHandle, target, targetHandle}) may not be made, or null if it
 * may. `nodes` and `edges` are the React Flow graph, `catalog` from makeCatalog.
 */
export function connectionProblem(connection, nodes, edges, catalog) {
  const { source, target } = connection;
  const sourcePort = portOfHandle(connection.sourceHandle);
  const targetPort = portOfHandle(connection.targetHandle);
  if (!source || !target) return "Choose an output port and an input port.";
  if (source === target) return `A block cannot feed itself: ${source} → ${target}.`;
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const output = findPort(byId.get(source), catalog, "out", sourcePort);
  const input = findPort(byId.get(target), catalog, "in", targetPort);
  if (!output) return `Node ${source} has no output "${sourcePort}".`;
  if (!input) return `Node ${target} has no input "${targetPort}".`;
  if (!portsCompatible(output.type, input.type)) {
    return (
      `Incompatible types: output "${sourcePort}" of ${source} gives ${output.type}, ` +
      `but input "${targetPort}" of ${target} expects ${input.type}.`
    );
  }
  const taken = edges.find((edge) => edge.target === target && portOfHandle(edge.targetHandle) === targetPort);
  if (taken) {
    return (
      `Input "${targetPort}" of ${target} is already fed by ${taken.source}.` +
      `${portOfHandle(taken.sourceHandle)}; delete that connection first.`
    );
  }
  const path = findPath(edges, target, source);
  if (path) return `This would make a cycle: ${[...path, target].join(" → ")}.`;
  return null;
}
