import { describe, expect, it } from "vitest";
import * as Y from "yjs";
import { serialise } from "../document.js";
import { alignTo, isEmpty, readDocument, writeDocument } from "./ydoc.js";
import {
  OperationError,
  addNode,
  connect,
  disconnect,
  localChangeOnto,
  mergeDocuments,
  moveNode,
  removeNodes,
  renameNode,
  setLabel,
  setParam,
} from "./operations.js";

const base = {
  format: "iliad.pipeline",
  version: 1,
  nodes: [
    { id: "demo", block: "ocean.demo", version: "1.0.0", params: { days: 5, area: "med" }, position: { x: 0, y: 10 } },
    { id: "mean", block: "ocean.mean", version: "1.0.0", params: {}, position: { x: 300, y: 10 }, label: "Mean", target: "hpc" },
  ],
  edges: [{ source: "demo", source_port: "dataset", target: "mean", target_port: "dataset" }],
  metadata: { owner: "x" },
};

/** Two replicas that exchange every update, like two browsers through the server. */
function pair() {
  const a = new Y.Doc();
  const b = new Y.Doc();
  a.on("update", (update, origin) => origin !== "remote" && Y.applyUpdate(b, update, "remote"));
  b.on("update", (update, origin) => origin !== "remote" && Y.applyUpdate(a, update, "remote"));
  return { a, b };
}

describe("the shared document", () => {
  it("reads back exactly what was written", () => {
    const ydoc = new Y.Doc();
    expect(isEmpty(ydoc)).toBe(true);
    writeDocument(ydoc, base);
    expect(isEmpty(ydoc)).toBe(false);
    expect(serialise(readDocument(ydoc, base))).toBe(serialise(base));
  });

  it("writes nothing when nothing changed", () => {
    const ydoc = new Y.Doc();
    writeDocument(ydoc, base);
    let updates = 0;
    ydoc.on("update", () => (updates += 1));
    expect(writeDocument(ydoc, readDocument(ydoc, base))).toBe(false);
    expect(updates).toBe(0);
  });

  it("keeps concurrent parameter edits on different nodes and on one node", () => {
    const { a, b } = pair();
    writeDocument(a, base);
    const docA = readDocument(a, base);
    const docB = readDocument(b, base);
    // offline: neither sees the other's change until they reconnect
    const offlineA = new Y.Doc();
    const offlineB = new Y.Doc();
    Y.applyUpdate(offlineA, Y.encodeStateAsUpdate(a));
    Y.applyUpdate(offlineB, Y.encodeStateAsUpdate(b));
    writeDocument(offlineA, setParam(docA, "demo", "days", 9));
    writeDocument(offlineB, setLabel(setParam(docB, "demo", "area", "baltic"), "mean", "Average"));
    Y.applyUpdate(offlineA, Y.encodeStateAsUpdate(offlineB));
    Y.applyUpdate(offlineB, Y.encodeStateAsUpdate(offlineA));
    const merged = readDocument(offlineA, base);
    expect(merged.nodes[0].params).toEqual({ days: 9, area: "baltic" });
    expect(merged.nodes[1].label).toBe("Average");
    expect(serialise(readDocument(offlineB, base))).toBe(serialise(merged));
  });

  it("keeps nodes added at the same time by two people, and a move by a third", () => {
    const { a, b } = pair();
    writeDocument(a, base);
    const c = new Y.Doc();
    Y.applyUpdate(c, Y.encodeStateAsUpdate(a));
    const plot = { id: "plot", block: "ocean.plot", version: "1.0.0", params: {}, position: { x: 600, y: 0 } };
    const map = { id: "map", block: "ocean.map", version: "1.0.0", params: {}, position: { x: 600, y: 200 } };
    const offline = new Y.Doc();
    Y.applyUpdate(offline, Y.encodeStateAsUpdate(a));
    writeDocument(offline, addNode(readDocument(offline, base), map));
    writeDocument(b, connect(addNode(readDocument(b, base), plot), { source: "mean", source_port: "table", target: "plot", target_port: "table" }));
    writeDocument(c, moveNode(readDocument(c, base), "demo", { x: 50.4, y: 60 }));
    Y.applyUpdate(a, Y.encodeStateAsUpdate(offline));
    Y.applyUpdate(a, Y.encodeStateAsUpdate(c));
    const doc = readDocument(a, base);
    expect(doc.nodes.map((node) => node.id).sort()).toEqual(["demo", "map", "mean", "plot"]);
    expect(doc.nodes[0].position).toEqual({ x: 50, y: 60 });
    expect(doc.edges).toHaveLength(2);
  });

  it("removes a node and its edges everywhere", () => {
    const { a, b } = pair();
    writeDocument(a, base);
    writeDocument(b, removeNodes(readDocument(b, base), ["mean"]));
    const doc = readDocument(a, base);
    expect(doc.nodes.map((node) => node.id)).toEqual(["demo"]);
    expect(doc.edges).toEqual([]);
  });
});

