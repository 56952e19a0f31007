"""Steps reach their compute targets through the executor registry: per-node targets, who may use
them, refused launches, polled targets run to completion by the reconciler, and the run_finished
signal."""

import os
import shutil
import signal
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.compute.base import JobState, JobStatus
from apps.compute.models import ComputeTarget
from apps.pipelines.services import PipelineInvalid, pipeline_create
from apps.runs import agent, orchestration
from apps.runs.agent import step_execute
from apps.runs.models import Artifact, Run, RunEvent, StepRun
from apps.runs.orchestration import run_cancel, run_submit
from apps.runs.reconciler import steps_poll, steps_requeue_lost
from apps.runs.signals import run_finished
from tests.conftest import document, edge, node, wait_for_run
from tests.support.polled_executor import ScriptedExecutor, alive

EXECUTORS = {
    "subprocess": "tests.support.polled_executor.SubprocessExecutor",
    "refusing": "tests.support.polled_executor.RefusingExecutor",
    "scripted": "tests.support.polled_executor.ScriptedExecutor",
}


@pytest.fixture(autouse=True)
def test_executors(settings, monkeypatch):
    settings.ILIAD_EXECUTOR_KINDS = EXECUTORS
    settings.ILIAD_HEARTBEAT_S = 60  # blocks run inside the test's transaction: see test_orchestration
    monkeypatch.setattr(agent, "EVENT_FLUSH_S", 3600)
    orchestration._targets.clear()
    yield
    orchestration._targets.clear()


@pytest.fixture
def dispatched(monkeypatch):
    """(step id, target) pairs handed to the targets' executors instead of sending them."""
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(
        orchestration, "dispatch_steps", lambda step_ids, target: sent.extend((i, target) for i in step_ids)
    )
    return sent


def chain_document(*targets: str | None, block: str = "utility.noop", **params) -> dict:
    nodes = []
    for index, target in enumerate(targets):
        step = node(f"s{index}", block if index == 0 else "utility.noop", **(params if index == 0 else {}))
        if target:
            step["target"] = target
        nodes.append(step)
    edges = [edge(f"s{index}", "result", f"s{index + 1}", "trigger") for index in range(len(targets) - 1)]
    return document(nodes, edges)


def states(run) -> dict[str, str]:
    return dict(StepRun.objects.filter(run=run).values_list("node_id", "state"))


# --- per-node targets ------------------------------------------------------------------------------


def test_a_node_naming_a_target_that_does_not_exist_or_is_not_theirs_is_refused(
    api, user, other_user, catalog
):
    private = ComputeTarget.objects.create(name="hpc", title="HPC", kind="celery", public=False)
    ComputeTarget.objects.create(name="old", title="Old", kind="celery", enabled=False)
    doc = chain_document(None, "hpc", "nowhere")
    doc["nodes"].append({**node("s3", "utility.noop"), "target": "old"})
    response = api.post("/api/pipelines/", {"name": "targets", "document": doc}, format="json")
    assert response.status_code == 400
    errors = {(error["node"], error["code"], error["pointer"]) for error in response.json()["errors"]}
    assert errors == {
        ("s1", "node.target_forbidden", "/nodes/1/target"),
        ("s2", "node.unknown_target", "/nodes/2/target"),
        ("s3", "node.unknown_target", "/nodes/3/target"),
    }
    malformed = chain_document(None)
    malformed["nodes"][0]["target"] = 42
    response = api.post("/api/pipelines/", {"name": "bad", "document": malformed}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["pointer"] == "/nodes/0/target"

    private.allowed_users.add(user)
    assert pipeline_create(owner=user, name="mine", document=chain_document(None, "hpc"))
    with pytest.raises(PipelineInvalid) as refused:
        pipeline_create(owner=other_user, name="theirs", document=chain_document(None, "hpc"))
    assert refused.value.issues[0]["code"] == "node.target_forbidden"


def test_each_step_goes_to_its_nodes_target_and_the_api_shows_it(
    api, user, catalog, dispatched, django_capture_on_commit_callbacks
):
    ComputeTarget.objects.create(name="cloud", title="Cloud", kind="celery")
    pipeline = pipeline_create(owner=user, name="mixed", document=chain_document(None, "cloud", None))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_submit(pipeline=pipeline, user=user)
    assert run.target == "celery"  # no target marked default: a fresh installation's queue
    first, second, third = (StepRun.objects.get(run=run, node_id=f"s{index}") for index in range(3))
    assert (first.target, second.target, third.target) == ("celery", "cloud", "celery")
    assert dispatched == [(first.pk, "celery")]
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=first.pk, worker="w@host")  # may go on locally, not to another target
    assert states(run) == {"s0": "succeeded", "s1": "queued", "s2": "pending"}
    assert dispatched[-1] == (second.pk, "cloud")
    steps = {step["node"]: step for step in api.get(f"/api/runs/{run.pk}/").json()["steps"]}
    assert [steps[f"s{index}"]["target"] for index in range(3)] == ["celery", "cloud", "celery"]


