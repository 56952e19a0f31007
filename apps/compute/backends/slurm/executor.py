"""The ``slurm`` executor: steps as batch jobs on a Slurm cluster, polled (the job cannot reach the
portal's database).

A launch becomes ``python -m blocks.runner MANIFEST`` in a batch script built by ``dialect`` from the
step's resources and the target's options. Independent launches submitted together with the same
resources go out as ONE job array (one task per step): the cluster's scheduler, not the portal,
is the bottleneck for many short steps, and an array costs it one submission.

Files: with a file system shared with the portal (``shared_filesystem``, default) the runner reads and
writes the artifact store directly (``store_root`` = the store's path on the cluster). Otherwise the
step manifest and its input artifacts are staged in over SFTP before submission and the step's output
directory is fetched back before the job is reported DONE, so the orchestrator always finds the result
in its own store.

Job output (``slurm-<id>.out`` in ``workdir``) holds the runner's JSON-line events, which ``logs`` tails
by byte offset; the runner's last event names the result manifest. A job that ended without that event
died before the runner could say anything (the interpreter is missing, the node failed).

Configuration keys: ``workdir`` (absolute, on the cluster), ``python``, ``partition``, ``account``,
``qos``, ``modules``, ``setup``, ``store_root``, ``shared_filesystem`` (bool), ``pack`` ("array" or
"none"), and for SSH ``transport: "ssh"``, ``host``, ``port``, ``user``, ``known_hosts`` plus the
secret ``ssh_private_key``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from apps.compute.backends.slurm import dialect
from apps.compute.backends.slurm.shell import LocalShell, Shell, SSHShell
from apps.compute.base import BackendError, JobState, JobStatus, Launch
from blocks.manifest import ManifestError, StepManifest, is_store_relative, path_from_uri, store_root_from_env


def _shell(config: Mapping[str, Any]) -> Shell:
    transport = config.get("transport", "local")
    if transport == "local":
        return LocalShell()
    if transport == "ssh":
        missing = [key for key in ("host", "user", "ssh_private_key", "known_hosts") if not config.get(key)]
        if missing:
            raise BackendError(f"the SSH target needs {', '.join(missing)}", permanent=True)
        return SSHShell(
            host=str(config["host"]), port=int(config.get("port") or 22), user=str(config["user"]),
            private_key=str(config["ssh_private_key"]), known_hosts=str(config["known_hosts"]),
        )
    raise BackendError(f"unknown transport {transport!r} (local or ssh)", permanent=True)


class SlurmExecutor:
    kind: ClassVar[str] = "slurm"
    reports_itself: ClassVar[bool] = False

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dialect.options_from(config)
        self.shell = _shell(config)
        self.shared = bool(config.get("shared_filesystem", True))
        self.pack = str(config.get("pack") or "array")
        local_root = config.get("local_store_root") or store_root_from_env()
        self.local_store = Path(local_root) if local_root else None
        self.last_packing: list[str] = []
        """How the last ``submit`` grouped its launches, in words (the orchestrator may log it)."""

    # --- submit -----------------------------------------------------------------------------------
    def _cluster_manifest(self, launch: Launch) -> str:
        """The manifest's path on the cluster; staged in (with its inputs) when nothing is shared."""
        local = path_from_uri(launch.manifest_uri, self.local_store)
        if self.shared:
            return str(local)
        if not self.options.store_root or self.local_store is None:
            raise BackendError("a target that shares no file system needs 'store_root' (on the cluster) "
                               "and the portal's store root", permanent=True)
        try:
            manifest = StepManifest.load(local)
        except ManifestError as error:
            raise BackendError(f"step manifest unreadable: {error}", permanent=True) from error
        for ref in manifest.inputs.values():
            if not is_store_relative(ref.uri):
                raise BackendError("inputs must be store-relative to be staged", permanent=True)
            relative = path_from_uri(ref.uri, self.local_store).relative_to(self.local_store)
            self.shell.put_file(self.local_store / relative, f"{self.options.store_root}/{relative}")
        remote = f"{self.options.workdir}/manifests/{launch.step_id}-{launch.attempt}.json"
        self.shell.put_file(local, remote)
        return remote

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        groups: dict[object, list[int]] = defaultdict(list)
        for index, launch in enumerate(launches):
            key = launch.resources if self.pack == "array" else index
            groups[key].append(index)
        ids: list[str] = [""] * len(launches)
        self.last_packing = []
        for indexes in groups.values():
            manifests = [self._cluster_manifest(launches[i]) for i in indexes]
            script = dialect.batch_script(
                name=f"iliad-{self.name}", manifests=manifests,
                resources=launches[indexes[0]].resources, options=self.options,
            )
            job_id = dialect.parse_sbatch(self.shell.run(dialect.sbatch_command(), stdin=script))
            for i, external in zip(indexes, dialect.external_ids(job_id, len(indexes)), strict=True):
                ids[i] = external
            steps = ", ".join(str(launches[i].step_id) for i in indexes)
            self.last_packing.append(
                f"job array {job_id}, {len(indexes)} tasks (steps {steps}): same resources, ready together"
                if len(indexes) > 1 else f"job {job_id} (step {steps})"
            )
        return ids

    # --- poll -------------------------------------------------------------------------------------
    def _output_path(self, external_id: str) -> str:
        return f"{self.options.workdir}/slurm-{external_id}.out"

    def _result_event(self, external_id: str) -> dict | None:
        events, _ = self.logs(external_id)
        return next((event for event in reversed(events) if event.get("kind") == "result"), None)

    def _finished(self, external_id: str, status: JobStatus) -> JobStatus:
        """DONE only with the runner's result (fetched home when nothing is shared); else DIED."""
        result = self._result_event(external_id)
        if result is None:
            if status.state is JobState.DONE:
                logs = self.logs(external_id)[0]
                tail = [event.get("message", "") for event in logs if event.get("kind") == "log"][-1:]
                reason = "the job ended before the step's runner wrote a result"
                return JobStatus(JobState.DIED, f"{reason}: {tail[0][:200]}" if tail else reason)
            return status
        if not self.shared and self.local_store is not None:
            uri = str(result.get("result") or "")
            if is_store_relative(uri):
                relative = Path(uri.split(":", 1)[-1] if uri.startswith("store:") else uri).parent
                self.shell.fetch_dir(f"{self.options.store_root}/{relative}", self.local_store / relative)
        return JobStatus(JobState.DONE) if status.state in (JobState.DONE, JobState.DIED) else status

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        queue = dialect.parse_squeue(self.shell.run(dialect.squeue_command()))
        found: dict[str, tuple[str, str]] = {}
        missing = []
        for external in external_ids:
            if external in queue:
                found[external] = queue[external]
            else:
                missing.append(external)
        for job in sorted({external.split("_", 1)[0] for external in missing}):
            try:
                records = dialect.parse_scontrol(self.shell.run(dialect.scontrol_command(job)))
            except BackendError:
                records = {}
            if not records:
                try:
                    records = dialect.parse_sacct(self.shell.run(dialect.sacct_command([job])))
                except BackendError:
                    records = {}
            for external in missing:
                if external in records:
                    found[external] = records[external][:2]
        statuses = {}
        for external in external_ids:
            if external not in found:
                statuses[external] = JobStatus(JobState.UNKNOWN, "the cluster has no record of the job")
                continue
            status = dialect.status_of(*found[external])
            if status.state in (JobState.DONE, JobState.DIED):
                status = self._finished(external, status)
            statuses[external] = status
        return statuses

    def cancel(self, external_id: str) -> None:
        try:
            self.shell.run(dialect.scancel_command(external_id))
        except BackendError as error:
            if "Invalid job id" not in str(error) and "already completing or completed" not in str(error):
                raise

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        data = self.shell.read(self._output_path(external_id), offset)
        complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
        events = []
        for line in complete.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line) if line.startswith("{") else None
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict):
                event = {"kind": "log", "level": "info", "message": line}
            events.append(event)
        return events, offset + len(complete)
