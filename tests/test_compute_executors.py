"""The self-reporting executors (Celery queues per target, RQ) on real processes.

Each test hands a step to an executor the way the orchestrator does after queueing it, and a real
worker (``celery worker -Q <target>``, ``rq worker <target>``) runs it through the in-process agent
against the test database: submit → the step succeeds with its output; cancel while running → the
step ends cancelled within 5 s; an unreachable broker is a transient BackendError, a bad
configuration a permanent one; bursting sends steps to the overflow target while the primary queue
is deeper than its threshold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.utils import timezone

from apps.compute.base import BackendError, JobState, Launch, Resources
from apps.compute.models import ComputeTarget
from apps.compute.registry import executor_for
from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import path_from_uri
from tests.conftest import REPO_ROOT, _database_url_for_worker, document, node

pytestmark = pytest.mark.e2e

HOST = socket.gethostname()


def _run_cancel(run: Run) -> None:
    try:
        from apps.runs.orchestration import run_cancel
    except ImportError:  # before the orchestration was cut out of apps.runs.services
        from apps.runs.services import run_cancel
    run_cancel(run=run)


def queued_step(user, target: str, block: str, **params) -> StepRun:
    """A one-step run on ``target`` whose step is queued and dispatched, as the orchestrator leaves it
    just before handing it to the target's executor."""
    from apps.catalog.selectors import catalog_specs

    spec = catalog_specs()[block]["1.0.0"]
    step_node = node("only", block, **params)
    run = Run.objects.create(
        owner=user,
        pipeline=None,
        pipeline_version=1,
        pipeline_name="executor contract",
        target=target,
        snapshot={"document": document([step_node], []), "blocks": {f"{block}@1.0.0": spec}},
    )
    now = timezone.now()
    return StepRun.objects.create(
        run=run,
        node_id="only",
        block_id=block,
        block_version="1.0.0",
        params=params,
        walltime_s=spec["resources"]["walltime_s"],
        state="queued",
        queued_at=now,
        dispatched_at=now,
        target=target,
    )


def launch(step: StepRun) -> Launch:
    return Launch(
        step_id=step.pk, attempt=1, manifest_uri="", resources=Resources(walltime_s=step.walltime_s)
    )


def wait_for_step(step: StepRun, states: tuple[str, ...], timeout: float) -> StepRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step.refresh_from_db()
        if step.state in states:
            return step
        time.sleep(0.05)
    pytest.fail(f"step {step.pk} is {step.state}, not {states}, after {timeout} s: {step.error}")


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def output_total(step: StepRun) -> float:
    artifact = Artifact.objects.get(step=step, port="result")
    return json.loads(path_from_uri(artifact.uri).read_text())["total"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- workers ------------------------------------------------------------------------------------------


def start_celery_worker(queue: str, *, concurrency: int = 1) -> tuple[subprocess.Popen, str]:
    """A real ``celery worker -Q queue`` on the test database and broker; returns it and its name."""
    from iliad_portal.celery import app

    name = f"{queue}-{os.getpid()}@{HOST}"
    log_path = Path(os.environ["ILIAD_HOME"]) / f"{queue}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "iliad_portal",
                "worker",
                "-n",
                name,
                "-Q",
                queue,
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "DATABASE_URL": _database_url_for_worker()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"celery worker {name} did not start; its log:\n{log_path.read_text()[-3000:]}")
    return process, name


@pytest.fixture
def celery_queue(transactional_db, catalog):
    """``celery_queue(name, concurrency=1)`` starts a worker serving that queue only; all are stopped
    at the end."""
    started: list[subprocess.Popen] = []

    def start(queue: str, concurrency: int = 1) -> str:
        process, name = start_celery_worker(queue, concurrency=concurrency)
        started.append(process)
        return name

    yield start
    for process in started:
        stop(process)


@pytest.fixture
def rq_worker(transactional_db, catalog):
    """A real ``rq worker`` (the portal's worker class) serving a fresh queue; yields the queue name."""
    from redis import Redis
    from rq import Worker

    queue = f"rq-{uuid.uuid4().hex[:8]}"
    name = f"{queue}-{os.getpid()}"
    log_path = Path(os.environ["ILIAD_HOME"]) / f"{queue}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "rq"),
                "worker",
                "--url",
                os.environ["REDIS_URL"],
                "--name",
                name,
                "--worker-class",
                "apps.compute.rq_jobs.PortalWorker",
                queue,
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "DATABASE_URL": _database_url_for_worker()},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    connection = Redis.from_url(os.environ["REDIS_URL"])
    deadline = time.monotonic() + 60
    while name not in {worker.name for worker in Worker.all(connection=connection)}:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"rq worker {name} did not start; its log:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    yield queue
    stop(process)


# --- RQ -------------------------------------------------------------------------------------------------


