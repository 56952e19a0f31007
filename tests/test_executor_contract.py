"""The executor contract, one suite parametrized over every kind of compute target, on real processes.

Each test submits a one-step pipeline through the API to a target of one kind and watches it through
the portal, as a user would: a real ``celery worker -Q <target>`` or ``rq worker <target>`` runs the
step through the in-process agent with isolation on (the block in a child process of its own); the
``local`` and ``slurm`` targets are polled, and the test's loop stands for the periodic reconciler
(``steps_poll``), as Celery beat would run it. The Slurm variant runs on the real single-node test
cluster, once (in the embedded pass, like the other Slurm tests).

The contract: submit → done with the block's output; cancel while running → the step is
``cancelled`` within 5 s and the process that ran the block is gone; a hung block that ignores
SIGTERM is stopped at its walltime; log lines arrive in the order the block wrote them; a block that
fails fails its step once, with the block's message; a process killed under a running step (a lost
job) gives a new attempt that completes the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import close_old_connections

from apps.compute.models import ComputeTarget
from apps.runs.models import Artifact, Run, RunEvent, StepRun
from tests.conftest import REPO_ROOT, document, node

KINDS = ["celery", "rq", "local", pytest.param("slurm", marks=pytest.mark.slurm)]
"""Not marked e2e: the suite runs once, in the embedded pass (the executors do not depend on the
database; the orchestration's PostgreSQL paths have their own e2e tests)."""
CANCEL_WITHIN_S = 5.0


@dataclass
class Target:
    """A compute target of one kind, with what serves it."""

    kind: str
    name: str
    polled: bool
    processes: list[subprocess.Popen] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    restart: Callable[[], None] | None = None
    """Starts a replacement for the worker that serves a self-reporting target (after it was killed)."""
    reconciled_at: float = 0.0

    def reconcile(self) -> None:
        """What the periodic reconciler (Celery beat) does, with the default thresholds: poll the
        polled targets at once, every second otherwise (``ILIAD_RECONCILE_S=1``)."""
        from apps.runs.reconciler import reconcile

        if not self.polled and time.monotonic() - self.reconciled_at < 1:
            return
        self.reconciled_at = time.monotonic()
        close_old_connections()
        reconcile()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory an isolated block can write to: as root it runs as "nobody", and the portal's
    home (where pytest's and the suite's temporary folders are) is hidden from it."""
    path = Path(tempfile.mkdtemp(prefix="iliad-contract-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    from tests.test_compute_executors import stop

    stop(process)


@pytest.fixture(scope="module", params=KINDS)
def serving(request, django_db_setup) -> Iterator[Target]:
    """What serves a target of one kind, started once for all the tests of that kind: a worker on
    the target's own queue (isolation on) for Celery and RQ; the test cluster for Slurm."""
    kind = request.param
    harness = Target(kind, f"contract-{kind}-{uuid.uuid4().hex[:6]}", polled=kind in ("local", "slurm"))
    workdir = None
    if kind == "celery":
        from tests.test_compute_executors import start_celery_worker

        harness.config = {"isolate": True}
        harness.restart = lambda: harness.processes.append(start_celery_worker(harness.name)[0])
    elif kind == "rq":
        harness.config = {"isolate": True}
        harness.restart = lambda: harness.processes.append(_start_rq_worker(harness.name))
    elif kind == "local":
        harness.config = {"grace_s": 1}
    else:
        from tests.test_slurm_portal import CLUSTER, SLURM_HOME, SSH_PORT

        done = subprocess.run(
            [str(CLUSTER), "up"], capture_output=True, text=True, timeout=240,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_HOME": str(SLURM_HOME),
                 "ILIAD_TEST_SSH_PORT": str(SSH_PORT)},
        )
        assert done.returncode == 0, f"the Slurm test cluster did not come up:\n{done.stdout}\n{done.stderr}"
        workdir = Path(tempfile.mkdtemp(prefix="iliad-contract-slurm-"))
        harness.config = {
            "workdir": str(workdir), "python": sys.executable, "partition": "debug",
            "setup": [f"export PYTHONPATH={REPO_ROOT}", "export ILIAD_BLOCK_MODULES=tests.support.blocks"],
        }
    if harness.restart:
        harness.restart()
    yield harness
    for process in harness.processes:
        _stop(process)
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def target(serving, transactional_db, catalog) -> Target:
    """The target's row (the database is emptied after each test), served by ``serving``."""
    ComputeTarget.objects.create(name=serving.name, title=f"Contract ({serving.kind})", kind=serving.kind,
                                 config=serving.config)
    return serving


