"""validate_document: one minimal document per issue code, plus combinations, fuzzing and timing."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest

from engine import CODES, Limits, ValidationIssue, parse_document, validate_document


def port(name: str, type_: str, *, required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "title": name, "description": "", "required": required}


def spec(
    block_id: str,
    version: str = "1.0.0",
    *,
    inputs: tuple[dict[str, Any], ...] = (),
    outputs: tuple[dict[str, Any], ...] = (),
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": block_id,
        "version": version,
        "title": block_id,
        "description": "",
        "category": "transform",
        "inputs": list(inputs),
        "outputs": list(outputs),
        "parameters": parameters or {"type": "object", "properties": {}, "additionalProperties": False},
        "resources": {"cpus": 1, "memory_mb": 1024, "walltime_s": 3600},
    }


SUBSET_PARAMETERS = {
    "type": "object",
    "properties": {"lat_min": {"type": "number", "minimum": -90, "maximum": 90}},
    "additionalProperties": False,
}

CATALOG: dict[str, dict[str, dict[str, Any]]] = {
    "ocean.demo_dataset": {"1.0.0": spec("ocean.demo_dataset", outputs=(port("dataset", "dataset"),))},
    "ocean.subset": {
        version: spec(
            "ocean.subset",
            version,
            inputs=(port("dataset", "dataset"),),
            outputs=(port("dataset", "dataset"),),
            parameters=SUBSET_PARAMETERS,
        )
        for version in ("1.0.0", "1.1.0", "0.9.0")
    },
    "ocean.area_mean": {
        "1.0.0": spec(
            "ocean.area_mean",
            inputs=(port("dataset", "dataset"),),
            outputs=(port("table", "table"),),
            parameters={
                "type": "object",
                "properties": {"variable": {"type": "string", "minLength": 1}},
                "required": ["variable"],
                "additionalProperties": False,
            },
        )
    },
    "plot.timeseries": {
        "1.0.0": spec(
            "plot.timeseries", inputs=(port("table", "table"),), outputs=(port("figure", "figure"),)
        )
    },
    "ocean.merge": {
        "1.0.0": spec(
            "ocean.merge",
            inputs=(
                port("left", "dataset"),
                port("right", "dataset"),
                port("mask", "dataset", required=False),
            ),
            outputs=(port("dataset", "dataset"),),
            parameters={"type": "object", "properties": {"how": {"enum": ["inner", "outer"]}}},
        )
    },
    "util.inspect": {
        "1.0.0": spec(
            "util.inspect",
            inputs=(port("value", "any"), port("extra", "table", required=False)),
            outputs=(port("report", "json"),),
        )
    },
}


def node(node_id: str, block: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "block": block, "version": "1.0.0", **extra}


def edge(source: str, source_port: str, target: str, target_port: str) -> dict[str, str]:
    return {"source": source, "source_port": source_port, "target": target, "target_port": target_port}


def pipeline(nodes: list[Any], edges: list[Any], **extra: Any) -> dict[str, Any]:
    return {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": edges, **extra}


def valid_document() -> dict[str, Any]:
    """demo -> subset -> mean: three nodes, every input connected."""
    return pipeline(
        [
            node("demo", "ocean.demo_dataset", position={"x": 0, "y": 0}, label="Demo data"),
            node("subset", "ocean.subset", params={"lat_min": 41}, position={"x": 120, "y": 40}),
            node("mean", "ocean.area_mean", params={"variable": "sst"}),
        ],
        [edge("demo", "dataset", "subset", "dataset"), edge("subset", "dataset", "mean", "dataset")],
        metadata={"title": "Adriatic SST"},
    )


def codes(document: object, **kwargs: Any) -> list[str]:
    return [issue.code for issue in validate_document(document, CATALOG, **kwargs)]


def only_issue(document: object, code: str, **kwargs: Any) -> ValidationIssue:
    issues = validate_document(document, CATALOG, **kwargs)
    assert [issue.code for issue in issues] == [code], issues
    return issues[0]


# -- valid documents ------------------------------------------------------------------------------


def test_valid_three_node_document_has_no_issues() -> None:
    assert validate_document(valid_document(), CATALOG) == []


def test_defaults_and_optional_keys_are_accepted() -> None:
    document = pipeline([node("demo", "ocean.demo_dataset")], [])
    assert validate_document(document, CATALOG) == []
    parsed = parse_document(document)
    assert parsed.nodes[0].params == {}
    assert (parsed.nodes[0].position.x, parsed.nodes[0].position.y) == (0, 0)


def test_empty_pipeline_is_valid() -> None:
    assert validate_document(pipeline([], []), CATALOG) == []


def test_any_input_accepts_every_type_and_optional_inputs_may_stay_open() -> None:
    document = pipeline(
        [node("demo", "ocean.demo_dataset"), node("look", "util.inspect")],
        [edge("demo", "dataset", "look", "value")],
    )
    assert validate_document(document, CATALOG) == []


def test_compatible_rule_can_be_replaced() -> None:
    document = pipeline(
        [node("demo", "ocean.demo_dataset"), node("plot", "plot.timeseries")],
        [edge("demo", "dataset", "plot", "table")],
    )
    assert codes(document) == ["edge.type_mismatch"]
    assert validate_document(document, CATALOG, compatible=lambda output, input_: True) == []


# -- document.* -----------------------------------------------------------------------------------


@pytest.mark.parametrize("document", [None, [], "pipeline", 3, 2.5, True])
def test_not_object(document: object) -> None:
    issue = only_issue(document, "document.not_object")
    assert issue.pointer == ""
    assert issue.node is None and issue.port is None


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"format": "other.pipeline"}, "/format"),
        ({"version": 2}, "/version"),
        ({"version": "1"}, "/version"),
        ({"version": True}, "/version"),
    ],
)
def test_unsupported_format(change: dict[str, Any], pointer: str) -> None:
    issue = only_issue({**valid_document(), **change}, "document.unsupported_format")
    assert issue.pointer == pointer
    assert "iliad.pipeline" in issue.message


def test_unsupported_format_when_format_missing() -> None:
    document = valid_document()
    del document["format"]
    assert only_issue(document, "document.unsupported_format").pointer == "/format"


@pytest.mark.parametrize(
    ("mutate", "pointer", "node_id"),
    [
        (lambda d: d.update(nodes={}), "/nodes", None),
        (lambda d: d.pop("edges"), "/edges", None),
        (lambda d: d.update(extra=1), "/extra", None),
        (lambda d: d.update(metadata=[]), "/metadata", None),
        (lambda d: d["nodes"].append(None), "/nodes/3", None),
        (lambda d: d["edges"].append("demo->subset"), "/edges/2", None),
        (lambda d: d["nodes"].append(node("", "ocean.demo_dataset")), "/nodes/3/id", None),
        (lambda d: d["nodes"].append(node("mean value", "ocean.demo_dataset")), "/nodes/3/id", None),
        (lambda d: d["nodes"].append(node("9mean", "ocean.demo_dataset")), "/nodes/3/id", None),
        (lambda d: d["nodes"].append(node("_mean", "ocean.demo_dataset")), "/nodes/3/id", None),
        (lambda d: d["nodes"].append(node("m" * 65, "ocean.demo_dataset")), "/nodes/3/id", None),
        (lambda d: d["nodes"].append(node(7, "ocean.demo_dataset")), "/nodes/3/id", None),  # type: ignore[arg-type]
        (
            lambda d: d["nodes"].append({"block": "ocean.demo_dataset", "version": "1.0.0"}),
            "/nodes/3/id",
            None,
        ),
        (lambda d: d["nodes"][1].update(params=[41]), "/nodes/1/params", "subset"),
        (lambda d: d["nodes"][1].update(position=None), "/nodes/1/position", "subset"),
        (lambda d: d["nodes"][1].update(position={"x": 1}), "/nodes/1/position/y", "subset"),
        (lambda d: d["nodes"][1].update(position={"x": 1, "y": "2"}), "/nodes/1/position/y", "subset"),
        (lambda d: d["nodes"][1].update(position={"x": True, "y": 2}), "/nodes/1/position/x", "subset"),
        (lambda d: d["nodes"][1].update(position={"x": 1, "y": 2, "z": 3}), "/nodes/1/position/z", "subset"),
        (lambda d: d["nodes"][1].update(label=5), "/nodes/1/label", "subset"),
        (lambda d: d["nodes"][1].update(colour="red"), "/nodes/1/colour", "subset"),
        (lambda d: d["nodes"][1].update(version=1), "/nodes/1/version", "subset"),
        (lambda d: d["nodes"][1].pop("block"), "/nodes/1/block", "subset"),
        (lambda d: d["edges"][0].update(source=None), "/edges/0/source", None),
        (lambda d: d["edges"][0].pop("target_port"), "/edges/0/target_port", None),
        (lambda d: d["edges"][1].update(weight=2), "/edges/1/weight", None),
        (lambda d: d["edges"][1].update({"a/b~c": 1}), "/edges/1/a~1b~0c", None),
    ],
)
def test_malformed(mutate: Any, pointer: str, node_id: str | None) -> None:
    document = valid_document()
    mutate(document)
    issue = only_issue(document, "document.malformed")
    assert issue.pointer == pointer
    assert issue.node == node_id
    assert issue.message[0].isupper() and issue.message.endswith(".")


def test_too_large() -> None:
    document = valid_document()
    document["metadata"] = {"notes": "x" * 2000}
    issue = only_issue(document, "document.too_large", limits=Limits(max_bytes=1000))
    assert issue.pointer == ""
    assert issue.details["limit"] == 1000


def test_too_large_stops_before_other_checks() -> None:
    document = pipeline([node("a", "no.such_block")], [], metadata={"notes": "x" * 2000})
    assert codes(document, limits=Limits(max_bytes=1000)) == ["document.too_large"]


def test_too_many_nodes() -> None:
    issue = only_issue(valid_document(), "document.too_many_nodes", limits=Limits(max_nodes=2))
    assert issue.pointer == "/nodes"
    assert issue.details == {"count": 3, "limit": 2}


def test_too_many_edges() -> None:
    issue = only_issue(valid_document(), "document.too_many_edges", limits=Limits(max_edges=1))
    assert issue.pointer == "/edges"


def test_too_many_nodes_stops_before_node_checks() -> None:
    document = pipeline([node(f"n{i}", "no.such_block") for i in range(4)], [])
    assert codes(document, limits=Limits(max_nodes=3)) == ["document.too_many_nodes"]


# -- node.* ---------------------------------------------------------------------------------------


def test_duplicate_id() -> None:
    document = valid_document()
    document["nodes"].append(node("subset", "ocean.demo_dataset"))
    issue = only_issue(document, "node.duplicate_id")
    assert (issue.pointer, issue.node, issue.details) == ("/nodes/3/id", "subset", {"first": 1})


def test_unknown_block() -> None:
    document = valid_document()
    document["nodes"][1]["block"] = "ocean.subsett"
    issue = only_issue(document, "node.unknown_block")
    assert (issue.pointer, issue.node) == ("/nodes/1/block", "subset")
    assert "'ocean.subset'" in issue.message  # the close match is suggested


def test_unknown_block_skips_port_checks_on_its_edges() -> None:
    document = valid_document()
    document["nodes"][1]["block"] = "ocean.nothing"
    document["edges"][0]["target_port"] = "whatever"
    assert codes(document) == ["node.unknown_block"]


def test_unknown_version_lists_known_versions() -> None:
    document = valid_document()
    document["nodes"][1]["version"] = "2.0.0"
    issue = only_issue(document, "node.unknown_version")
    assert (issue.pointer, issue.node) == ("/nodes/1/version", "subset")
    assert "0.9.0, 1.0.0, 1.1.0" in issue.message
    assert issue.details["known_versions"] == ["0.9.0", "1.0.0", "1.1.0"]


def test_invalid_params_points_into_params() -> None:
    document = valid_document()
    document["nodes"][1]["params"] = {"lat_min": 120}
    issue = only_issue(document, "node.invalid_params")
    assert (issue.pointer, issue.node, issue.port) == ("/nodes/1/params/lat_min", "subset", None)
    assert "lat_min" in issue.message and "90" in issue.message
    assert issue.details["keyword"] == "maximum"


def test_invalid_params_one_issue_per_error() -> None:
    document = valid_document()
    document["nodes"][2]["params"] = {"variable": 3, "unit": "K"}
    issues = validate_document(document, CATALOG)
    assert [issue.code for issue in issues] == ["node.invalid_params", "node.invalid_params"]
    assert {issue.pointer for issue in issues} == {"/nodes/2/params/variable", "/nodes/2/params"}


def test_missing_required_param_points_at_params() -> None:
    document = valid_document()
    document["nodes"][2]["params"] = {}
    issue = only_issue(document, "node.invalid_params")
    assert issue.pointer == "/nodes/2/params"
    assert issue.message == "Parameter 'variable' of node 'mean' is required."  # no title in this catalog


def test_a_params_problem_names_the_parameter_as_the_form_shows_it() -> None:
    catalog = copy.deepcopy(CATALOG)
    for spec in catalog["ocean.area_mean"].values():
        spec["parameters"]["properties"]["variable"]["title"] = "Variable"
    document = valid_document()
    document["nodes"][2]["params"] = {"variable": 3}
    [issue] = validate_document(document, catalog)
    assert issue.message == "Variable (variable) of node 'mean': 3 is not of type 'string'."
    document["nodes"][2]["params"] = {}
    [issue] = validate_document(document, catalog)
    assert issue.message == "Variable (variable) of node 'mean' is required."


def test_params_format_keyword_is_checked_like_the_runner_does() -> None:
    catalog = copy.deepcopy(CATALOG)
    catalog["ocean.demo_dataset"]["1.0.0"]["parameters"] = {
        "type": "object",
        "properties": {"start": {"type": "string", "format": "date"}},
    }
    document = pipeline([node("demo", "ocean.demo_dataset", params={"start": "2021-02-30"})], [])
    issues = validate_document(document, catalog)
    assert [issue.code for issue in issues] == ["node.invalid_params"]
    issue = issues[0]
    assert issue.pointer == "/nodes/0/params/start"
    assert "'2021-02-30' is not a 'date'" in issue.message
    fine = pipeline([node("demo", "ocean.demo_dataset", params={"start": "2021-02-28"})], [])
    assert validate_document(fine, catalog) == []


# -- edge.* ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("end", "pointer"), [("source", "/edges/1/source"), ("target", "/edges/1/target")])
def test_edge_unknown_node(end: str, pointer: str) -> None:
    document = valid_document()
    document["edges"][1][end] = "ghost"
    if end == "target":
        # The real target's input is now unconnected; feed it from elsewhere to keep one defect.
        document["edges"].append(edge("demo", "dataset", "mean", "dataset"))
    issue = only_issue(document, "edge.unknown_node")
    assert issue.pointer == pointer
    assert issue.details == {"node": "ghost", "end": end}
    assert "'ghost'" in issue.message


def test_edge_to_invalid_node_id_is_not_reported_twice() -> None:
    document = valid_document()
    document["nodes"][2]["id"] = "2mean"
    document["edges"][1]["target"] = "2mean"
    assert codes(document) == ["document.malformed"]


@pytest.mark.parametrize(
    ("end", "port_name", "listed"),
    [("source", "data", "outputs: dataset"), ("target", "input", "inputs: dataset")],
)
def test_edge_unknown_port(end: str, port_name: str, listed: str) -> None:
    document = valid_document()
    document["edges"][1][f"{end}_port"] = port_name
    if end == "target":
        document["nodes"][2] = node("mean", "util.inspect")
        document["edges"].append(edge("demo", "dataset", "mean", "value"))
        listed = "inputs: value, extra"
    issue = only_issue(document, "edge.unknown_port")
    assert issue.pointer == f"/edges/1/{end}_port"
    assert (issue.node, issue.port) == ({"source": "subset", "target": "mean"}[end], port_name)
    assert listed in issue.message


def test_edge_type_mismatch_names_both_types() -> None:
    document = pipeline(
        [node("demo", "ocean.demo_dataset"), node("plot", "plot.timeseries")],
        [edge("demo", "dataset", "plot", "table")],
    )
    issue = only_issue(document, "edge.type_mismatch")
    assert (issue.pointer, issue.node, issue.port) == ("/edges/0", "plot", "table")
    assert "'dataset'" in issue.message and "'table'" in issue.message
    assert issue.details == {"output_type": "dataset", "input_type": "table"}


def test_edge_duplicate() -> None:
    document = valid_document()
    document["edges"].append(edge("demo", "dataset", "subset", "dataset"))
    issue = only_issue(document, "edge.duplicate")
    assert (issue.pointer, issue.details) == ("/edges/2", {"first": 0})


def test_edge_input_taken() -> None:
    document = valid_document()
    document["edges"].append(edge("demo", "dataset", "mean", "dataset"))
    issue = only_issue(document, "edge.input_taken")
    assert (issue.pointer, issue.node, issue.port) == ("/edges/2/target_port", "mean", "dataset")
    assert issue.details == {"first": 1}


# -- graph.cycle and input.missing ----------------------------------------------------------------


def test_cycle_names_nodes_in_order() -> None:
    document = pipeline(
        [node("a", "util.inspect"), node("b", "util.inspect"), node("c", "util.inspect")],
        [
            edge("a", "report", "b", "value"),
            edge("b", "report", "c", "value"),
            edge("c", "report", "a", "value"),
        ],
    )
    issue = only_issue(document, "graph.cycle")
    assert (issue.pointer, issue.node) == ("/nodes/0", "a")
    assert issue.details == {"cycle": ["a", "b", "c"]}
    assert "a → b → c → a" in issue.message


def test_cycle_starts_at_earliest_node_and_follows_edges() -> None:
    document = pipeline(
        [node("x", "util.inspect"), node("y", "util.inspect"), node("z", "util.inspect")],
        [
            edge("z", "report", "y", "value"),
            edge("y", "report", "x", "value"),
            edge("x", "report", "z", "value"),
        ],
    )
    assert only_issue(document, "graph.cycle").details == {"cycle": ["x", "z", "y"]}


def test_self_loop_is_a_cycle() -> None:
    document = pipeline([node("a", "util.inspect")], [edge("a", "report", "a", "value")])
    issue = only_issue(document, "graph.cycle")
    assert issue.details == {"cycle": ["a"]}
    assert "a → a" in issue.message


def test_one_cycle_per_strongly_connected_component() -> None:
    ids = ["a", "b", "c", "d", "e"]
    document = pipeline(
        [node(node_id, "util.inspect") for node_id in ids],
        [
            edge("a", "report", "b", "value"),
            edge("b", "report", "a", "value"),
            edge("b", "report", "c", "value"),
            edge("d", "report", "e", "value"),
            edge("e", "report", "d", "value"),
            edge("c", "report", "b", "extra"),  # a second cycle inside the {a, b, c} component
        ],
    )
    issues = validate_document(document, CATALOG, compatible=lambda output, input_: True)
    assert [issue.code for issue in issues] == ["graph.cycle", "graph.cycle"]
    assert [issue.details["cycle"] for issue in issues] == [["a", "b"], ["d", "e"]]


def test_broken_edges_take_no_part_in_cycles() -> None:
    document = pipeline(
        [node("a", "util.inspect"), node("b", "util.inspect")],
        [edge("a", "report", "b", "value"), edge("b", "nope", "a", "value")],
    )
    assert codes(document) == ["edge.unknown_port"]


def test_input_missing() -> None:
    document = valid_document()
    del document["edges"][1]
    issue = only_issue(document, "input.missing")
    assert (issue.pointer, issue.node, issue.port) == ("/nodes/2", "mean", "dataset")


def test_input_fed_by_broken_edge_is_not_also_missing() -> None:
    document = valid_document()
    document["edges"][1]["source"] = "ghost"
    assert codes(document) == ["edge.unknown_node"]


# -- combinations, order, robustness --------------------------------------------------------------


def test_several_errors_are_all_reported_in_document_order() -> None:
    document = pipeline(
        [
            node("demo", "ocean.demo_dataset"),
            node("subset", "ocean.subset", params={"lat_min": -100}),
            node("mean", "ocean.area_mean", version="3.0.0"),
            node("plot", "plot.timeseries"),
            node("demo", "ocean.demo_dataset"),
            node("odd", "no.such_block"),
        ],
        [
            edge("demo", "dataset", "subset", "dataset"),
            edge("subset", "dataset", "plot", "table"),
            edge("demo", "dataset", "subset", "dataset"),
            edge("ghost", "dataset", "mean", "dataset"),
            {"source": 1},
        ],
        extra=True,
    )
    issues = validate_document(document, CATALOG)
    assert [(issue.code, issue.pointer) for issue in issues] == [
        ("node.invalid_params", "/nodes/1/params/lat_min"),
        ("node.unknown_version", "/nodes/2/version"),
        ("node.duplicate_id", "/nodes/4/id"),
        ("node.unknown_block", "/nodes/5/block"),
        ("edge.type_mismatch", "/edges/1"),
        ("edge.duplicate", "/edges/2"),
        ("edge.unknown_node", "/edges/3/source"),
        ("document.malformed", "/edges/4/source"),
        ("document.malformed", "/edges/4/source_port"),
        ("document.malformed", "/edges/4/target"),
        ("document.malformed", "/edges/4/target_port"),
        ("document.malformed", "/extra"),
    ]


def test_issue_to_dict_is_json() -> None:
    document = valid_document()
    document["edges"][1]["target_port"] = "nope"
    (issue,) = validate_document(document, CATALOG)
    data = issue.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {"code", "pointer", "node", "port", "message", "details"}
    assert data["code"] == "edge.unknown_port"


def test_every_code_is_listed_and_exercised() -> None:
    # Keeps CODES honest: each code here has a dedicated test above, or in test_quantities.py for the
    # five units, quantity and calendar codes.
    assert len(CODES) == len(set(CODES)) == 22


def test_huge_strings_do_not_make_huge_messages() -> None:
    big = "x" * 200_000
    document = pipeline(
        [node("a", big), {"id": big, "block": "ocean.demo_dataset", "version": "1.0.0"}],
        [edge("a", big, big, big)],
        **{big: 1},
    )
    issues = validate_document(document, CATALOG)
    assert issues
    assert all(len(issue.message) <= 300 for issue in issues)
    assert all(len(json.dumps(issue.details)) < 2000 for issue in issues)


def _odd_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [None, True, False, 0, -1, 1.5, 10**30, "", "a", "x" * 5000, "1.0.0"]
    # Names that exist in the base document, so mutations also make cycles, clashes and mismatches.
    choices += ["demo", "subset", "mean", "plot", "dataset", "table", "ocean.subset"]
    if depth < 3:
        choices += [[_odd_value(rng, depth + 1)], {"x": _odd_value(rng, depth + 1)}, [], {}]
    return rng.choice(choices)


def _mutate(rng: random.Random, value: Any) -> Any:
    """Replace one random location inside ``value`` with an odd value, or delete a key."""
    if not isinstance(value, (dict, list)) or not value or rng.random() < 0.2:
        return _odd_value(rng)
    if isinstance(value, dict):
        key = rng.choice(list(value))
        if rng.random() < 0.15:
            del value[key]
        else:
            value[key] = _mutate(rng, value[key])
    else:
        index = rng.randrange(len(value))
        value[index] = _mutate(rng, value[index])
    return value


def test_fuzzing_never_raises_and_reports_known_codes() -> None:
    rng = random.Random(20240601)
    base = valid_document()
    base["nodes"].append(node("plot", "plot.timeseries"))
    base["edges"].append(edge("mean", "table", "plot", "table"))
    seen: set[str] = set()
    for _ in range(3000):
        document: Any = copy.deepcopy(base)
        for _ in range(rng.randint(1, 4)):
            # Mostly inside nodes and edges: a broken envelope hides everything else.
            key = rng.choice(["nodes", "nodes", "edges", "edges", None])
            if key and isinstance(document, dict) and document.get(key):
                document[key] = _mutate(rng, document[key])
            elif rng.random() < 0.2:
                document = _mutate(rng, document)
        issues = validate_document(document, CATALOG)
        seen.update(issue.code for issue in issues)
        for issue in issues:
            assert issue.code in CODES
            assert issue.pointer == "" or issue.pointer.startswith("/")
            assert issue.message
            json.dumps(issue.to_dict())
        if not issues:
            parse_document(document)  # whatever validates must parse
    assert len(seen) >= 10  # the fuzzing reaches deep checks, not only the envelope


def test_non_json_python_values_are_reported_not_raised() -> None:
    assert codes(pipeline([{"id": "a", "block": object()}], [])) == ["document.malformed"]
    assert codes({"format": "iliad.pipeline", "version": 1, "nodes": (), "edges": []}) == [
        "document.malformed"
    ]


def _timed_document() -> dict[str, Any]:
    """500 nodes, 1000 edges, all valid: two sources, then merges of the two previous nodes."""
    nodes = [node("n0", "ocean.demo_dataset"), node("n1", "ocean.demo_dataset")]
    nodes += [node(f"n{i}", "ocean.merge", params={"how": "inner"}) for i in range(2, 500)]
    edges = []
    for i in range(2, 500):
        edges += [
            edge(f"n{i - 1}", "dataset", f"n{i}", "left"),
            edge(f"n{i - 2}", "dataset", f"n{i}", "right"),
        ]
    edges += [edge("n0", "dataset", f"n{i}", "mask") for i in range(2, 6)]
    return pipeline(nodes, edges)


def test_500_nodes_1000_edges_validate_quickly() -> None:
    document = _timed_document()
    assert (len(document["nodes"]), len(document["edges"])) == (500, 1000)
    assert validate_document(document, CATALOG) == []
    start = time.perf_counter()
    validate_document(document, CATALOG)
    assert time.perf_counter() - start < 0.5


def test_long_chain_with_a_cycle_at_the_end() -> None:
    count = 500
    document = pipeline(
        [node(f"n{i}", "util.inspect") for i in range(count)],
        [edge(f"n{i}", "report", f"n{(i + 1) % count}", "value") for i in range(count)],
    )
    issue = only_issue(document, "graph.cycle")
    assert len(issue.details["cycle"]) == count
    assert len(issue.message) <= 300


def test_deeply_nested_params_validate_and_parse() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(900):
        inner["a"] = {}
        inner = inner["a"]
    document = json.loads(json.dumps(pipeline([node("m", "ocean.merge", params={"extra": deep})], [])))
    document["nodes"][0]["block"] = "ocean.demo_dataset"
    document["nodes"][0]["params"] = {"how": "inner", "extra": document["nodes"][0]["params"]["extra"]}
    assert codes(document) == ["node.invalid_params"]  # demo_dataset takes no parameters
    document["nodes"][0]["block"] = "ocean.merge"
    assert codes(document) == ["input.missing", "input.missing"]
    parsed = parse_document(document).nodes[0].params["extra"]
    depth = 0
    while parsed:
        parsed, depth = parsed["a"], depth + 1
    assert depth == 900


def test_each_missing_parameter_is_named_once() -> None:
    catalog = copy.deepcopy(CATALOG)
    for spec in catalog["ocean.area_mean"].values():
        spec["parameters"]["properties"]["unit"] = {"type": "string", "title": "Unit"}
        spec["parameters"]["required"] = ["variable", "unit"]
    document = valid_document()
    document["nodes"][2]["params"] = {}
    messages = [issue.message for issue in validate_document(document, catalog)]
    assert messages == [
        "Parameter 'variable' of node 'mean' is required.",
        "Unit (unit) of node 'mean' is required.",
    ]
