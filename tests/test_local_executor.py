"""The ``local`` executor against the executor contract, on real processes: submit → done with the
block's output, cancel within 5 s with the process gone, a hung block killed at its walltime, logs in
order by offset, a lost process → died with retry, a bad manifest → permanent error, and jobs that
outlive the executor (a portal restart)."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from apps.compute.backends.local import LocalExecutor
from apps.compute.base import BackendError, Executor, JobState, Launch, Resources
from apps.compute.launcher import start_ticks
from apps.compute.registry import executor_for
from blocks.manifest import ResultManifest, path_from_uri

TEST_BLOCK_MODULES = "tests.support.blocks,tests.support.isolation_blocks"


@pytest.fixture(scope="module")
def block_modules():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ILIAD_BLOCK_MODULES", TEST_BLOCK_MODULES)
        yield


@pytest.fixture
def executor(block_modules):
    executor = LocalExecutor(name="local-test", config={"grace_s": 1})
    yield executor
    executor.close()


def write_manifest(block_id: str, params: dict | None = None, *, walltime_s: int = 60) -> tuple[str, str]:
    """A version 2 manifest with store-relative URIs; returns (manifest URI, run id)."""
    run = uuid.uuid4().hex[:8]
    document = {
        "manifest_version": 2, "run_id": run, "step_id": "step", "attempt": 1,
        "block": {"id": block_id, "version": "1.0.0"}, "params": params or {}, "inputs": {},
        "output_dir": f"store:runs/{run}/step", "resources": {"walltime_s": walltime_s},
    }
    path = settings.ILIAD_ARTIFACT_ROOT / "runs" / run / "_manifests" / "step.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    return f"store:runs/{run}/_manifests/step.json", run


def launch(uri: str, walltime_s: int = 60) -> Launch:
    return Launch(step_id=1, attempt=1, manifest_uri=uri, resources=Resources(walltime_s=walltime_s))


def wait_for(executor, external_id: str, states: set[JobState], timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        status = executor.poll([external_id])[external_id]
        if status.state in states or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def pid_of(external_id: str) -> int:
    return int(external_id.split(".", 1)[0])


def test_the_registry_builds_it_and_it_follows_the_protocol(block_modules):
    executor = executor_for("local", "local-registry", {})
    assert isinstance(executor, LocalExecutor) and isinstance(executor, Executor)
    assert executor.reports_itself is False


def test_submit_runs_a_library_block_to_done_with_its_output(executor):
    uri, run = write_manifest("utility.noop", {"sleep_s": 0.3})
    [external_id] = executor.submit([launch(uri)])
    assert executor.poll([external_id])[external_id].state in (JobState.RUNNING, JobState.DONE)
    assert wait_for(executor, external_id, {JobState.DONE}).state == JobState.DONE
    result = ResultManifest.load(settings.ILIAD_ARTIFACT_ROOT / "runs" / run / "step" / "_result.json")
    assert result.ok
    [artifact] = result.artifacts
    assert artifact.uri == f"store:runs/{run}/step/result.json"  # portable: relative to the store
    output = json.loads(path_from_uri(artifact.uri, settings.ILIAD_ARTIFACT_ROOT).read_text())
    assert output == {"ok": True, "received": False}


def test_cancel_ends_the_step_within_5_s_and_the_process_is_gone(executor):
    uri, _ = write_manifest("isolation.sleep", {"seconds": 60})
    [external_id] = executor.submit([launch(uri)])
    deadline = time.monotonic() + 10
    while not executor.logs(external_id)[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    executor.cancel(external_id)
    assert time.monotonic() - started < 5
    assert start_ticks(pid_of(external_id)) is None
    assert executor.poll([external_id])[external_id].state == JobState.CANCELLED
    executor.cancel(external_id)  # idempotent


def test_a_hung_block_is_killed_at_its_walltime(executor):
    uri, _ = write_manifest("isolation.hang", walltime_s=1)
    [external_id] = executor.submit([launch(uri, walltime_s=1)])
    started = time.monotonic()
    status = wait_for(executor, external_id, {JobState.DIED, JobState.DONE}, timeout=10)
    assert status.state == JobState.DIED, status
    assert status.reason == "walltime exceeded"
    assert time.monotonic() - started < 10  # 1 s walltime, 1 s grace, then SIGKILL; a loaded machine
    assert start_ticks(pid_of(external_id)) is None


def test_logs_arrive_in_order_by_offset(executor):
    uri, _ = write_manifest("isolation.chatty", {"lines": 30, "pause_s": 0.02})
    [external_id] = executor.submit([launch(uri)])
    lines, offset, offsets = [], 0, []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        events, offset = executor.logs(external_id, offset=offset)
        offsets.append(offset)
        lines += [event["message"] for event in events if event["kind"] == "log"]
        if any(event["kind"] == "result" for event in events):
            break
        time.sleep(0.03)
    assert lines == [f"line {number}" for number in range(30)]
    assert offsets == sorted(offsets) and len(set(offsets)) > 2  # read in several pieces
    assert executor.logs(external_id, offset=offset) == ([], offset)


def test_a_lost_process_is_died_with_retry(executor):
    uri, _ = write_manifest("isolation.sleep", {"seconds": 60})
    [external_id] = executor.submit([launch(uri)])
    assert wait_for(executor, external_id, {JobState.RUNNING}).state == JobState.RUNNING
    os.kill(pid_of(external_id), signal.SIGKILL)
    status = wait_for(executor, external_id, {JobState.DIED})
    assert status.state == JobState.DIED and status.retry is True
    assert "signal 9" in status.reason or "no result" in status.reason


def test_a_bad_manifest_is_a_permanent_error(executor):
    for uri in ("store:../../etc/passwd", "store:runs/missing/step.json", "/etc/hostname"):
        with pytest.raises(BackendError) as raised:
            executor.submit([launch(uri)])
        assert raised.value.permanent, uri
    unknown = executor.poll(["123.456@/nonexistent/manifest.json"])["123.456@/nonexistent/manifest.json"]
    assert unknown.state == JobState.UNKNOWN


def test_jobs_outlive_the_executor_that_started_them(block_modules):
    """A portal restart: the launcher goes away, the step goes on, a new executor polls it to done."""
    first = LocalExecutor(name="local-restart", config={"grace_s": 1})
    uri, run = write_manifest("utility.noop", {"sleep_s": 1.5})
    [external_id] = first.submit([launch(uri)])
    first.close()
    assert start_ticks(pid_of(external_id)) is not None
    second = LocalExecutor(name="local-restart", config={"grace_s": 1})
    assert second.poll([external_id])[external_id].state == JobState.RUNNING
    assert wait_for(second, external_id, {JobState.DONE}).state == JobState.DONE
    assert Path(settings.ILIAD_ARTIFACT_ROOT / "runs" / run / "step" / "result.json").exists()
    second.close()


def test_a_job_of_a_previous_portal_can_be_cancelled(block_modules):
    first = LocalExecutor(name="local-restart", config={"grace_s": 1})
    uri, _ = write_manifest("isolation.sleep", {"seconds": 60})
    [external_id] = first.submit([launch(uri)])
    first.close()
    second = LocalExecutor(name="local-restart", config={"grace_s": 1})
    started = time.monotonic()
    second.cancel(external_id)
    assert time.monotonic() - started < 5
    assert start_ticks(pid_of(external_id)) is None
    assert second.poll([external_id])[external_id].state == JobState.CANCELLED
    second.close()