def _start_rq_worker(queue: str) -> subprocess.Popen:
    from redis import Redis
    from rq import Worker

    from tests.conftest import _database_url_for_worker

    name = f"{queue}-{uuid.uuid4().hex[:6]}"
    log = open(Path(os.environ["ILIAD_HOME"]) / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rq"), "worker", "--url", os.environ["REDIS_URL"], "--name", name,
         "--worker-class", "apps.compute.rq_jobs.PortalWorker", queue],
        cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": _database_url_for_worker()},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    connection = Redis.from_url(os.environ["REDIS_URL"])
    deadline = time.monotonic() + 60
    while not any(worker.name == name for worker in Worker.all(connection=connection)):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            pytest.fail(f"rq worker {name} did not start; see {log.name}")
        time.sleep(0.1)
    return process


@pytest.fixture
def owner(django_user_model):
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user(
        username=f"contract-{uuid.uuid4().hex[:6]}", password="pw-x-1"
    )
    client = APIClient()
    client.force_authenticate(user)
    return client


def submit(api, target: Target, block: str, **params) -> int:
    """A one-step pipeline with ``block`` on ``target``, run (without the step cache); its run id."""
    step = {**node("only", block, **params), "target": target.name}
    response = api.post("/api/pipelines/", {"name": f"contract {block}", "document": document([step], [])},
                        format="json")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/pipelines/{response.json()['id']}/runs/", {"cache": False}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def the_step(run_id: int) -> StepRun:
    return StepRun.objects.get(run_id=run_id, node_id="only")


