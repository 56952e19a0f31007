"""Comparing two runs: what differed in what ran (frozen parameters, block versions, steps in one run
only), tables diffed cell by cell, figures side by side; only runs the user may see."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

from apps.runs.comparison import result_pairs, step_differences, table_diff
from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import uri_from_path
from tests.conftest import document, edge, node

DOC = document(
    [
        node("demo", "ocean.demo_dataset", days=5),
        {**node("mean", "ocean.area_mean"), "label": "Area mean"},
        node("map", "plot.map"),
    ],
    [edge("demo", "dataset", "mean", "dataset"), edge("demo", "dataset", "map", "dataset")],
)
FIGURE = {"data": [{"type": "scatter", "x": [1, 2, 3], "y": [3, 1, 2]}], "layout": {"title": {"text": "t"}}}


def make_run(user, *, days: int, sst: list[str], version: str = "1.0.0", pipeline=None) -> Run:
    """A finished run of DOC whose steps ran with ``days`` and whose mean table holds ``sst``."""
    run = Run.objects.create(
        pipeline=pipeline,
        owner=user,
        pipeline_version=1,
        pipeline_name="P",
        state="succeeded",
        snapshot={"document": DOC, "blocks": {}},
    )
    directory = Path(tempfile.mkdtemp(prefix="compare-", dir=settings.ILIAD_ARTIFACT_ROOT))
    steps = {
        "demo": ("ocean.demo_dataset", "1.0.0", {"days": days, "lat_min": 40.0}),
        "mean": ("ocean.area_mean", version, {"variable": "sst"}),
        "map": ("plot.map", "1.0.0", {"variable": "sst"}),
    }
    for node_id, (block, block_version, params) in steps.items():
        step = StepRun.objects.create(
            run=run,
            node_id=node_id,
            block_id=block,
            block_version=block_version,
            params=params,
            state="succeeded",
            walltime_s=60,
        )
        if node_id == "demo":
            continue
        if node_id == "mean":
            name, content, kind, media = (
                "t.csv",
                "time,sst\n" + "".join(f"2021-01-0{i + 1},{v}\n" for i, v in enumerate(sst)),
                "table",
                "text/csv",
            )
        else:
            name, content, kind, media = (
                "f.plotly.json",
                json.dumps(FIGURE),
                "figure",
                "application/vnd.plotly.v1+json",
            )
        path = directory / name
        path.write_text(content)
        Artifact.objects.create(
            run=run,
            step=step,
            port=kind if kind == "table" else "figure",
            uri=uri_from_path(path),
            type=kind,
            media_type=media,
            sha256="0" * 64,
            size=len(content),
        )
    return run


@pytest.fixture
def two_runs(db, user):
    settings.ILIAD_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    from apps.pipelines.models import Pipeline

    pipeline = Pipeline.objects.create(owner=user, name="P", latest_version=1)
    return make_run(user, days=5, sst=["15.1", "15.2", "15.3"], pipeline=pipeline), make_run(
        user, days=9, sst=["15.1", "15.9", "15.3", "15.4"], version="1.1.0", pipeline=pipeline
    )


def test_what_differed_in_what_ran():
    a = {
        "steps": [
            {"node": "x", "label": "X", "block_id": "b", "block_version": "1", "params": {"p": 1, "q": 2}},
            {"node": "gone", "label": "gone", "block_id": "g", "block_version": "1", "params": {}},
        ]
    }
    b = {
        "steps": [
            {
                "node": "x",
                "label": "X",
                "block_id": "b",
                "block_version": "2",
                "params": {"p": 1, "q": 3, "r": 0},
            },
            {"node": "new", "label": "New", "block_id": "n", "block_version": "1", "params": {}},
        ]
    }
    assert step_differences(a, b) == [
        {"node": "new", "label": "New", "what": "step", "a": None, "b": "n"},
        {"node": "x", "label": "X", "what": "block version", "a": "b@1", "b": "b@2"},
        {"node": "x", "label": "X", "what": "q", "a": 2, "b": 3},
        {"node": "x", "label": "X", "what": "r", "a": None, "b": 0},
        {"node": "gone", "label": "gone", "what": "step", "a": "g", "b": None},
    ]
    assert step_differences(a, a) == []


def test_tables_are_diffed_cell_by_cell():
    diff = table_diff(
        {"columns": ["t", "v"], "rows": [["1", "a"], ["2", "b"]], "truncated": False},
        {
            "columns": ["t", "v", "w"],
            "rows": [["1", "a", "x"], ["2", "c", "y"], ["3", "d", "z"]],
            "truncated": False,
        },
    )
    assert diff["columns"] == ["t", "v", "w"]
    assert [[cell["changed"] for cell in row] for row in diff["rows"]] == [
        [False, False, True],
        [False, True, True],
        [True, True, True],
    ]
    assert diff["changed"] == 6 and diff["rows"][1][1] == {"a": "b", "b": "c", "changed": True}


def test_results_pair_up_by_step_and_port():
    a = {
        "artifacts": [
            {"node": "m", "port": "table", "deliverable": True, "label": "M", "type": "table"},
            {"node": "d", "port": "dataset", "deliverable": False},
        ]
    }
    b = {
        "artifacts": [
            {"node": "p", "port": "figure", "deliverable": True, "label": "P", "type": "figure"},
            {"node": "m", "port": "table", "deliverable": True, "label": "M", "type": "table"},
        ]
    }
    pairs = result_pairs(a, b)
    assert [(p["node"], p["a"] is not None, p["b"] is not None) for p in pairs] == [
        ("m", True, True),
        ("p", False, True),
    ]


def test_the_compare_page_shows_differences_tables_and_figures(client, user, two_runs):
    a, b = two_runs
    client.force_login(user)
    page = client.get(f"/runs/compare/?a={a.pk}&b={b.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<code>5</code>" in html and "<code>9</code>" in html  # days
    assert "ocean.area_mean@1.0.0" in html and "ocean.area_mean@1.1.0" in html
    assert "Area mean · table" in html
    assert "3 cells differ in the first 20 rows" in html  # 15.2 → 15.9, and a fourth row only in b
    assert "<del>15.2</del> <ins>15.9</ins>" in html
    assert html.count('class="compare-figure"') == 2
    run_page = client.get(f"/runs/{a.pk}/").content.decode()
    assert f'<option value="{b.pk}">#{b.pk}' in run_page  # the run page offers the comparison


def test_only_runs_you_may_see_are_compared(client, other_user, two_runs):
    a, b = two_runs
    client.force_login(other_user)
    assert client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").status_code == 404
    response = client.get("/runs/compare/?a=x&b=2")
    assert response.status_code == 400 and b"both numbers" in response.content
