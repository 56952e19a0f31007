import { describe, expect, it } from "vitest";
import { documentToGraph, graphToDocument, makeCatalog } from "./document.js";

const catalog = makeCatalog({});
const withTarget = {
  format: "iliad.pipeline", version: 1,
  nodes: [
    { id: "prep", block: "ocean.demo", version: "1.0.0", params: {}, position: { x: 0, y: 0 }, target: "cloud" },
    { id: "model", block: "ocean.demo", version: "1.0.0", params: {}, position: { x: 300, y: 0 } },
  ],
  edges: [],
};

describe("a node's compute target", () => {
  it("survives the way through the canvas and back", () => {
    const { nodes, edges, metadata } = documentToGraph(withTarget, catalog);
    expect(nodes[0].data.target).toBe("cloud");
    expect(graphToDocument(nodes, edges, metadata)).toEqual(withTarget);
  });

  it("leaves the document when set back to the run's target", () => {
    const { nodes, edges } = documentToGraph(withTarget, catalog);
    const cleared = nodes.map((node) => ({ ...node, data: { ...node.data, target: undefined } }));
    expect(graphToDocument(cleared, edges).nodes.map((node) => "target" in node)).toEqual([false, false]);
  });
});
