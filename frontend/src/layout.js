// Auto-layout with elkjs (layered, left to right). elkjs is large, so it is loaded on first use.
let elkPromise = null;

function elk() {
  if (!elkPromise) {
    elkPromise = import("elkjs/lib/elk.bundled.js").then((module) => {
      const ELK = module.default || module;
      return new ELK();
    });
  }
  return elkPromise;
}

/** {nodeId: {x, y}} for the React Flow nodes and edges. */
export async function layeredLayout(nodes, edges) {
  const engine = await elk();
  const ids = new Set(nodes.map((node) => node.id));
  const graph = {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "RIGHT",
      "elk.spacing.nodeNode": "90",
      "elk.layered.spacing.nodeNodeBetweenLayers": "100",
      "elk.layered.nodePlacement.strategy": "BRANDES_KOEPF",
    },
    children: nodes.map((node) => ({
      id: node.id,
      width: (node.measured && node.measured.width) || 230,
      height: (node.measured && node.measured.height) || 120,
    })),
    edges: edges
      .filter((edge) => ids.has(edge.source) && ids.has(edge.target))
      .map((edge) => ({ id: edge.id, sources: [edge.source], targets: [edge.target] })),
  };
  const result = await engine.layout(graph);
  const positions = {};
  for (const child of result.children || []) positions[child.id] = { x: Math.round(child.x + 20), y: Math.round(child.y + 20) };
  return positions;
}
