"""End-to-end: pipelines built through the REST API run on a real Celery worker process.

Run twice by ``make test``: on the embedded default (SQLite + embedded Redis-protocol server) and on
PostgreSQL + Redis.
"""

import io
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.runs.models import Artifact, RunEvent, StepRun
from apps.runs.services import steps_recover_stalled
from blocks.library.demo_data import make_demo_dataset
from tests.conftest import document, edge, node, wait_for_idle_worker, wait_for_run

pytestmark = pytest.mark.e2e

# The Bay of Biscay corner of the demo region; the box is all sea, so every day has a value.
DEMO = {
    "start": "2022-06-01",
    "days": 20,
    "lat_min": 43.5,
    "lat_max": 46.0,
    "lon_min": -6.0,
    "lon_max": 0.0,
    "resolution": 0.5,
}
BOX = {
    "lat_min": 44.0,
    "lat_max": 45.5,
    "lon_min": -5.0,
    "lon_max": -2.0,
    "start": "2022-06-05",
    "end": "2022-06-14",
}


def three_step_document() -> dict:
    return document(
        [
            node("demo", "ocean.demo_dataset", **DEMO),
            node("subset", "ocean.subset", **BOX),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("demo", "dataset", "subset", "dataset"), edge("subset", "dataset", "mean", "dataset")],
    )


def expected_area_mean() -> pd.Series:
    """The answer computed here, independently of the blocks: cos(lat)-weighted mean of the box."""
    data = make_demo_dataset(**DEMO)
    box = data["sst"].sel(time=slice(BOX["start"], BOX["end"]))
    box = box.where(
        (box.lat >= BOX["lat_min"])
        & (box.lat <= BOX["lat_max"])
        & (box.lon >= BOX["lon_min"])
        & (box.lon <= BOX["lon_max"]),
        drop=True,
    )
    values = box.values.astype("float64")
    weights = np.broadcast_to(np.cos(np.deg2rad(box.lat.values))[None, :, None], values.shape)
    valid = ~np.isnan(values)
    means = (np.where(valid, values, 0) * weights).sum(axis=(1, 2)) / (weights * valid).sum(axis=(1, 2))
    return pd.Series(means, index=pd.to_datetime(box.time.values).strftime("%Y-%m-%d"))