def wait(target: Target, run_id: int, condition: Callable[[], object], timeout: float, what: str):
    """Reconcile and look again until ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while True:
        target.reconcile()
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            step = the_step(run_id)
            pytest.fail(f"{what}: not within {timeout} s on {target.kind}; step {step.state}, "
                        f"attempt {step.attempts}, error {step.error}")
        time.sleep(0.1)


def finished(run_id: int) -> Run | None:
    run = Run.objects.get(pk=run_id)
    return run if run.finished_at is not None else None


def pid_in(marker: Path) -> int | None:
    try:
        return int(marker.read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def gone(pid: int) -> bool:
    """The process has ended (a zombie not yet reaped by its parent counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_a_step_runs_to_done_with_its_output(target, owner, shared):
    marker = shared / "calls"
    run_id = submit(owner, target, "testing.count_calls", marker=str(marker))
    run = wait(target, run_id, lambda: finished(run_id), 120, "the run to finish")
    step = the_step(run_id)
    ended = (run.state, step.state, step.attempts, step.target)
    assert ended == ("succeeded", "succeeded", 1, target.name), step.error
    assert Artifact.objects.get(step=step, port="result").uri
    assert len(marker.read_text().split()) == 1  # the block ran once
    told = [event.payload for event in RunEvent.objects.filter(run_id=run_id, node_id="only", kind="state")]
    if target.polled:  # the user sees where it waits: its job at the target (then running, if a poll saw it)
        assert [event["state"] for event in told if event["state"] != "running"] == [
            "queued", "submitted", "succeeded"
        ]
        assert told[1]["reason"] == f"job {step.external_id} on {target.name}"
    else:
        assert [event["state"] for event in told] == ["queued", "running", "succeeded"]
    shown = owner.get(f"/api/runs/{run_id}/").json()["steps"]
    assert [(entry["node"], entry["target"]) for entry in shown] == [("only", target.name)]


def test_cancel_while_running_ends_the_step_within_5_s_and_its_process_is_gone(target, owner, shared):
    marker = shared / "calls"
    run_id = submit(owner, target, "testing.count_calls", marker=str(marker), sleep_s=120)
    pid = wait(target, run_id, lambda: pid_in(marker), 120, "the block to start")
    response = owner.post(f"/api/runs/{run_id}/cancel/")
    assert response.status_code in (200, 202), response.content
    cancelled_at = time.monotonic()
    wait(target, run_id, lambda: the_step(run_id).state == "cancelled", CANCEL_WITHIN_S, "the step cancelled")
    wait(target, run_id, lambda: gone(pid), CANCEL_WITHIN_S - (time.monotonic() - cancelled_at),
         "the block's process gone")
    run = wait(target, run_id, lambda: finished(run_id), 10, "the run to end")
    assert run.state == "cancelled"


def test_a_hung_block_is_stopped_at_its_walltime(target, owner, shared):
    marker = shared / "pid"
    run_id = submit(owner, target, "testing.hang", marker=str(marker))
    pid = wait(target, run_id, lambda: pid_in(marker), 120, "the block to start")
    started = time.monotonic()
    run = wait(target, run_id, lambda: finished(run_id), 30, "the run to end")
    step = the_step(run_id)
    assert (run.state, step.state, step.error["type"]) == ("failed", "failed", "WalltimeExceeded"), step.error
    assert "walltime" in step.error["message"]
    wait(target, run_id, lambda: gone(pid), 10, "the hung block's process gone")
    assert time.monotonic() - started < 30


def test_log_lines_arrive_in_the_order_the_block_wrote_them(target, owner, shared):
    run_id = submit(owner, target, "testing.hpc_job", lines=40, interval_s=0.01)
    run = wait(target, run_id, lambda: finished(run_id), 120, "the run to finish")
    assert run.state == "succeeded"
    lines = [
        event.payload["message"]
        for event in RunEvent.objects.filter(run_id=run_id, node_id="only", kind="log").order_by("seq")
        if event.payload["message"].startswith("hpc line")
    ]
    assert lines == [f"hpc line {number} of 40" for number in range(1, 41)]


def test_a_failing_block_fails_its_step_once_with_its_message(target, owner, shared):
    run_id = submit(owner, target, "testing.hpc_job", fail=True)
    run = wait(target, run_id, lambda: finished(run_id), 120, "the run to finish")
    step = the_step(run_id)
    assert (run.state, step.state, step.attempts) == ("failed", "failed", 1)
    assert step.error["message"] == "planned failure"


def test_a_lost_job_gets_a_new_attempt_that_completes_the_run(target, owner, shared):
    """What "lost" means depends on the backend: a self-reporting target's worker machine dies
    (SIGKILL of the worker and every process under it; a replacement worker is started), the local
    target's step process is killed, the Slurm node running the job fails (NODE_FAIL)."""
    marker = shared / "calls"
    run_id = submit(
        owner, target, "testing.count_calls", marker=str(marker), sleep_s=60, first_call_only=True
    )
    pid = wait(target, run_id, lambda: pid_in(marker), 120, "the block to start")
    lost_at = time.monotonic()
    if target.kind == "local":
        os.kill(pid, 9)
        run = wait(target, run_id, lambda: finished(run_id), 60, "the run to finish after the loss")
    elif target.kind == "slurm":
        with node_failed():
            wait(target, run_id, lambda: the_step(run_id).attempts == 2, 60, "a new attempt")
        run = wait(target, run_id, lambda: finished(run_id), 60, "the run to finish after the loss")
    else:
        [process] = target.processes
        for doomed in [process.pid, *descendants(process.pid)]:
            os.kill(doomed, 9)
        process.wait()
        target.processes.remove(process)
        target.restart()
        run = wait(target, run_id, lambda: finished(run_id), 60, "the run to finish after the loss")
    step = the_step(run_id)
    assert (run.state, step.state, step.attempts) == ("succeeded", "succeeded", 2), step.error
    assert len(marker.read_text().split()) == 2  # the lost attempt and the one that completed
    assert time.monotonic() - lost_at < 45


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first), from /proc: RQ's work horse leads a session of
    its own, so a signal to the worker's process group does not reach it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@contextmanager
def node_failed() -> Iterator[None]:
    """The test cluster's only node is down (its running jobs end NODE_FAIL) until the block ends."""
    nodes = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True, check=True)
    [host] = nodes.stdout.split()
    subprocess.run(["scontrol", "update", f"nodename={host}", "state=down", "reason=contract"], check=True)
    try:
        yield
    finally:
        # It may be back already (ReturnToService=2 returns a node whose slurmd registers again).
        subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], capture_output=True)
        deadline = time.monotonic() + 30
        while not re.match(r"(idle|mixed|allocated)\b", _node_state()):
            assert time.monotonic() < deadline, f"the test cluster's node stays {_node_state()}"
            time.sleep(0.2)


def _node_state() -> str:
    return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