def test_a_run_on_a_target_the_user_may_not_use_is_refused(api, user, catalog):
    ComputeTarget.objects.create(name="hpc", title="HPC", kind="celery", public=False)
    pipeline = pipeline_create(owner=user, name="p", document=chain_document(None))
    response = api.post(f"/api/pipelines/{pipeline.pk}/runs/", {"target": "hpc"}, format="json")
    assert response.status_code == 400
    assert "target" in response.json()["detail"] and "'hpc'" in response.json()["detail"]
    assert not Run.objects.exists()


# --- refused launches ------------------------------------------------------------------------------


def test_a_permanent_refusal_fails_the_step_with_the_backends_message(
    user, catalog, django_capture_on_commit_callbacks
):
    ComputeTarget.objects.create(name="broken", title="Broken", kind="refusing", config={"permanent": True})
    pipeline = pipeline_create(owner=user, name="p", document=chain_document("broken", None))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_submit(pipeline=pipeline, user=user)
    first = StepRun.objects.get(run=run, node_id="s0")
    assert first.state == "failed"
    assert first.error["type"] == "LaunchFailed"
    assert first.error["message"] == (
        "compute target 'broken' refused the step: partition 'gpu' does not exist"
    )
    assert states(run) == {"s0": "failed", "s1": "skipped"}
    run.refresh_from_db()
    assert run.state == "failed"


def test_transient_refusals_back_off_and_fail_the_step_after_the_last_launch_attempt(
    user, catalog, settings, django_capture_on_commit_callbacks
):
    settings.ILIAD_MAX_LAUNCH_ATTEMPTS = 3
    ComputeTarget.objects.create(name="busy", title="Busy", kind="refusing")
    pipeline = pipeline_create(owner=user, name="p", document=chain_document("busy"))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_submit(pipeline=pipeline, user=user)
    step = StepRun.objects.get(run=run)
    backoffs = []
    for launches in (1, 2):
        step.refresh_from_db()
        assert (step.state, step.launch_attempts) == ("queued", launches)
        backoffs.append(round((step.launch_after - timezone.now()).total_seconds()))
        with django_capture_on_commit_callbacks(execute=True):
            assert steps_requeue_lost(older_than=timedelta(minutes=5)) == 0  # not before its back-off
        StepRun.objects.filter(pk=step.pk).update(launch_after=timezone.now() - timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert steps_requeue_lost(older_than=timedelta(minutes=5)) == 1
    assert backoffs == [5, 10]
    step.refresh_from_db()
    assert step.state == "failed"
    assert step.error["message"] == (
        "compute target 'busy' refused the step (3 launches refused): queue is full"
    )


# --- run_finished ------------------------------------------------------------------------------------


def test_run_finished_is_sent_once_after_commit_when_a_run_ends(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, run_id, state, **kwargs):
        received.append((sender, run_id, state))

    run_finished.connect(receiver)
    try:
        pipeline = pipeline_create(owner=user, name="p", document=chain_document(None, None))
        with django_capture_on_commit_callbacks(execute=True):
            run = run_submit(pipeline=pipeline, user=user)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            step_execute(step_id=StepRun.objects.get(run=run, node_id="s0").pk)
        assert len(callbacks) >= 1
        assert received == [(Run, run.pk, "succeeded")]

        with django_capture_on_commit_callbacks(execute=True):
            other = run_submit(pipeline=pipeline, user=user, cache=False)
            run_cancel(run=other)
        assert received[-1] == (Run, other.pk, "cancelled")
        assert len(received) == 2
    finally:
        run_finished.disconnect(receiver)


# --- a polled target, end to end with real runner processes ---------------------------------------------


def poll_until_finished(run_id: int, timeout: float = 60.0, between=None) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3)
        run = Run.objects.get(pk=run_id)
        if run.finished_at is not None:
            return run
        if between:
            between()
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not finish: {states(Run.objects.get(pk=run_id))}")


