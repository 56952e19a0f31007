"""The ``local`` executor: each step in an isolated child process of a launcher on this machine.

Polled (``reports_itself = False``): the orchestrator writes the step manifest (version 2), submits
its URI; the child runs :func:`blocks.runner.execute` (forked from the preloaded fork server of
:mod:`apps.compute.launcher`, with the protections :mod:`apps.compute.isolation` describes), appends
events to the manifest's events file and writes its result file. Nothing of a job lives only in the
portal's memory, so poll, cancel and logs work after a portal restart:

- the external id is ``<pid>.<start ticks>.<job token>``: the process (its start time tells it from a
  later process with the same pid) and its job file;
- ``<jobs_dir>/<token>.json`` records the pid, start, walltime and the events and result paths;
  ``<token>.exit.json`` how the process ended, when the launcher or ``cancel`` saw it. The jobs
  directory (default ``$ILIAD_HOME/local-jobs``) is hidden from the steps, which can write their own
  output directory: what poll and logs trust is never there. Events and result files are read without
  following symbolic links.

Children are *detached*: when the portal (and with it the launcher) stops, running steps go on and
still stop themselves at their walltime; poll kills one that overran it by more than the grace.

Configuration (the target's): ``store_root`` (where ``store:`` URIs resolve; default the artifact
root), ``grace_s`` (time between SIGTERM and SIGKILL, default 3), ``jobs_dir``.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings

from apps.compute.base import BackendError, JobState, JobStatus, Launch
from apps.compute.isolation import launcher_config, read_events, read_result
from apps.compute.launcher import ForkServer, LauncherError, reset_file, start_ticks
from blocks.manifest import ManifestError, StepManifest, path_from_uri
from blocks.runner import EXIT_CANCELLED, EXIT_WALLTIME

WALLTIME_SLACK_S = 10.0
"""Poll kills a step still running this long after its walltime plus grace (the child and the launcher
should have ended it before; this covers a launcher that is gone)."""


class LocalExecutor:
    kind: ClassVar[str] = "local"
    reports_itself: ClassVar[bool] = False

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = dict(config)
        self.store_root = Path(self.config.get("store_root") or settings.ILIAD_ARTIFACT_ROOT)
        self.grace_s = float(self.config.get("grace_s", 3))
        self.jobs_dir = Path(self.config.get("jobs_dir") or settings.ILIAD_HOME / "local-jobs")
        launcher = launcher_config()
        launcher["env"]["ILIAD_STORE_ROOT"] = str(self.store_root)
        self.launcher = ForkServer(launcher)

    # --- submit ---------------------------------------------------------------------------------

    def _manifest_path(self, uri: str) -> Path:
        try:
            return path_from_uri(uri, self.store_root)
        except ManifestError as error:
            raise BackendError(f"bad manifest URI: {error}", permanent=True) from None

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        """Fork one child per launch. A manifest that is missing, not JSON or names an unsafe path is
        a permanent BackendError; a launcher that cannot start, a transient one."""
        ids = []
        for launch in launches:
            path = self._manifest_path(launch.manifest_uri)
            try:
                manifest = StepManifest.load(path)
                manifest.check_paths(self.store_root)
            except (ManifestError, OSError) as error:
                raise BackendError(f"cannot use the step manifest of step {launch.step_id}: {error}",
                                   permanent=True) from None
            walltime_s = launch.resources.walltime_s or manifest.resources.walltime_s
            events = path_from_uri(manifest.events_uri, self.store_root)
            result = path_from_uri(manifest.result_uri, self.store_root)
            result.unlink(missing_ok=True)
            events.parent.mkdir(parents=True, exist_ok=True)
            reset_file(events)
            token = uuid.uuid4().hex
            self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                pid, ticks = self.launcher.start(
                    manifest.to_dict(), store_root=str(self.store_root), walltime_s=walltime_s,
                    grace_s=self.grace_s, detach=True, exit_file=str(self._exit_file(token)),
                )
            except LauncherError as error:
                permanent = "manifest" in str(error).lower() or "uri" in str(error).lower()
                raise BackendError(f"the local launcher refused step {launch.step_id}: {error}",
                                   permanent=permanent) from None
            ticks = ticks or 0  # it ended already: 0 matches no live process
            _write_json(self._job_file(token), {
                "pid": pid, "start_ticks": ticks, "walltime_s": walltime_s, "started_at": time.time(),
                "events": str(events), "result": str(result), "step_id": launch.step_id,
                "attempt": launch.attempt, "manifest": str(path),
            })
            ids.append(f"{pid}.{ticks}.{token}")
        return ids

    # --- poll, cancel, logs -------------------------------------------------------------------------

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {external_id: self._status(external_id) for external_id in external_ids}

    def _status(self, external_id: str) -> JobStatus:
        try:
            pid, ticks, token = _parse(external_id)
            job = json.loads(self._job_file(token).read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return JobStatus(JobState.UNKNOWN, "no such local job")
        ended = _read_json(self._exit_file(token))
        alive = start_ticks(pid) == ticks
        if ended and ended.get("reason") == "cancelled":
            return JobStatus(JobState.CANCELLED, "cancelled") if not alive else JobStatus(JobState.RUNNING)
        if read_result(Path(job["result"])) is not None:
            return JobStatus(JobState.DONE)
        if alive:
            overrun = time.time() - job["started_at"] - job["walltime_s"] - self.grace_s
            if overrun < WALLTIME_SLACK_S:
                return JobStatus(JobState.RUNNING)
            self._kill(pid, ticks, token, "walltime exceeded", grace_s=0)
            return JobStatus(JobState.DIED, "walltime exceeded")
        if ended is None:
            ended = {"code": None, "signal": None, "reason": ""}
        if ended.get("reason") == "walltime exceeded" or ended.get("code") == EXIT_WALLTIME:
            return JobStatus(JobState.DIED, "walltime exceeded")
        if ended.get("code") == EXIT_CANCELLED:
            return JobStatus(JobState.CANCELLED, "stopped by SIGTERM")
        if ended.get("signal"):
            return JobStatus(JobState.DIED, f"killed by signal {ended['signal']}", retry=True)
        if ended.get("code") is not None:
            return JobStatus(JobState.DIED, f"exited with code {ended['code']} without a result", retry=True)
        return JobStatus(JobState.DIED, "the step's process is gone and wrote no result", retry=True)

    def cancel(self, external_id: str) -> None:
        """SIGTERM to the step's process group, SIGKILL after the grace; returns once it is gone
        (within ``grace_s`` + 1 s). Idempotent; an unknown id is ignored."""
        try:
            pid, ticks, token = _parse(external_id)
        except ValueError:
            return
        if start_ticks(pid) != ticks:
            return
        self._kill(pid, ticks, token, "cancelled", grace_s=self.grace_s)

    def _kill(self, pid: int, ticks: int, token: str, reason: str, *, grace_s: float) -> None:
        if _read_json(self._exit_file(token)) is None:
            _write_json(self._exit_file(token), {"pid": pid, "code": None, "signal": None, "reason": reason})
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 1.0)):
            if start_ticks(pid) != ticks:
                return
            try:
                os.killpg(pid, sig)  # the child leads its own session: the block's own children too
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and start_ticks(pid) == ticks:
                time.sleep(0.02)

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        """Events appended to the step's events file since byte ``offset`` (whole lines only)."""
        try:
            _, _, token = _parse(external_id)
            job = json.loads(self._job_file(token).read_text(encoding="utf-8"))
        except (ValueError, OSError):
            raise BackendError(f"no such local job {external_id!r}", permanent=True) from None
        return read_events(Path(job["events"]), offset)

    def close(self) -> None:
        """Stop this executor's launcher (detached steps go on)."""
        self.launcher.close()


    def _job_file(self, token: str) -> Path:
        return self.jobs_dir / f"{token}.json"

    def _exit_file(self, token: str) -> Path:
        return self.jobs_dir / f"{token}.exit.json"


def _parse(external_id: str) -> tuple[int, int, str]:
    pid, ticks, token = external_id.split(".")
    if not token.isalnum():
        raise ValueError(external_id)
    return int(pid), int(ticks), token


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document), encoding="utf-8")
    os.replace(partial, path)
