"""Tiny executors for tests of the orchestrator's side of the executor interface.

``SubprocessExecutor`` is a polled backend in the smallest form: each launch is a real
``python -m blocks.runner MANIFEST`` child process; its state is read from the process table and
the result file, its events from the events file the runner appends to. It keeps nothing in memory,
so any process can poll it (as the portal's reconciler re-attaches after a restart).

``RefusingExecutor`` refuses every launch, transiently or permanently (its config's ``permanent``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from apps.compute.base import BackendError, JobState, JobStatus, Launch
from blocks.manifest import path_from_uri

REPO_ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class SubprocessExecutor:
    kind: ClassVar[str] = "subprocess"
    reports_itself: ClassVar[bool] = False

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = dict(config)

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        ids = []
        for launch in launches:
            manifest_path = path_from_uri(launch.manifest_uri)
            env = {
                "PATH": os.environ.get("PATH", ""),
                "PYTHONPATH": str(REPO_ROOT),
                "ILIAD_BLOCK_MODULES": os.environ.get("ILIAD_BLOCK_MODULES", ""),
                "ILIAD_DATA_DIR": os.environ.get("ILIAD_DATA_DIR", ""),
            }
            with open(manifest_path.parent / "_runner.log", "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "blocks.runner", str(manifest_path)],
                    cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                )
            ids.append(f"{process.pid}:{manifest_path}")
        return ids

    @staticmethod
    def _parts(external_id: str) -> tuple[int, Path]:
        pid, manifest = external_id.split(":", 1)
        return int(pid), Path(manifest)

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        statuses = {}
        for external_id in external_ids:
            pid, manifest = self._parts(external_id)
            if alive(pid):  # DONE only once it exited: its last events are in the file by then
                statuses[external_id] = JobStatus(JobState.RUNNING)
            elif (manifest.parent / "_result.json").exists():
                statuses[external_id] = JobStatus(JobState.DONE)
            else:
                statuses[external_id] = JobStatus(JobState.DIED, reason="the process ended without a result",
                                                  retry=True)
        return statuses

    def cancel(self, external_id: str) -> None:
        pid, _ = self._parts(external_id)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        _, manifest = self._parts(external_id)
        events_file = manifest.parent / "_events.jsonl"
        try:
            with open(events_file, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return [], offset
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next call
        events = [json.loads(line) for line in complete.splitlines() if line.strip()]
        return events, offset + len(complete)


class RefusingExecutor:
    kind: ClassVar[str] = "refusing"
    reports_itself: ClassVar[bool] = True

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.permanent = bool(config.get("permanent"))

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        raise BackendError("partition 'gpu' does not exist" if self.permanent else "queue is full",
                           permanent=self.permanent)

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {external_id: JobStatus(JobState.UNKNOWN) for external_id in external_ids}

    def cancel(self, external_id: str) -> None:
        pass

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        return [], offset


class ScriptedExecutor:
    """A polled backend whose jobs are whatever the test says: ``ScriptedExecutor.statuses[id]``
    (default PENDING). Stands for a cluster whose verdicts (out of memory, walltime, no record of
    the job) a test cannot provoke on this machine."""

    kind: ClassVar[str] = "scripted"
    reports_itself: ClassVar[bool] = False
    statuses: ClassVar[dict[str, JobStatus]] = {}
    cancelled: ClassVar[list[str]] = []

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.name = name

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        return [f"job-{launch.step_id}-{launch.attempt}" for launch in launches]

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        pending = JobStatus(JobState.PENDING)
        return {external_id: self.statuses.get(external_id, pending) for external_id in external_ids}

    def cancel(self, external_id: str) -> None:
        self.cancelled.append(external_id)

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        return [], offset
