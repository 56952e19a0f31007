"""PipelineGraph, find_cycles and parse_document."""

from __future__ import annotations

from typing import Any

import pytest

from engine import (
    CycleError,
    DocumentError,
    Edge,
    PipelineDocument,
    PipelineGraph,
    Position,
    find_cycles,
    parse_document,
)


def edge(source: str, target: str, target_port: str = "in") -> Edge:
    return Edge(source=source, source_port="out", target=target, target_port=target_port)


def graph(nodes: str, *pairs: str) -> PipelineGraph:
    """``graph("abcd", "ab", "ac")``: single-letter node ids, edges as two-letter strings."""
    return PipelineGraph(list(nodes), [edge(pair[0], pair[1], f"from_{pair[0]}") for pair in pairs])


@pytest.fixture
def diamond() -> PipelineGraph:
    # a -> b -> d and a -> c -> d, with the nodes listed out of topological order.
    return graph("dbca", "ab", "ac", "bd", "cd")


def test_nodes_keep_document_order(diamond: PipelineGraph) -> None:
    assert diamond.nodes == ("d", "b", "c", "a")


def test_upstream_and_downstream(diamond: PipelineGraph) -> None:
    assert diamond.upstream("d") == frozenset("bc")
    assert diamond.upstream("a") == frozenset()
    assert diamond.downstream("a") == frozenset("bc")
    assert diamond.downstream("d") == frozenset()


def test_incoming_edges_in_document_order(diamond: PipelineGraph) -> None:
    assert diamond.incoming("d") == (edge("b", "d", "from_b"), edge("c", "d", "from_c"))
    assert diamond.incoming("a") == ()


def test_descendants(diamond: PipelineGraph) -> None:
    assert diamond.descendants("a") == frozenset("bcd")
    assert diamond.descendants("b") == frozenset("d")
    assert diamond.descendants("d") == frozenset()


def test_topological_order_breaks_ties_by_document_order(diamond: PipelineGraph) -> None:
    assert diamond.topological_order() == ["a", "b", "c", "d"]
    assert graph("dcba", "ab", "ac", "bd", "cd").topological_order() == ["a", "c", "b", "d"]


def test_topological_order_of_fan_out() -> None:
    fan = graph("xsrqp", "sx", "sr", "sq", "sp")
    assert fan.topological_order() == ["s", "x", "r", "q", "p"]
    assert fan.downstream("s") == frozenset("xrqp")
    assert fan.descendants("s") == frozenset("xrqp")


def test_topological_order_of_unconnected_nodes_is_document_order() -> None:
    assert graph("zyx").topological_order() == ["z", "y", "x"]


def test_topological_order_raises_on_cycle() -> None:
    with pytest.raises(CycleError) as raised:
        graph("abcd", "ab", "bc", "cb", "cd").topological_order()
    assert raised.value.args[1] == ["b", "c"]
    assert "b → c → b" in raised.value.args[0]


def test_ready(diamond: PipelineGraph) -> None:
    states = {"a": "pending", "b": "pending", "c": "pending", "d": "pending"}
    assert diamond.ready(states) == ["a"]
    states["a"] = "succeeded"
    assert diamond.ready(states) == ["b", "c"]
    states.update(b="succeeded", c="running")
    assert diamond.ready(states) == []
    states["c"] = "succeeded"
    assert diamond.ready(states) == ["d"]
    states.update(b="failed")
    assert diamond.ready(states) == []


def test_ready_ignores_nodes_without_state(diamond: PipelineGraph) -> None:
    assert diamond.ready({"b": "pending"}) == []
    assert diamond.ready({}) == []


def test_unknown_node_raises_key_error(diamond: PipelineGraph) -> None:
    for method in (diamond.upstream, diamond.downstream, diamond.incoming, diamond.descendants):
        with pytest.raises(KeyError):
            method("zz")


def test_constructor_rejects_bad_graphs() -> None:
    with pytest.raises(ValueError, match="unique"):
        PipelineGraph(["a", "a"], [])
    with pytest.raises(ValueError, match="unknown node 'z'"):
        PipelineGraph(["a"], [edge("a", "z")])


