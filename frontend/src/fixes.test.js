import { describe, expect, it } from "vitest";
import { documentToGraph, graphToDocument, makeCatalog } from "./document.js";
import { FixError, fixLabel, fixOf, insertOnEdge } from "./fixes.js";

const port = (name, type, required = true) => ({ name, type, title: name, description: "", required });
const spec = (id, inputs, outputs, parameters = { type: "object", properties: {} }) => ({
  id, version: "1.0.0", title: id, description: "", category: "utility", inputs, outputs, parameters,
});
const catalog = makeCatalog({
  "data.open_gridded": { "1.0.0": spec("data.open_gridded", [], [port("dataset", "dataset"), port("metadata", "json")]) },
  "transform.convert_units": { "1.0.0": spec("transform.convert_units", [port("dataset", "dataset")], [port("dataset", "dataset")], {
    type: "object", properties: { variable: { type: "string" }, to_units: { type: "string" }, keep: { type: "boolean", default: true } } }) },
  "model.particle_drift": { "1.0.0": spec("model.particle_drift",
    [port("currents", "dataset"), port("wind", "dataset", false)], [port("density", "dataset")]) },
});

const doc = {
  format: "iliad.pipeline", version: 1,
  nodes: [
    { id: "wind", block: "data.open_gridded", version: "1.0.0", params: { source: "w.nc" }, position: { x: 0, y: 200 } },
    { id: "currents", block: "data.open_gridded", version: "1.0.0", params: { source: "c.nc" }, position: { x: 0, y: 0 } },
    { id: "drift", block: "model.particle_drift", version: "1.0.0", params: {}, position: { x: 400, y: 0 } },
  ],
  edges: [
    { source: "wind", source_port: "dataset", target: "drift", target_port: "wind" },
    { source: "currents", source_port: "dataset", target: "drift", target_port: "currents" },
  ],
};

const fixIssue = (edge = 1, params = { variable: "uo", to_units: "m s-1" }) => ({
  code: "edge.units_mismatch", pointer: `/edges/${edge}`, node: "drift", port: "currents", message: "cm s-1",
  details: { variable: "uo", fix: { insert: "transform.convert_units", version: "1.0.0", params, edge,
    title: "Insert unit conversion (uo to m s-1)" } },
});

describe("unit conversion fix", () => {
  it("finds the fix an issue offers and names its button", () => {
    expect(fixOf(fixIssue()).insert).toBe("transform.convert_units");
    expect(fixLabel(fixOf(fixIssue()))).toBe("Insert unit conversion");
    expect(fixOf({ code: "edge.units_unconvertible", details: {} })).toBeNull();
    expect(fixOf({ code: "input.missing" })).toBeNull();
  });

  it("inserts the block on the edge, with the fix's parameters, where the edge was", () => {
    const graph = documentToGraph(doc, catalog);
    const result = insertOnEdge(graph.nodes, graph.edges, fixIssue(), catalog);
    const out = graphToDocument(result.nodes, result.edges);
    expect(result.id).toBe("convert_units");
    expect(out.nodes.map((n) => n.id)).toEqual(["wind", "currents", "drift", "convert_units"]);
    expect(out.nodes[3]).toEqual({
      id: "convert_units", block: "transform.convert_units", version: "1.0.0",
      params: { keep: true, variable: "uo", to_units: "m s-1" }, position: { x: 200, y: 60 },
    });
    expect(out.edges).toEqual([
      { source: "wind", source_port: "dataset", target: "drift", target_port: "wind" },
      { source: "currents", source_port: "dataset", target: "convert_units", target_port: "dataset" },
      { source: "convert_units", source_port: "dataset", target: "drift", target_port: "currents" },
    ]);
    expect(result.nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(["convert_units"]);
  });

  it("chains a second conversion on the new edge with a fresh id", () => {
    const graph = documentToGraph(doc, catalog);
    const first = insertOnEdge(graph.nodes, graph.edges, fixIssue(), catalog);
    const second = insertOnEdge(first.nodes, first.edges, fixIssue(2, { variable: "vo", to_units: "m s-1" }), catalog);
    const out = graphToDocument(second.nodes, second.edges);
    expect(second.id).toBe("convert_units_2");
    expect(out.edges.slice(1)).toEqual([
      { source: "currents", source_port: "dataset", target: "convert_units", target_port: "dataset" },
      { source: "convert_units", source_port: "dataset", target: "convert_units_2", target_port: "dataset" },
      { source: "convert_units_2", source_port: "dataset", target: "drift", target_port: "currents" },
    ]);
  });

  it("refuses when the graph changed since the check", () => {
    const graph = documentToGraph(doc, catalog);
    expect(() => insertOnEdge(graph.nodes, graph.edges, fixIssue(0), catalog)).toThrow(FixError);
    expect(() => insertOnEdge(graph.nodes, graph.edges.slice(0, 1), fixIssue(), catalog)).toThrow(FixError);
    const unknown = fixIssue();
    unknown.details.fix.insert = "transform.nope";
    expect(() => insertOnEdge(graph.nodes, graph.edges, unknown, catalog)).toThrow(/not in the catalog/);
  });
});
