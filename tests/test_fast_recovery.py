"""End-to-end: a step whose process dies is run again quickly with the default settings, and a worker
wrongly taken for lost stops its block and writes nothing once the step was taken from it.

Real worker processes (their own process groups), real broker and database; the default heartbeat
and stall settings (no overrides in the workers' environment).
"""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.conf import settings

from apps.runs.models import Artifact, Run, RunEvent, StepRun
from apps.runs.reconciler import steps_recover_stalled
from tests.conftest import document, edge, node, wait_for_run

pytestmark = pytest.mark.e2e


def start_slow_run(api, marker) -> dict:
    doc = document(
        [
            node("slow", "testing.count_calls", marker=str(marker), sleep_s=60.0, first_call_only=True),
            node("next", "utility.noop"),
        ],
        [edge("slow", "result", "next", "trigger")],
    )
    response = api.post("/api/pipelines/", {"name": "slow then next", "document": doc}, format="json")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/pipelines/{response.json()['id']}/runs/", {}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def block_pid(marker, run_id: int) -> int:
    """The pid of the process running the slow block, once it runs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        step = StepRun.objects.get(run_id=run_id, node_id="slow")
        if marker.exists() and marker.read_text().strip() and step.state == "running":
            return int(marker.read_text().split()[0])
        time.sleep(0.05)
    pytest.fail(f"the slow block did not start: {step.state}")


def slow_states(run_id: int) -> list[str]:
    return list(
        RunEvent.objects.filter(run_id=run_id, node_id="slow", kind="state")
        .values_list("payload__state", flat=True)
    )


def test_the_step_of_a_killed_pool_process_runs_again_within_30_s_by_default(
    killable_worker, api, tmp_path
):
    assert (settings.ILIAD_HEARTBEAT_S, settings.ILIAD_STALL_AFTER_S) == (2, 10)  # the defaults
    marker = tmp_path / "calls.txt"
    killable_worker("survivor")  # its pool process dies; Celery redelivers the task at once
    run = start_slow_run(api, marker)
    pid = block_pid(marker, run["id"])
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    assert wait_for_run(run["id"], timeout=30, expect="succeeded").state == "succeeded"
    assert time.monotonic() - killed_at < 30

    slow = StepRun.objects.get(run_id=run["id"], node_id="slow")
    assert slow.attempts == 2
    first_pid, second_pid = marker.read_text().split()
    assert first_pid != second_pid
    assert Artifact.objects.get(step=slow).uri.endswith("/slow/attempt-2/result.json")
    assert slow_states(run["id"]) == ["queued", "running", "queued", "running", "succeeded"]
    lost = RunEvent.objects.get(run_id=run["id"], node_id="slow", kind="log", payload__level="warning")
    assert "lost (no heartbeat for" in lost.payload["message"] and "attempt 2 of 3" in lost.payload["message"]


def test_a_worker_taken_for_lost_stops_its_block_and_writes_nothing_after(
    killable_worker, api, tmp_path
):
    from iliad_portal.celery import app

    marker = tmp_path / "calls.txt"
    paused = killable_worker("paused")
    run = start_slow_run(api, marker)
    pid = block_pid(marker, run["id"])
    os.kill(pid, signal.SIGSTOP)  # neither block nor heartbeat thread runs: it looks lost
    try:
        killable_worker("fresh")
        deadline = time.monotonic() + 40
        while not steps_recover_stalled(
            stalled_after=timedelta(seconds=settings.ILIAD_STALL_AFTER_S),
            max_attempts=settings.ILIAD_MAX_ATTEMPTS,
            walltime_grace=timedelta(seconds=settings.ILIAD_WALLTIME_GRACE_S),
        ):
            assert time.monotonic() < deadline, "the silent step was not taken back"
            time.sleep(0.5)
        wait_for_run(run["id"], timeout=30, expect="succeeded")
        written = Run.objects.get(pk=run["id"]).last_event_seq
    finally:
        os.kill(pid, signal.SIGCONT)

    # Its heartbeat finds the step taken: the block stops at its next progress report, long before
    # its 60 s are up, and the worker is idle again.
    paused_name = next(
        name for name in (app.control.inspect(timeout=2).ping() or {}) if name.startswith("paused-")
    )
    deadline = time.monotonic() + 15
    while (app.control.inspect(destination=[paused_name], timeout=1).active() or {}).get(paused_name):
        assert time.monotonic() < deadline, "the worker taken for lost did not stop its block"
        time.sleep(0.5)
    assert paused.poll() is None  # alive, just no longer running the step

    time.sleep(1)
    run_row = Run.objects.get(pk=run["id"])
    assert run_row.last_event_seq == written  # not one event more
    slow = StepRun.objects.get(run_id=run["id"], node_id="slow")
    assert (slow.state, slow.attempts) == ("succeeded", 2)
    artifacts = Artifact.objects.filter(step=slow)
    assert [artifact.uri.rsplit("/", 2)[-2] for artifact in artifacts] == ["attempt-2"]
    assert len(marker.read_text().split()) == 2
