"""How a run is shown to people: its steps in pipeline order under their labels, the pipeline drawn as
a graph, and which results are deliverables. Pure functions of the run's (snapshotted) document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NODE_WIDTH = 184
NODE_HEIGHT = 62
COLUMN_GAP = 56
ROW_GAP = 18
MARGIN = 6


def _nodes(document: Mapping[str, Any]) -> list[dict]:
    return [n for n in document.get("nodes") or [] if isinstance(n, Mapping) and isinstance(n.get("id"), str)]


def _edges(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(source, source_port, target) of each well-formed edge between known nodes."""
    known = {n["id"] for n in _nodes(document)}
    return [
        (e["source"], e.get("source_port", ""), e["target"])
        for e in document.get("edges") or []
        if isinstance(e, Mapping) and e.get("source") in known and e.get("target") in known
    ]


def node_labels(document: Mapping[str, Any]) -> dict[str, str]:
    """Node id → what users call it: the label they gave it, else its id."""
    return {n["id"]: (str(n.get("label") or "").strip() or n["id"]) for n in _nodes(document)}


def consumed_ports(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(node, output port) pairs another step reads: their artifacts are intermediate results; every
    other output is a deliverable."""
    return {(source, port) for source, port, _ in _edges(document)}


def depths(document: Mapping[str, Any]) -> dict[str, int]:
    """Node id → length of the longest path reaching it from a source (0 for sources). Nodes on a
    cycle (never in a validated document) get the depth reached before it."""
    ids = [n["id"] for n in _nodes(document)]
    incoming = {node: [] for node in ids}
    for source, _, target in _edges(document):
        incoming[target].append(source)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def depth_of(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            return 0
        visiting.add(node)
        value = max((depth_of(parent) + 1 for parent in incoming[node]), default=0)
        visiting.discard(node)
        depth[node] = value
        return value

    for node in ids:
        depth_of(node)
    return depth


def step_order(layout: Mapping[str, Any]) -> list[str]:
    """Node ids in the order the pipeline reads, from its :func:`graph_layout`: column by column, top
    to bottom."""
    return [node["id"] for node in sorted(layout["nodes"], key=lambda n: (n["x"], n["y"]))]


def graph_layout(document: Mapping[str, Any]) -> dict[str, Any]:
    """The pipeline as a left-to-right layered drawing: a column per depth, each node placed near the
    mean row of the nodes feeding it (one barycentre pass). Returns ``nodes`` (id, label, block, x, y,
    width, height), ``edges`` (source, target and an SVG path ``d``), ``width`` and ``height``."""
    nodes = _nodes(document)
    labels = node_labels(document)
    depth = depths(document)
    parents: dict[str, list[str]] = {n["id"]: [] for n in nodes}
    for source, _, target in _edges(document):
        parents[target].append(source)
    columns: dict[int, list[str]] = {}
    for node in nodes:  # document order first: stable for nodes without parents
        columns.setdefault(depth.get(node["id"], 0), []).append(node["id"])
    row: dict[str, float] = {}
    for column in sorted(columns):
        members = columns[column]
        order = {node: index for index, node in enumerate(members)}

        def key(node: str, order=order) -> tuple[float, int]:
            placed = [row[parent] for parent in parents[node] if parent in row]
            return (sum(placed) / len(placed) if placed else order[node], order[node])

        members.sort(key=key)
        for index, node in enumerate(members):
            row[node] = index
    blocks = {n["id"]: str(n.get("block", "")) for n in nodes}
    placed_nodes = []
    position: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        for index, node in enumerate(members):
            x = MARGIN + column * (NODE_WIDTH + COLUMN_GAP)
            y = MARGIN + index * (NODE_HEIGHT + ROW_GAP)
            position[node] = (x, y)
            placed_nodes.append(
                {"id": node, "label": labels[node], "block": blocks[node], "x": x, "y": y,
                 "width": NODE_WIDTH, "height": NODE_HEIGHT}
            )  # fmt: skip
    edges = []
    for source, target in dict.fromkeys((s, t) for s, _, t in _edges(document)):
        (x1, y1), (x2, y2) = position[source], position[target]
        x1, y1, y2 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2, y2 + NODE_HEIGHT // 2
        bend = max(COLUMN_GAP // 2, (x2 - x1) // 2)
        edges.append(
            {"source": source, "target": target,
             "d": f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"}
        )  # fmt: skip
    width = MARGIN * 2 + (max(columns, default=0) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    tallest = max((len(members) for members in columns.values()), default=1)
    height = MARGIN * 2 + tallest * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return {"nodes": placed_nodes, "edges": edges, "width": width, "height": height}