def test_long_chain_has_no_recursion_problems() -> None:
    count = 5000
    ids = [f"n{i}" for i in range(count)]
    chain = PipelineGraph(reversed(ids), [edge(ids[i - 1], ids[i]) for i in range(1, count)])
    assert chain.topological_order() == ids
    assert len(chain.descendants("n0")) == count - 1
    assert find_cycles(ids, [(ids[i - 1], ids[i]) for i in range(1, count)]) == []
    ring = [(ids[i - 1], ids[i]) for i in range(1, count)] + [(ids[-1], ids[0])]
    assert find_cycles(ids, ring) == [ids]


def test_find_cycles_one_per_component_ordered_by_first_node() -> None:
    nodes = ["a", "b", "c", "d", "e", "f"]
    pairs = [("e", "f"), ("f", "e"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "b"), ("d", "d")]
    assert find_cycles(nodes, pairs) == [["a", "b", "c"], ["d"], ["e", "f"]]


def test_find_cycles_prefers_shortest_cycle_through_first_node() -> None:
    pairs = [("a", "b"), ("b", "c"), ("c", "d"), ("d", "a"), ("b", "a")]
    assert find_cycles(list("abcd"), pairs) == [["a", "b"]]


def test_find_cycles_on_acyclic_graph() -> None:
    assert find_cycles(list("abcd"), [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]) == []
    assert find_cycles([], []) == []


def test_find_cycles_rejects_unknown_nodes() -> None:
    with pytest.raises(ValueError, match="unknown node 'x'"):
        find_cycles(["a"], [("a", "x")])


# -- parse_document -------------------------------------------------------------------------------


def document() -> dict[str, Any]:
    return {
        "format": "iliad.pipeline",
        "version": 1,
        "nodes": [
            {"id": "demo", "block": "ocean.demo_dataset", "version": "1.0.0"},
            {
                "id": "subset",
                "block": "ocean.subset",
                "version": "1.0.0",
                "params": {"lat_min": 41},
                "position": {"x": 120, "y": 40.5},
                "label": "Adriatic",
            },
        ],
        "edges": [{"source": "demo", "source_port": "dataset", "target": "subset", "target_port": "dataset"}],
        "metadata": {"title": "t"},
    }


def test_parse_document() -> None:
    parsed = parse_document(document())
    demo, subset = parsed.nodes
    assert (demo.params, demo.position, demo.label) == ({}, Position(0, 0), None)
    assert (subset.params, subset.position, subset.label) == (
        {"lat_min": 41},
        Position(120, 40.5),
        "Adriatic",
    )
    assert parsed.edges == (Edge("demo", "dataset", "subset", "dataset"),)
    assert parsed.metadata == {"title": "t"}
    assert parsed.node("subset") is subset
    with pytest.raises(KeyError):
        parsed.node("nope")


def test_parse_document_copies_params_and_round_trips() -> None:
    raw = document()
    parsed = parse_document(raw)
    raw["nodes"][1]["params"]["lat_min"] = 0
    assert parsed.nodes[1].params == {"lat_min": 41}
    again = parse_document(parsed.to_dict())
    assert again == parsed
    assert hash(again.nodes[1]) == hash(parsed.nodes[1])


def test_graph_from_document() -> None:
    parsed = parse_document(document())
    pipeline_graph = PipelineGraph.from_document(parsed)
    assert pipeline_graph.nodes == ("demo", "subset")
    assert pipeline_graph.incoming("subset") == parsed.edges
    assert isinstance(parsed, PipelineDocument)


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda d: d.update(version=2), "/format"),
        (lambda d: d.update(extra=1), "/extra"),
        (lambda d: d.update(nodes=None), "/nodes"),
        (lambda d: d["nodes"][0].update(id="9"), "/nodes/0/id"),
        (lambda d: d["nodes"][1].update(id="demo"), "/nodes/1/id"),
        (lambda d: d["nodes"][1].update(position={"x": 1}), "/nodes/1/position/y"),
        (lambda d: d["nodes"][1].update(label=None), "/nodes/1/label"),
        (lambda d: d["edges"][0].pop("source"), "/edges/0/source"),
    ],
)
def test_parse_document_rejects_invalid_structure(mutate: Any, pointer: str) -> None:
    raw = document()
    mutate(raw)
    with pytest.raises(DocumentError) as raised:
        parse_document(raw)
    assert raised.value.pointer == pointer


def test_parse_document_rejects_non_object() -> None:
    with pytest.raises(DocumentError):
        parse_document([])
