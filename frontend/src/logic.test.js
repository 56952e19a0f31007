import { describe, expect, it } from "vitest";
import { documentToGraph, freshNodeId, graphToDocument, makeCatalog, defaultParams, serialise, ImportError } from "./document.js";
import { connectionProblem, findPath } from "./connect.js";
import { initHistory, record, undo, redo, canUndo, canRedo } from "./history.js";

const port = (name, type, required = true) => ({ name, type, title: name, description: "", required });
const spec = (id, inputs, outputs, parameters = { type: "object", properties: {} }) => ({
  id, version: "1.0.0", title: id, description: "", category: "utility", inputs, outputs, parameters,
});
const catalog = makeCatalog({
  "ocean.demo": { "1.0.0": spec("ocean.demo", [], [port("dataset", "dataset")], {
    type: "object", properties: { days: { type: "integer", default: 30 }, area: { type: "string" } } }) },
  "ocean.mean": { "1.0.0": spec("ocean.mean", [port("dataset", "dataset")], [port("table", "table")]) },
  "util.any": { "1.0.0": spec("util.any", [port("x", "any", false)], [port("out", "json")]) },
});

const doc = {
  format: "iliad.pipeline", version: 1,
  nodes: [
    { id: "demo", block: "ocean.demo", version: "1.0.0", params: { days: 5 }, position: { x: 0, y: 10 } },
    { id: "mean", block: "ocean.mean", version: "1.0.0", params: {}, position: { x: 300, y: 10 }, label: "Mean" },
  ],
  edges: [{ source: "demo", source_port: "dataset", target: "mean", target_port: "dataset" }],
  metadata: { owner: "x" },
};

describe("document <-> graph", () => {
  it("round-trips a document exactly", () => {
    const graph = documentToGraph(doc, catalog);
    expect(serialise(graphToDocument(graph.nodes, graph.edges, graph.metadata))).toBe(serialise(doc));
  });
  it("keeps duplicate ids under an internal id and writes them back", () => {
    const dup = { ...doc, nodes: [doc.nodes[0], { ...doc.nodes[1], id: "demo" }], edges: [] };
    const graph = documentToGraph(dup, catalog);
    expect(new Set(graph.nodes.map((n) => n.id)).size).toBe(2);
    expect(graphToDocument(graph.nodes, graph.edges).nodes.map((n) => n.id)).toEqual(["demo", "demo"]);
  });
  it("refuses what is not a document", () => {
    expect(() => documentToGraph([], catalog)).toThrow(ImportError);
    expect(() => documentToGraph({ nodes: 3 }, catalog)).toThrow(ImportError);
  });
  it("makes fresh node ids and default parameters", () => {
    expect(freshNodeId("ocean.demo", ["demo", "demo_2"])).toBe("demo_3");
    expect(freshNodeId("ocean.3d", [])).toBe("n_3d");
    expect(defaultParams(catalog.latest("ocean.demo"))).toEqual({ days: 30 });
  });
});

describe("connection rules", () => {
  const graph = documentToGraph({ ...doc, edges: [] }, catalog);
  const extra = { id: "any", type: "block", position: { x: 0, y: 0 }, data: { block: "util.any", version: "1.0.0", params: {} } };
  const nodes = [...graph.nodes, extra];
  const c = (source, sp, target, tp) => ({ source, sourceHandle: `out:${sp}`, target, targetHandle: `in:${tp}` });
  it("accepts equal types and any", () => {
    expect(connectionProblem(c("demo", "dataset", "mean", "dataset"), nodes, [], catalog)).toBeNull();
    expect(connectionProblem(c("mean", "table", "any", "x"), nodes, [], catalog)).toBeNull();
  });
  it("refuses a type mismatch, a taken input, a self loop and a cycle, with reasons", () => {
    expect(connectionProblem(c("any", "out", "mean", "dataset"), nodes, [], catalog)).toMatch(/Incompatible types/);
    const edges = [{ source: "demo", target: "mean", sourceHandle: "out:dataset", targetHandle: "in:dataset" }];
    expect(connectionProblem(c("demo", "dataset", "mean", "dataset"), nodes, edges, catalog)).toMatch(/already fed/);
    expect(connectionProblem(c("any", "out", "any", "x"), nodes, [], catalog)).toMatch(/cannot feed itself/);
    const loop = [{ source: "any", target: "mean", sourceHandle: "out:out", targetHandle: "in:dataset" }];
    expect(findPath(loop, "any", "mean")).toEqual(["any", "mean"]);
    expect(connectionProblem(c("mean", "table", "any", "x"), nodes, loop, catalog)).toMatch(/cycle: any → mean → any/);
  });
});

describe("history", () => {
  it("undoes and redoes exact states and merges typing", () => {
    let h = initHistory("a");
    h = record(h, "b");
    h = record(h, "c", "params:x");
    h = record(h, "d", "params:x");
    expect(h.past).toEqual(["a", "b"]);
    h = undo(h);
    expect(h.present).toBe("b");
    h = undo(h);
    expect(h.present).toBe("a");
    expect(canUndo(h)).toBe(false);
    h = redo(redo(h));
    expect(h.present).toBe("d");
    expect(canRedo(h)).toBe(false);
    h = record(undo(h), "e");
    expect(h.future).toEqual([]);
  });
});

describe("a parameter form's change", () => {
  const schema = { type: "object", properties: { days: { type: "integer", default: 30 }, area: { type: "string" }, start: { type: "string", default: "2021-01-01" } } };
  it("that only fills in defaults is not a change of the user's (after an undo or a live edit)", async () => {
    const { onlyDefaultsAdded } = await import("./document.js");
    expect(onlyDefaultsAdded(schema, { days: 5 }, { days: 5, start: "2021-01-01" })).toBe(true);
    expect(onlyDefaultsAdded(schema, { days: 5 }, { days: 5 })).toBe(true);
  });
  it("that changes, removes or adds a value other than its default is", async () => {
    const { onlyDefaultsAdded } = await import("./document.js");
    expect(onlyDefaultsAdded(schema, { days: 5 }, { days: 9, start: "2021-01-01" })).toBe(false);
    expect(onlyDefaultsAdded(schema, { days: 5 }, {})).toBe(false);
    expect(onlyDefaultsAdded(schema, { days: 5 }, { days: 5, start: "2022-01-01" })).toBe(false);
    expect(onlyDefaultsAdded(schema, {}, { area: "med" })).toBe(false);
  });
});