@pytest.mark.e2e
def test_a_run_on_a_polled_target_runs_each_step_in_a_runner_process(
    transactional_db, user, catalog, tmp_path
):
    ComputeTarget.objects.create(name="procs", title="Processes", kind="subprocess")
    marker = tmp_path / "calls.txt"
    doc = chain_document(None, None, None, block="testing.count_calls", marker=str(marker), sleep_s=0.6)
    pipeline = pipeline_create(owner=user, name="polled", document=doc)
    run = run_submit(pipeline=pipeline, user=user, target="procs")

    run = poll_until_finished(run.pk)
    assert run.state == "succeeded", states(run)
    steps = list(StepRun.objects.filter(run=run).order_by("node_id"))
    assert {(step.target, step.attempts, step.state) for step in steps} == {("procs", 1, "succeeded")}
    runner_pid = int(marker.read_text().split()[0])
    assert runner_pid != os.getpid() and steps[0].external_id.startswith(f"{runner_pid}:")
    assert Artifact.objects.filter(run=run).count() == 3
    progress = RunEvent.objects.filter(run=run, node_id="s0", kind="progress")
    assert progress.exists()  # read from the runner's events file
    assert list(
        RunEvent.objects.filter(run=run, node_id="s0", kind="state").values_list("payload__state", flat=True)
    ) == ["queued", "submitted", "running", "succeeded"]


@pytest.mark.e2e
def test_a_target_runs_at_most_its_maximum_of_steps_at_once_and_the_others_follow(
    transactional_db, user, catalog, tmp_path
):
    ComputeTarget.objects.create(name="procs", title="Processes", kind="subprocess", max_concurrent_steps=2)
    markers = [tmp_path / f"calls-{index}.txt" for index in range(5)]
    doc = document(
        [node(f"s{index}", "testing.count_calls", marker=str(marker), sleep_s=0.5)
         for index, marker in enumerate(markers)], [])
    pipeline = pipeline_create(owner=user, name="capped", document=doc)
    run = run_submit(pipeline=pipeline, user=user, target="procs")
    busiest = []

    def count_busy() -> None:
        orchestration.steps_dispatch_held()  # the periodic safety net (every 15 s in beat)
        busiest.append(StepRun.objects.filter(run=run, state__in=("submitted", "running")).count())

    count_busy()
    assert busiest == [2]
    assert StepRun.objects.filter(run=run, state="queued", dispatched_at__isnull=True).count() == 3
    run = poll_until_finished(run.pk, between=count_busy)
    assert run.state == "succeeded", states(run)
    assert max(busiest) == 2 and all(marker.read_text() for marker in markers)


@pytest.mark.e2e
def test_a_polled_job_that_died_runs_again_and_a_cancelled_one_ends_within_5_s(
    transactional_db, user, catalog, tmp_path
):
    ComputeTarget.objects.create(name="procs", title="Processes", kind="subprocess")
    marker = tmp_path / "calls.txt"
    doc = chain_document(None, None, block="testing.count_calls", marker=str(marker), sleep_s=30.0,
                         first_call_only=True)
    pipeline = pipeline_create(owner=user, name="dies", document=doc)
    run = run_submit(pipeline=pipeline, user=user, target="procs")
    killed = []

    def kill_the_first_runner():
        if not killed and marker.exists() and marker.read_text().strip():
            os.kill(int(marker.read_text().split()[0]), signal.SIGKILL)
            killed.append(True)

    run = poll_until_finished(run.pk, between=kill_the_first_runner)
    assert run.state == "succeeded", states(run)
    first = StepRun.objects.get(run=run, node_id="s0")
    assert first.attempts == 2
    assert Artifact.objects.get(step=first).uri.endswith("/s0/attempt-2/result.json")
    assert len(set(marker.read_text().split())) == 2

    marker.unlink()
    doc = chain_document(None, block="testing.count_calls", marker=str(marker), sleep_s=60.0)
    pipeline = pipeline_create(owner=user, name="cancelled", document=doc)
    run = run_submit(pipeline=pipeline, user=user, target="procs")
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline
        steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3)
        time.sleep(0.1)
    runner_pid = int(marker.read_text().split()[0])
    run_cancel(run=run)
    cancelled_at = time.monotonic()
    run = poll_until_finished(run.pk, timeout=10)
    assert time.monotonic() - cancelled_at < 5
    assert run.state == "cancelled"
    assert StepRun.objects.get(run=run).state == "cancelled"
    time.sleep(0.2)
    assert not alive(runner_pid)


# --- what a polled backend's verdicts become ----------------------------------------------------------