describe("a version saved elsewhere", () => {
  it("serialises like this editor's document when only key order differs", () => {
    const shuffled = JSON.parse(JSON.stringify(base));
    shuffled.nodes[0] = { position: base.nodes[0].position, params: { area: "med", days: 5 }, version: "1.0.0", block: "ocean.demo", id: "demo" };
    expect(serialise(shuffled)).not.toBe(serialise(base));
    expect(serialise(alignTo(shuffled, base))).toBe(serialise(base));
  });
});

describe("editing operations", () => {
  it("never change their input", () => {
    const before = serialise(base);
    setParam(base, "demo", "days", 1);
    renameNode(base, "demo", "source");
    removeNodes(base, ["demo"]);
    expect(serialise(base)).toBe(before);
  });

  it("refuse what the server's validation refuses", () => {
    expect(() => addNode(base, { id: "demo", block: "x", version: "1.0.0", params: {} })).toThrow(OperationError);
    expect(() => addNode(base, { id: "1bad", block: "x", version: "1.0.0", params: {} })).toThrow(/valid node id/);
    expect(() => connect(base, { source: "demo", source_port: "dataset", target: "mean", target_port: "dataset" })).toThrow(/already connected/);
    expect(() => connect(base, { source: "demo", source_port: "x", target: "nowhere", target_port: "y" })).toThrow(/Both ends/);
    expect(() => setParam(base, "nowhere", "days", 1)).toThrow(/no node nowhere/);
  });

  it("rename carries the edges along; disconnect removes one edge", () => {
    const renamed = renameNode(base, "demo", "source");
    expect(renamed.edges[0].source).toBe("source");
    expect(disconnect(renamed, renamed.edges[0]).edges).toEqual([]);
  });
});

describe("merging a refused save", () => {
  it("re-applies my changes on top of theirs, parameter by parameter", () => {
    const theirs = setParam(base, "demo", "days", 7);
    const mine = setParam(setLabel(base, "demo", "Source"), "demo", "area", "baltic");
    const { document, conflicts } = mergeDocuments(base, mine, theirs);
    expect(document.nodes[0].params).toEqual({ days: 7, area: "baltic" });
    expect(document.nodes[0].label).toBe("Source");
    expect(conflicts).toEqual([]);
  });

  it("lists what both changed (mine wins) and keeps their new nodes", () => {
    const plot = { id: "plot", block: "ocean.plot", version: "1.0.0", params: {} };
    const theirs = addNode(setParam(base, "demo", "days", 7), plot);
    const mine = removeNodes(setParam(base, "demo", "days", 3), ["mean"]);
    const { document, conflicts } = mergeDocuments(base, mine, theirs);
    expect(document.nodes.map((node) => node.id)).toEqual(["demo", "plot"]);
    expect(document.nodes[0].params.days).toBe(3);
    expect(document.edges).toEqual([]);
    expect(conflicts).toEqual(["demo.params.days"]);
  });
});

describe("a local edit made before someone else's change was drawn", () => {
  it("writes only my change: theirs, already in the shared document, stays", () => {
    const { a, b } = pair();
    writeDocument(a, base);
    const drawnByB = readDocument(b, base); // what b's canvas shows
    writeDocument(a, setParam(readDocument(a, base), "demo", "days", 9)); // arrives at b, not drawn yet
    const mine = setLabel(setParam(drawnByB, "demo", "area", "baltic"), "mean", "Average");
    writeDocument(b, localChangeOnto(drawnByB, mine, readDocument(b, mine)));
    for (const replica of [a, b]) {
      const doc = readDocument(replica, base);
      expect(doc.nodes[0].params).toEqual({ days: 9, area: "baltic" });
      expect(doc.nodes[1].label).toBe("Average");
    }
  });

  it("is my document as it is when nobody changed anything meanwhile", () => {
    const mine = setParam(base, "demo", "days", 2);
    expect(localChangeOnto(base, mine, JSON.parse(JSON.stringify(base)))).toBe(mine);
    expect(localChangeOnto(null, mine, null)).toBe(mine);
  });
});