def test_rq_runs_a_submitted_step_through_the_agent(rq_worker, user, tmp_path):
    step = queued_step(user, rq_worker, "testing.record", marker=str(tmp_path / "calls"), name="one", add=41)
    executor = executor_for("rq", rq_worker, {})
    [job_id] = executor.submit([launch(step)])
    assert job_id == f"step-{step.pk}-1"
    step = wait_for_step(step, ("succeeded", "failed"), timeout=30)
    assert (step.state, step.worker) == ("succeeded", f"rq:{rq_worker}-{os.getpid()}")
    assert output_total(step) == 41
    assert (tmp_path / "calls").read_text() == "one\n"
    deadline = time.monotonic() + 5
    while executor.poll([job_id])[job_id].state != JobState.DONE:
        assert time.monotonic() < deadline, executor.poll([job_id])
        time.sleep(0.05)
    assert executor.poll(["step-0-0"]) == {"step-0-0": executor.poll(["step-0-0"])["step-0-0"]}
    assert executor.poll(["step-0-0"])["step-0-0"].state == JobState.UNKNOWN


def test_rq_cancel_while_running_ends_the_step_cancelled_within_5_s(rq_worker, user, tmp_path):
    marker = tmp_path / "calls"
    step = queued_step(user, rq_worker, "testing.count_calls", marker=str(marker), sleep_s=60)
    executor = executor_for("rq", rq_worker, {})
    [job_id] = executor.submit([launch(step)])
    wait_for_file(marker)
    _run_cancel(step.run)
    executor.cancel(job_id)
    cancelled_at = time.monotonic()
    step = wait_for_step(step, ("cancelled", "failed", "succeeded"), timeout=5)
    assert step.state == "cancelled"
    assert time.monotonic() - cancelled_at < 5
    deadline = time.monotonic() + 5
    while executor.poll([job_id])[job_id].state not in (JobState.DONE, JobState.CANCELLED):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)
    executor.cancel(job_id)  # idempotent


def test_rq_terminate_on_cancel_stops_the_work_horse_at_once(rq_worker, user, tmp_path):
    marker = tmp_path / "calls"
    step = queued_step(user, rq_worker, "testing.count_calls", marker=str(marker), sleep_s=60)
    executor = executor_for("rq", rq_worker, {"terminate_on_cancel": True})
    [job_id] = executor.submit([launch(step)])
    wait_for_file(marker)
    pid = int(marker.read_text().split()[0])  # the work horse running the block
    executor.cancel(job_id)
    deadline = time.monotonic() + 5
    while executor.poll([job_id])[job_id].state != JobState.CANCELLED:
        assert time.monotonic() < deadline, executor.poll([job_id])
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # reaped by the worker a moment after it was stopped
            os.kill(pid, 0)
            time.sleep(0.1)


def test_rq_cancel_of_a_waiting_job_takes_it_off_the_queue(transactional_db, catalog, user, tmp_path):
    queue = f"nobody-serves-{uuid.uuid4().hex[:8]}"
    step = queued_step(user, queue, "testing.record", marker=str(tmp_path / "calls"), name="never")
    executor = executor_for("rq", queue, {})
    [job_id] = executor.submit([launch(step)])
    assert executor.poll([job_id])[job_id].state == JobState.PENDING
    executor.cancel(job_id)
    assert executor.poll([job_id])[job_id].state == JobState.CANCELLED
    executor.cancel(job_id)  # idempotent