def test_a_polled_backends_verdicts_map_to_walltime_out_of_memory_and_lost(
    user, catalog, django_capture_on_commit_callbacks
):
    ComputeTarget.objects.create(name="hpc", title="HPC", kind="scripted")
    ScriptedExecutor.statuses.clear()
    runs = {}
    for name in ("oom", "timeout", "unknown"):
        pipeline = pipeline_create(owner=user, name=name, document=chain_document(None, None))
        with django_capture_on_commit_callbacks(execute=True):
            runs[name] = run_submit(pipeline=pipeline, user=user, target="hpc", cache=False)
    first = {name: StepRun.objects.get(run=run, node_id="s0") for name, run in runs.items()}
    assert all((step.state, step.external_id) == ("submitted", f"job-{step.pk}-1") for step in first.values())

    ScriptedExecutor.statuses[first["oom"].external_id] = JobStatus(JobState.DIED, reason="OUT_OF_MEMORY")
    ScriptedExecutor.statuses[first["timeout"].external_id] = JobStatus(JobState.DIED, reason="TIMEOUT")
    ScriptedExecutor.statuses[first["unknown"].external_id] = JobStatus(JobState.UNKNOWN)
    with django_capture_on_commit_callbacks(execute=True):
        assert steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3) == 2  # unknown: within grace
    for step in first.values():
        step.refresh_from_db()
    assert (first["oom"].state, first["oom"].error["type"]) == ("failed", "OutOfMemory")
    assert "out of memory" in first["oom"].error["message"]
    assert (first["timeout"].state, first["timeout"].error["type"]) == ("failed", "WalltimeExceeded")
    assert states(runs["oom"]) == {"s0": "failed", "s1": "skipped"}
    assert first["unknown"].state == "submitted"

    StepRun.objects.filter(pk=first["unknown"].pk).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3) == 1
    again = StepRun.objects.get(pk=first["unknown"].pk)
    assert (again.state, again.attempts, again.external_id) == ("submitted", 2, f"job-{again.pk}-2")
    lost = RunEvent.objects.get(run=runs["unknown"], kind="log", payload__level="warning")
    assert "has no record of its job" in lost.payload["message"]

    ScriptedExecutor.statuses[again.external_id] = JobStatus(JobState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3)
        run_cancel(run=runs["unknown"])
    assert ScriptedExecutor.cancelled[-1] == again.external_id  # the job is stopped at its target


@pytest.mark.e2e
def test_a_pipeline_whose_middle_node_runs_on_the_local_target_succeeds_through_the_portal(worker, api):
    ComputeTarget.objects.create(name="local", title="This machine, isolated", kind="local")
    doc = chain_document(None, "local", None)
    response = api.post("/api/pipelines/", {"name": "mixed", "document": doc}, format="json")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/pipelines/{response.json()['id']}/runs/", {}, format="json")
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]

    deadline = time.monotonic() + 90
    while Run.objects.get(pk=run_id).finished_at is None:  # the test stands for the periodic reconciler
        assert time.monotonic() < deadline, states(Run.objects.get(pk=run_id))
        steps_poll(unknown_grace=timedelta(seconds=60), max_attempts=3)
        time.sleep(0.2)
    run = wait_for_run(run_id, timeout=5, expect="succeeded")
    steps = {step.node_id: step for step in StepRun.objects.filter(run=run)}
    assert [steps[f"s{index}"].target for index in range(3)] == ["celery", "local", "celery"]
    assert steps["s1"].external_id and steps["s1"].worker == "local"
    assert not steps["s0"].worker.startswith("local") and "@" in steps["s0"].worker
    assert Artifact.objects.filter(run=run).count() == 3
    shown = {step["node"]: step["target"] for step in api.get(f"/api/runs/{run_id}/").json()["steps"]}
    assert shown == {"s0": "celery", "s1": "local", "s2": "celery"}


@pytest.mark.e2e
def test_with_isolation_on_the_agent_runs_the_block_in_a_child_process(killable_worker, api, tmp_path):
    from iliad_portal.celery import app

    killable_worker("isolating", ILIAD_ISOLATE_STEPS="true")
    shared = Path(tempfile.mkdtemp(prefix="iliad-isolated-"))
    shared.chmod(0o777)  # the child may run as another user (as root: "nobody")
    marker = shared / "calls.txt"
    doc = chain_document(None, None, block="testing.count_calls", marker=str(marker), sleep_s=0.3)
    response = api.post("/api/pipelines/", {"name": "isolated", "document": doc}, format="json")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/pipelines/{response.json()['id']}/runs/", {}, format="json")
    assert response.status_code == 201, response.json()
    run = wait_for_run(response.json()["id"], timeout=60, expect="succeeded")

    stats = app.control.inspect(timeout=2).stats() or {}
    workers = [info for name, info in stats.items() if name.startswith("isolating-")]
    pool = {pid for info in workers for pid in info["pool"]["processes"]}
    block_pid = int(marker.read_text().split()[0])
    assert pool and block_pid not in pool  # not the worker's own process: a child it started
    assert RunEvent.objects.filter(run=run, node_id="s0", kind="progress").exists()  # events came back
    assert Artifact.objects.filter(run=run).count() == 2
    if os.getuid() == 0:
        assert marker.stat().st_uid != 0  # the block did not run as the worker's user
    shutil.rmtree(shared)