def create_pipeline(api, doc: dict, name: str = "SST at the site") -> int:
    response = api.post("/api/pipelines/", {"name": name, "document": doc}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def start_run(api, pipeline_id: int) -> dict:
    response = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_three_step_pipeline_runs_on_a_worker_and_its_result_has_the_expected_values(worker, api):
    pipeline_id = create_pipeline(api, three_step_document())
    run = start_run(api, pipeline_id)
    assert run["state"] in ("queued", "running")
    assert [step["node"] for step in run["steps"]] == ["demo", "subset", "mean"]

    assert wait_for_run(run["id"], expect="succeeded").state == "succeeded"

    detail = api.get(f"/api/runs/{run['id']}/").json()
    assert [step["state"] for step in detail["steps"]] == ["succeeded"] * 3
    assert all(step["attempts"] == 1 for step in detail["steps"])
    result = next(a for a in detail["artifacts"] if a["node"] == "mean")
    assert result["media_type"] == "text/csv"
    download = api.get(result["download_url"])
    assert download.status_code == 200
    body = b"".join(download.streaming_content)
    assert len(body) == result["size"]
    table = pd.read_csv(io.BytesIO(body))
    assert list(table.columns) == ["time", "sst"]
    expected = expected_area_mean()
    assert len(expected) == 10 and not expected.isna().any()
    assert list(table["time"]) == list(expected.index)
    np.testing.assert_allclose(table["sst"].to_numpy(), expected.to_numpy(), rtol=1e-5)

    events = api.get(f"/api/runs/{run['id']}/events/").json()["events"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1] == {**events[-1], "kind": "state", "node": None, "state": "succeeded"}
    later = api.get(f"/api/runs/{run['id']}/events/?after={events[-3]['seq']}").json()["events"]
    assert later == events[-2:]


def test_figure_output_is_a_plotly_document(worker, api):
    doc = three_step_document()
    doc["nodes"].append(node("plot", "plot.timeseries", title="Site SST"))
    doc["edges"].append(edge("mean", "table", "plot", "table"))
    run = start_run(api, create_pipeline(api, doc))
    assert wait_for_run(run["id"], expect="succeeded").state == "succeeded"
    figure = Artifact.objects.get(run_id=run["id"], step__node_id="plot")
    assert figure.media_type == "application/vnd.plotly.v1+json"
    content = api.get(f"/api/runs/{run['id']}/artifacts/{figure.pk}/download/?inline=1")
    payload = b"".join(content.streaming_content)
    assert b'"Site SST"' in payload and b'"scatter"' in payload


def test_a_step_task_delivered_twice_runs_its_block_once(worker, api, tmp_path):
    from apps.runs.tasks import execute_step

    marker = tmp_path / "calls.txt"
    doc = document(
        [
            node("first", "testing.count_calls", marker=str(marker), sleep_s=1.0),
            node("second", "utility.noop"),
        ],
        [edge("first", "result", "second", "trigger")],
    )
    run = start_run(api, create_pipeline(api, doc))
    first = StepRun.objects.get(run_id=run["id"], node_id="first")
    for _ in range(3):  # duplicates arrive while the first delivery is still running the block
        execute_step.delay(first.pk)
    assert wait_for_run(run["id"], expect="succeeded").state == "succeeded"
    for step in StepRun.objects.filter(run_id=run["id"]):  # and after it finished
        execute_step.delay(step.pk)
    wait_for_idle_worker()

    assert len(marker.read_text().splitlines()) == 1
    assert StepRun.objects.get(pk=first.pk).attempts == 1
    assert RunEvent.objects.filter(run_id=run["id"], node_id="first", payload__state="running").count() == 1
    assert StepRun.objects.get(run_id=run["id"], node_id="second").state == "succeeded"


def test_a_failing_block_fails_its_step_and_the_run_skips_downstream_and_finishes_other_branches(worker, api):
    doc = document(
        [
            node("demo", "ocean.demo_dataset", **DEMO),
            node("broken", "testing.fail", message="sensor file is corrupt"),
            node("after_broken", "ocean.area_mean", variable="sst"),
            node("subset", "ocean.subset", **BOX),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [
            edge("demo", "dataset", "broken", "dataset"),
            edge("broken", "dataset", "after_broken", "dataset"),
            edge("demo", "dataset", "subset", "dataset"),
            edge("subset", "dataset", "mean", "dataset"),
        ],
    )
    run = start_run(api, create_pipeline(api, doc))
    assert wait_for_run(run["id"], expect="failed").state == "failed"

    detail = api.get(f"/api/runs/{run['id']}/").json()
    states = {step["node"]: step["state"] for step in detail["steps"]}
    assert states == {
        "demo": "succeeded",
        "broken": "failed",
        "after_broken": "skipped",
        "subset": "succeeded",
        "mean": "succeeded",
    }
    broken = next(step for step in detail["steps"] if step["node"] == "broken")
    assert broken["error"]["type"] == "RuntimeError"
    assert broken["error"]["message"] == "sensor file is corrupt"
    assert broken["error"] == {"type": "RuntimeError", "message": "sensor file is corrupt"}
    assert {a["node"] for a in detail["artifacts"]} == {"demo", "subset", "mean"}

    events = api.get(f"/api/runs/{run['id']}/events/").json()["events"]
    logs = [e["message"] for e in events if e["kind"] == "log" and e["node"] == "broken"]
    assert "about to fail" in logs
    assert "RuntimeError: sensor file is corrupt" in logs
    assert not any("Traceback" in line for line in logs)
    skipped = [e for e in events if e["node"] == "after_broken" and e["kind"] == "state"]
    assert skipped == [{**skipped[0], "state": "skipped", "reason": "broken failed"}]


def test_cancelling_a_run_stops_its_running_step_and_cancels_waiting_ones(worker, api, tmp_path):
    marker = tmp_path / "calls.txt"
    doc = document(
        [node("slow", "testing.count_calls", marker=str(marker), sleep_s=30.0), node("next", "utility.noop")],
        [edge("slow", "result", "next", "trigger")],
    )
    run = start_run(api, create_pipeline(api, doc))
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    response = api.post(f"/api/runs/{run['id']}/cancel/")
    assert response.status_code == 200
    finished = wait_for_run(run["id"], timeout=15)
    assert finished.state == "cancelled"
    states = dict(StepRun.objects.filter(run_id=run["id"]).values_list("node_id", "state"))
    assert states == {"slow": "cancelled", "next": "cancelled"}
    assert finished.finished_at is not None
    assert api.post(f"/api/runs/{run['id']}/cancel/").status_code == 409


def test_artifacts_are_files_in_the_artifact_store_referenced_by_uri(worker, api, settings):
    run = start_run(api, create_pipeline(api, three_step_document()))
    wait_for_run(run["id"])
    for artifact in Artifact.objects.filter(run_id=run["id"]):
        assert artifact.uri.startswith("file://")
        path = Path(artifact.uri.removeprefix("file://"))
        assert path.is_relative_to(settings.ILIAD_ARTIFACT_ROOT)
        assert path.stat().st_size == artifact.size


def test_a_step_whose_two_parents_finish_together_on_two_workers_runs_once(worker, api, tmp_path):
    runs = []
    for index in range(3):
        doc = document(
            [
                node("left", "testing.count_calls", marker=str(tmp_path / f"left{index}"), sleep_s=0.3),
                node("right", "testing.count_calls", marker=str(tmp_path / f"right{index}"), sleep_s=0.3),
                node("join", "testing.join"),
            ],
            [edge("left", "result", "join", "left"), edge("right", "result", "join", "right")],
        )
        runs.append(start_run(api, create_pipeline(api, doc, name=f"join {index}")))
    for run in runs:
        wait_for_run(run["id"], expect="succeeded")
        join = StepRun.objects.get(run_id=run["id"], node_id="join")
        assert join.attempts == 1
        queued = RunEvent.objects.filter(run_id=run["id"], node_id="join", payload__state="queued")
        assert queued.count() == 1
        result = Artifact.objects.get(step=join)
        assert Path(result.uri.removeprefix("file://")).read_text().count("dict") == 2


def test_a_step_whose_worker_is_killed_runs_again_on_another_worker(killable_worker, api, tmp_path):
    marker = tmp_path / "calls.txt"
    doc = document(
        [
            node("slow", "testing.count_calls", marker=str(marker), sleep_s=60.0, first_call_only=True),
            node("next", "utility.noop"),
        ],
        [edge("slow", "result", "next", "trigger")],
    )
    doomed = killable_worker("doomed", ILIAD_HEARTBEAT_S="1")
    run = start_run(api, create_pipeline(api, doc))
    slow = StepRun.objects.get(run_id=run["id"], node_id="slow")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the block runs and the worker has sent a heartbeat
        slow.refresh_from_db()
        if marker.exists() and slow.heartbeat_at and slow.heartbeat_at > slow.started_at:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"step {slow} did not start or sent no heartbeat: {slow.state}, {slow.heartbeat_at}")
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its pool process, mid-step
    doomed.wait()
    killable_worker("fresh", ILIAD_HEARTBEAT_S="1")

    deadline = time.monotonic() + 30
    while not steps_recover_stalled(
        stalled_after=timedelta(seconds=2), max_attempts=3, walltime_grace=timedelta(seconds=60)
    ):
        assert time.monotonic() < deadline, "the lost step was not taken back"
        time.sleep(0.2)
    assert wait_for_run(run["id"], timeout=30, expect="succeeded").state == "succeeded"

    slow.refresh_from_db()
    assert slow.attempts == 2
    first_pid, second_pid = marker.read_text().split()
    assert first_pid != second_pid
    assert Artifact.objects.get(step=slow).uri.endswith("/slow/attempt-2/result.json")
    assert StepRun.objects.get(run_id=run["id"], node_id="next").state == "succeeded"
    states = list(
        RunEvent.objects.filter(run_id=run["id"], node_id="slow", kind="state").values_list(
            "payload__state", flat=True
        )
    )
    assert states == ["queued", "running", "queued", "running", "succeeded"]