def test_rq_unreachable_redis_is_a_transient_error(user, transactional_db, catalog, tmp_path):
    step = queued_step(user, "far", "testing.record", marker=str(tmp_path / "calls"), name="x")
    executor = executor_for("rq", "far", {"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    started = time.monotonic()
    with pytest.raises(BackendError) as refused:
        executor.submit([launch(step)])
    assert not refused.value.permanent
    assert time.monotonic() - started < 10
    assert "far" in str(refused.value)


@pytest.mark.parametrize(
    "config, named",
    [
        ({"redis_url": "http://example.org/"}, "redis_url"),
        ({"queue": ""}, "queue"),
        ({"terminate_on_cancel": "yes"}, "terminate_on_cancel"),
    ],
)
def test_rq_a_bad_configuration_is_a_permanent_error(db, config, named):
    with pytest.raises(BackendError) as refused:
        executor_for("rq", f"bad-{named}", config)
    assert refused.value.permanent
    assert named in str(refused.value)


# --- Celery -------------------------------------------------------------------------------------------


def test_celery_runs_a_submitted_step_on_the_targets_own_queue(celery_queue, user, tmp_path):
    worker = celery_queue("cloud-a")
    step = queued_step(user, "cloud-a", "testing.record", marker=str(tmp_path / "calls"), name="one", add=2)
    executor = executor_for("celery", "cloud-a", {})
    [task_id] = executor.submit([launch(step)])
    assert task_id.startswith(f"step-{step.pk}-1-")
    step = wait_for_step(step, ("succeeded", "failed"), timeout=30)
    assert (step.state, step.worker, output_total(step)) == ("succeeded", worker, 2)
    assert executor.logs(task_id) == ([], 0)


def test_celery_cancel_while_running_ends_the_step_cancelled_within_5_s(celery_queue, user, tmp_path):
    celery_queue("cloud-b")
    marker = tmp_path / "calls"
    step = queued_step(user, "cloud-b", "testing.count_calls", marker=str(marker), sleep_s=60)
    executor = executor_for("celery", "cloud-b", {})
    [task_id] = executor.submit([launch(step)])
    wait_for_file(marker)
    assert executor.poll([task_id])[task_id].state == JobState.RUNNING
    _run_cancel(step.run)
    executor.cancel(task_id)
    cancelled_at = time.monotonic()
    step = wait_for_step(step, ("cancelled", "failed", "succeeded"), timeout=5)
    assert step.state == "cancelled"
    assert time.monotonic() - cancelled_at < 5
    executor.cancel(task_id)  # idempotent


def test_celery_terminate_on_cancel_kills_the_process_running_the_step(celery_queue, user, tmp_path):
    celery_queue("cloud-c")
    marker = tmp_path / "calls"
    step = queued_step(user, "cloud-c", "testing.count_calls", marker=str(marker), sleep_s=60)
    executor = executor_for("celery", "cloud-c", {"terminate_on_cancel": True})
    [task_id] = executor.submit([launch(step)])
    wait_for_file(marker)
    pid = int(marker.read_text().split()[0])  # the pool process running the block
    executor.cancel(task_id)
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_celery_unreachable_broker_is_a_transient_error(user, transactional_db, catalog, tmp_path):
    step = queued_step(user, "far", "testing.record", marker=str(tmp_path / "calls"), name="x")
    executor = executor_for("celery", "far-away", {"broker_url": f"redis://127.0.0.1:{closed_port()}/0"})
    started = time.monotonic()
    with pytest.raises(BackendError) as refused:
        executor.submit([launch(step)])
    assert not refused.value.permanent
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    "config, named",
    [
        ({"queue": ""}, "queue"),
        ({"broker_url": "nowhere"}, "broker_url"),
        ({"burst_threshold": -1}, "burst_threshold"),
    ],
)
def test_celery_a_bad_configuration_is_a_permanent_error(db, config, named):
    with pytest.raises(BackendError) as refused:
        executor_for("celery", f"bad-{named}", config)
    assert refused.value.permanent
    assert named in str(refused.value)


def test_bursting_sends_new_steps_to_the_overflow_target_while_the_primary_queue_is_deep(
    celery_queue, user, tmp_path
):
    from apps.compute.selectors import route_launches

    primary_worker = celery_queue("burst-primary", concurrency=1)
    overflow_worker = celery_queue("burst-overflow")
    overflow = ComputeTarget.objects.create(name="burst-overflow", title="Overflow", kind="celery")
    ComputeTarget.objects.create(
        name="burst-primary", title="Primary", kind="celery", overflow=overflow, burst_threshold=0
    )
    blocker_marker = tmp_path / "blocker"
    blocker = queued_step(user, "burst-primary", "testing.count_calls", marker=str(blocker_marker), sleep_s=4)
    routed = {}
    name, executor = route_launches("burst-primary", [launch(blocker)])
    executor.submit([launch(blocker)])
    routed["blocker"] = name
    wait_for_file(blocker_marker)  # the primary's only worker process is busy now

    steps = {}
    for label in ("waits", "bursts"):
        steps[label] = queued_step(
            user, "burst-primary", "testing.record", marker=str(tmp_path / label), name=label
        )
        name, executor = route_launches("burst-primary", [launch(steps[label])])
        executor.submit([launch(steps[label])])
        routed[label] = name
    # The first one found the queue empty (depth 0, not above the threshold) and waits there; the
    # second found one waiting and went to the overflow target.
    assert routed == {"blocker": "burst-primary", "waits": "burst-primary", "bursts": "burst-overflow"}
    bursts = wait_for_step(steps["bursts"], ("succeeded", "failed"), timeout=30)
    assert (bursts.state, bursts.worker) == ("succeeded", overflow_worker)
    waits = wait_for_step(steps["waits"], ("succeeded", "failed"), timeout=30)
    assert (waits.state, waits.worker) == ("succeeded", primary_worker)
    assert bursts.finished_at < waits.finished_at  # it did not wait behind the blocker


# --- through the orchestrator ---------------------------------------------------------------------------


def test_a_run_on_an_rq_target_is_dispatched_to_its_queue_and_completes(rq_worker, user, tmp_path):
    from apps.pipelines.services import pipeline_create
    from apps.runs.orchestration import run_submit
    from tests.conftest import edge, wait_for_run

    ComputeTarget.objects.create(name=rq_worker, title="RQ queue", kind="rq")
    marker = str(tmp_path / "calls")
    doc = document(
        [
            node("first", "testing.record", marker=marker, name="first", add=1),
            node("second", "testing.record", marker=marker, name="second", add=2),
        ],
        [edge("first", "result", "second", "previous")],
    )
    pipeline = pipeline_create(owner=user, name="on rq", document=doc)
    run = run_submit(pipeline=pipeline, user=user, target=rq_worker, cache=False)
    wait_for_run(run.pk, timeout=60, expect="succeeded")
    steps = {step.node_id: step for step in StepRun.objects.filter(run=run)}
    assert {step.worker for step in steps.values()} == {f"rq:{rq_worker}-{os.getpid()}"}
    assert output_total(steps["second"]) == 3
