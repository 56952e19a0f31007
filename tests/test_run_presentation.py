"""How a run is shown: steps in pipeline order under their labels, the graph's layers, which results are
deliverables, and table previews that read only the head of a file."""

from __future__ import annotations

import pytest

from apps.runs.presentation import consumed_ports, depths, graph_layout, node_labels, step_order
from tests.test_artifact_download import store  # noqa: F401 - the fixture

DOCUMENT = {
    "nodes": [
        {"id": "plot", "block": "plot.timeseries", "label": "Time series"},
        {"id": "mean", "block": "ocean.area_mean"},
        {"id": "demo", "block": "ocean.demo_dataset", "label": "  "},
        {"id": "stats", "block": "analytics.stats"},
    ],
    "edges": [
        {"source": "demo", "source_port": "dataset", "target": "mean", "target_port": "dataset"},
        {"source": "mean", "source_port": "table", "target": "plot", "target_port": "table"},
        {"source": "demo", "source_port": "dataset", "target": "stats", "target_port": "dataset"},
    ],
}


def test_steps_read_in_pipeline_order_under_their_labels():
    assert depths(DOCUMENT) == {"demo": 0, "mean": 1, "stats": 1, "plot": 2}
    assert step_order(graph_layout(DOCUMENT)) == ["demo", "mean", "stats", "plot"]
    assert node_labels(DOCUMENT) == {"plot": "Time series", "mean": "mean", "demo": "demo", "stats": "stats"}


def test_outputs_no_step_reads_are_the_deliverables():
    assert consumed_ports(DOCUMENT) == {("demo", "dataset"), ("mean", "table")}


def test_the_graph_is_drawn_left_to_right_one_column_per_depth_without_overlaps():
    layout = graph_layout(DOCUMENT)
    nodes = {node["id"]: node for node in layout["nodes"]}
    assert nodes["demo"]["x"] < nodes["mean"]["x"] == nodes["stats"]["x"] < nodes["plot"]["x"]
    assert nodes["mean"]["y"] != nodes["stats"]["y"]
    assert nodes["plot"]["y"] == nodes["mean"]["y"]  # placed beside what feeds it
    for node in nodes.values():
        assert node["x"] + node["width"] <= layout["width"] and node["y"] + node["height"] <= layout["height"]
    assert {(edge["source"], edge["target"]) for edge in layout["edges"]} == {
        ("demo", "mean"), ("mean", "plot"), ("demo", "stats"),
    }  # fmt: skip


def test_a_broken_or_empty_document_still_lays_out():
    assert graph_layout({})["nodes"] == []
    cyclic = {
        "nodes": [{"id": "a"}, {"id": "b"}],
        "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}],
    }
    assert {node["id"] for node in graph_layout(cyclic)["nodes"]} == {"a", "b"}


def rows_url(download_url: str) -> str:
    return download_url.replace("/download/", "/rows/")


def test_a_table_preview_is_its_header_and_first_rows(api, store):  # noqa: F811
    url = rows_url(
        store(
            "t.csv", b"time,sst\n" + b"".join(b"2020-01-%02d,%d\n" % (d, d) for d in range(1, 31)), "text/csv"
        )
    )
    head = api.get(url, {"limit": "3"})
    assert head.status_code == 200
    assert head.json() == {
        "columns": ["time", "sst"],
        "rows": [["2020-01-01", "1"], ["2020-01-02", "2"], ["2020-01-03", "3"]],
        "truncated": True,
    }
    whole = api.get(url, {"limit": "100"}).json()
    assert len(whole["rows"]) == 30 and whole["truncated"] is False


def test_a_huge_table_or_cell_is_cut_not_read_whole(api, store):  # noqa: F811
    giant = b"name,text\n" + b"a," + b"x" * 5000 + b"\n" + b"b,short\n" * 400_000  # ~3 MB
    head = api.get(rows_url(store("big.csv", giant, "text/csv")), {"limit": "100"}).json()
    assert head["rows"][0][0] == "a" and len(head["rows"][0][1]) == 200 and head["rows"][0][1].endswith("…")
    assert len(head["rows"]) == 100 and head["truncated"] is True


@pytest.mark.parametrize(
    ("limit", "message"),
    [("0", "from 1 to 100, not 0"), ("101", "from 1 to 100, not 101"), ("x", "an integer from 1 to 100")],
)
def test_a_bad_row_limit_is_named(api, store, limit, message):  # noqa: F811
    response = api.get(rows_url(store("t.csv", b"a\n1\n", "text/csv")), {"limit": limit})
    assert response.status_code == 400
    assert response.json()["detail"] == f"limit: {message}"


def test_only_tables_have_rows(api, store):  # noqa: F811
    response = api.get(rows_url(store("f.json", b"{}", "application/json")))
    assert response.status_code == 400
    assert response.json()["detail"] == "artifact: is application/json, not a table (text/csv)"


def test_rows_of_another_users_run_are_not_found(api, store, other_user):  # noqa: F811
    from rest_framework.test import APIClient

    url = rows_url(store("t.csv", b"a\n1\n", "text/csv"))
    stranger = APIClient()
    stranger.force_authenticate(other_user)
    assert stranger.get(url).status_code == 404


def test_an_unknown_query_parameter_is_named(api, store):  # noqa: F811
    response = api.get(rows_url(store("t.csv", b"a\n1\n", "text/csv")), {"limits": "5"})
    assert response.status_code == 400
    assert response.json()["detail"] == "unknown query parameter 'limits'; only limit"
