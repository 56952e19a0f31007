"""The dependency graph of a pipeline: who feeds whom, in which order steps may run.

Everything is iterative, so a 10,000-step chain does not hit the recursion limit, and every list
comes out in a stable order with document order as the tie-break.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from engine.document import Edge, PipelineDocument

__all__ = ["CycleError", "PipelineGraph", "find_cycles"]


class CycleError(ValueError):
    """The graph has a cycle. ``args[1]`` is one cycle as a list of node ids, as in graphlib."""


def find_cycles(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as node ids in edge order.

    ``edges`` are ``(source, target)`` pairs between ids in ``nodes``. Each cycle starts at the
    component's earliest node in ``nodes`` and is a shortest cycle through it; the last node has an
    edge back to the first, which is not repeated. A node with an edge to itself is a cycle of one.
    Cycles are ordered by their first node. Raises ValueError for an edge to an unknown node.
    """
    position = {node: index for index, node in enumerate(nodes)}
    successors: dict[str, list[str]] = {node: [] for node in position}
    for source, target in edges:
        for end in (source, target):
            if end not in position:
                raise ValueError(f"edge {source!r} -> {target!r} names unknown node {end!r}")
        successors[source].append(target)

    cycles = []
    for component in _strongly_connected_components(position, successors):
        if len(component) == 1:
            (only,) = component
            if only not in successors[only]:
                continue
        start = min(component, key=position.__getitem__)
        cycles.append(_shortest_cycle_through(start, component, successors))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _strongly_connected_components(
    nodes: Iterable[str], successors: Mapping[str, list[str]]
) -> list[set[str]]:
    # Tarjan's algorithm with an explicit stack of (node, iterator over its successors).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(successors[root]))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def _shortest_cycle_through(
    start: str, component: set[str], successors: Mapping[str, list[str]]
) -> list[str]:
    # Breadth-first inside the component, so the reported cycle is short and deterministic.
    parent: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in successors[node]:
            if child == start:
                path = []
                current: str | None = node
                while current is not None:
                    path.append(current)
                    current = parent[current]
                return path[::-1]
            if child in component and child not in parent:
                parent[child] = node
                queue.append(child)
    raise AssertionError(f"{start!r} is in a strongly connected component but on no cycle")


class PipelineGraph:
    """Nodes and edges of a pipeline, indexed for scheduling. Node lookups raise KeyError."""

    def __init__(self, nodes: Iterable[str], edges: Iterable[Edge]) -> None:
        self._nodes = tuple(nodes)
        self._edges = tuple(edges)
        self._position = {node: index for index, node in enumerate(self._nodes)}
        if len(self._position) != len(self._nodes):
            raise ValueError("node ids are not unique")
        incoming: dict[str, list[Edge]] = {node: [] for node in self._nodes}
        upstream: dict[str, set[str]] = {node: set() for node in self._nodes}
        downstream: dict[str, set[str]] = {node: set() for node in self._nodes}
        for edge in self._edges:
            for end in (edge.source, edge.target):
                if end not in self._position:
                    raise ValueError(f"edge {edge.source!r} -> {edge.target!r} names unknown node {end!r}")
            incoming[edge.target].append(edge)
            upstream[edge.target].add(edge.source)
            downstream[edge.source].add(edge.target)
        self._incoming = {node: tuple(edges) for node, edges in incoming.items()}
        self._upstream = {node: frozenset(nodes) for node, nodes in upstream.items()}
        self._downstream = {node: frozenset(nodes) for node, nodes in downstream.items()}

    @classmethod
    def from_document(cls, document: PipelineDocument) -> PipelineGraph:
        """The graph of a validated document."""
        return cls((node.id for node in document.nodes), document.edges)

    @property
    def nodes(self) -> tuple[str, ...]:
        """Node ids in document order."""
        return self._nodes

    def upstream(self, node_id: str) -> frozenset[str]:
        """Nodes with an edge into ``node_id``."""
        return self._upstream[node_id]

    def downstream(self, node_id: str) -> frozenset[str]:
        """Nodes with an edge from ``node_id``."""
        return self._downstream[node_id]

    def incoming(self, node_id: str) -> tuple[Edge, ...]:
        """Edges into ``node_id``, in document order."""
        return self._incoming[node_id]

    def descendants(self, node_id: str) -> frozenset[str]:
        """Nodes reachable from ``node_id`` (not including itself unless it is on a cycle)."""
        seen: set[str] = set()
        pending = list(self._downstream[node_id])
        while pending:
            node = pending.pop()
            if node not in seen:
                seen.add(node)
                pending.extend(self._downstream[node])
        return frozenset(seen)

    def topological_order(self) -> list[str]:
        """Every node after all of its upstream nodes; ties go to the earlier node in the document.

        Raises :class:`CycleError` if there is a cycle.
        """
        waiting = {node: len(self._upstream[node]) for node in self._nodes}
        heap = [self._position[node] for node, count in waiting.items() if count == 0]
        heapq.heapify(heap)
        order = []
        while heap:
            node = self._nodes[heapq.heappop(heap)]
            order.append(node)
            for child in self._downstream[node]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, self._position[child])
        if len(order) < len(self._nodes):
            pairs = [(edge.source, edge.target) for edge in self._edges]
            cycle = find_cycles(self._nodes, pairs)[0]
            raise CycleError(f"nodes are in a cycle: {' → '.join([*cycle, cycle[0]])}", cycle)
        return order

    def ready(self, states: Mapping[str, str]) -> list[str]:
        """Nodes whose state is ``"pending"`` and whose upstream nodes all ``"succeeded"``.

        Nodes missing from ``states`` count as neither; the result is in document order.
        """
        return [
            node
            for node in self._nodes
            if states.get(node) == "pending"
            and all(states.get(parent) == "succeeded" for parent in self._upstream[node])
        ]

    def __repr__(self) -> str:
        return f"<PipelineGraph: {len(self._nodes)} nodes, {len(self._edges)} edges>"
