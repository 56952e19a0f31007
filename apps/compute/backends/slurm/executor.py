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

Slurm writes each step's standard output and error into the step's own directory (``_slurm.out``,
``_slurm.err``; never into the portal's or the user's working directory): a submission gets a
directory ``<workdir>/jobs/<token>/`` whose entry ``<task>`` links to the step's directory, and
``<workdir>/jobs/<job id>`` links to it once sbatch answered, so any process finds a job's files by
its id alone (the portal re-attaches after a restart). Standard output holds the runner's JSON-line
events, which ``logs`` tails by byte offset; the runner's last event names the result manifest. A job
that ended without that event died before the runner could say anything (the interpreter is missing,
the node failed). A job that died (TIMEOUT, OUT_OF_MEMORY, …) reports the end of its standard error
with its status, for the step's log.

Configuration keys: ``workdir`` (absolute, on the cluster), ``python``, ``partition``, ``account``,
``qos``, ``modules``, ``setup``, ``store_root``, ``max_walltime_s`` (the partition's time limit),
``shared_filesystem`` (bool), ``pack`` ("array" or "none"), ``chain_max_walltime_s`` (see
``chain_rule``), and for SSH ``transport: "ssh"``, ``host``, ``port``, ``user``, ``known_hosts`` plus the
secret ``ssh_private_key``.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from apps.compute.backends.slurm import dialect
from apps.compute.backends.slurm.shell import LocalShell, Shell, SSHShell
from apps.compute.base import BackendError, JobState, JobStatus, Launch, Resources
from blocks.manifest import (
    STORE_SCHEME,
    InputRef,
    ManifestError,
    StepManifest,
    is_store_relative,
    path_from_uri,
    store_root_from_env,
)
from blocks.scrub import scrub_paths

CHAIN_MAX_STEPS = 200
CHAIN_MAX_WALLTIME_S = 300
CHAIN_MARKER = "_slurm_chain.json"
STEPS_PER_TASK = 10
"""Independent short steps ready together run this many to a task of their job array, one after the
other in one process that imports the block library once (a task per no-op step spends most of its
time starting Python and waiting for the scheduler)."""
STDERR_LINES = 20
"""How many of its last standard error lines a job that died reports for the step's log."""


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
    own_scheduler: ClassVar[bool] = True
    """The cluster shares itself between users (Slurm's fair share): the portal does not hold this
    target's steps back under ``ILIAD_FAIR_STEPS_PER_USER``, or job arrays could never be packed."""

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.options = dialect.options_from(config)
        self.shell = _shell(config)
        self.shared = bool(config.get("shared_filesystem", True))
        self.pack = str(config.get("pack") or "array")
        self.chain_max_walltime_s = int(config.get("chain_max_walltime_s", CHAIN_MAX_WALLTIME_S))
        # Chains need the cluster to see the portal's files (the later steps' templates).
        self.chain_max_steps = CHAIN_MAX_STEPS if self.shared and self.pack != "none" else 0
        self.steps_per_task = max(1, int(config.get("steps_per_task", STEPS_PER_TASK)))
        local_root = config.get("local_store_root") or store_root_from_env() or _artifact_root()
        self.local_store = Path(local_root) if local_root else None
        self.last_packing: list[dict[str, Any]] = []
        """How the last ``submit`` grouped its launches: ``{"job", "steps", "how", "message"}`` each
        (the orchestrator writes the message to the runs' events)."""

    # --- submit -----------------------------------------------------------------------------------
    def _store_relative(self, uri: str) -> str:
        """``uri`` as a ``store:`` URI when it names a file under the portal's store, else unchanged."""
        if is_store_relative(uri) or self.local_store is None:
            return uri
        try:
            path = path_from_uri(uri)
            relative = path.resolve().relative_to(self.local_store.resolve())
        except (ManifestError, ValueError):
            return uri
        return f"{STORE_SCHEME}:{relative.as_posix()}"

    def _cluster_path(self, uri: str) -> str:
        """Where a store file is on the cluster."""
        uri = self._store_relative(uri) if not self.shared else uri
        if is_store_relative(uri):
            relative = uri.split(":", 1)[-1] if uri.startswith(f"{STORE_SCHEME}:") else uri
            root = self.options.store_root or (str(self.local_store) if self.local_store else "")
            return f"{root.rstrip('/')}/{relative}"
        return str(path_from_uri(uri))

    def _cluster_manifest(self, launch: Launch) -> tuple[str, str]:
        """The manifest's path on the cluster and the step's directory there; staged in (with its
        inputs, and its file URIs made store-relative) when nothing is shared."""
        local = path_from_uri(launch.manifest_uri, self.local_store)
        try:
            manifest = StepManifest.load(local)
        except (ManifestError, OSError) as error:
            raise BackendError(f"step manifest unreadable: {error}", permanent=True) from error
        if self.shared:
            return str(local), self._cluster_path(manifest.output_dir)
        if not self.options.store_root or self.local_store is None:
            raise BackendError("a target that shares no file system needs 'store_root' (on the cluster) "
                               "and the portal's store root", permanent=True)
        inputs = {}
        for port, ref in manifest.inputs.items():
            uri = self._store_relative(ref.uri)
            if not is_store_relative(uri):
                raise BackendError("inputs must be in the artifact store to be staged", permanent=True)
            relative = path_from_uri(uri, self.local_store).relative_to(self.local_store)
            self.shell.put_file(self.local_store / relative, f"{self.options.store_root}/{relative}")
            inputs[port] = InputRef(uri=uri, type=ref.type)
        staged = dataclasses.replace(
            manifest, inputs=inputs, output_dir=self._store_relative(manifest.output_dir),
            events=self._store_relative(manifest.events) if manifest.events else "",
            result=self._store_relative(manifest.result) if manifest.result else "",
        )
        remote = f"{self.options.workdir}/manifests/{launch.step_id}-{launch.attempt}.json"
        self.shell.write(remote, json.dumps(staged.to_dict()))
        return remote, self._cluster_path(staged.output_dir)

    def _groups(self, launches: Sequence[Launch]) -> list[list[int]]:
        groups: dict[object, list[int]] = defaultdict(list)
        for index, launch in enumerate(launches):
            key = launch.resources if self.pack == "array" else index
            groups[key].append(index)
        return list(groups.values())

    def chain_rule(self, launch: Launch) -> list[dict[str, Any]]:
        """Which of the steps after ``launch`` go into its job. ``options["chain"]`` (or a callable
        returning it) is the orchestrator's proposal: a line of steps on this target, each waiting
        only for the one before. Taken while each one's walltime hint is at most
        ``chain_max_walltime_s`` (short steps: the time a job waits in the queue would dominate theirs)
        and, with a ``max_walltime_s``, while their sum stays under it; none when ``launch`` itself is
        longer. A step of more than that runs in a job of its own."""
        proposed = launch.options.get("chain")
        too_long = launch.resources.walltime_s > self.chain_max_walltime_s
        if not proposed or not self.chain_max_steps or too_long:
            return []
        proposed = list(proposed() if callable(proposed) else proposed)  # the orchestrator's, on demand
        total = launch.resources.walltime_s
        taken = []
        for entry in proposed[: self.chain_max_steps]:
            walltime_s = int(entry["resources"]["walltime_s"])
            if walltime_s > self.chain_max_walltime_s:
                break
            if self.options.max_walltime_s and total + walltime_s > self.options.max_walltime_s:
                break
            total += walltime_s
            taken.append(entry)
        return taken

    def _attached(self, launch: Launch, step_dir: str) -> str | None:
        """The external id of a step that already runs in a chain job (``<job>+<position>``)."""
        if launch.attempt != 1:
            return None
        data = self.shell.read(f"{step_dir}/{CHAIN_MARKER}")
        try:
            marker = json.loads(data) if data else None
        except ValueError:
            return None
        if not isinstance(marker, dict) or marker.get("step_id") != launch.step_id:
            return None
        return f"{marker['job']}+{marker['position']}"

    def _submit_chain(self, launch: Launch, manifest: str, step_dir: str, chain: list[dict]) -> str:
        job_dir = f"{self.options.workdir}/jobs/{uuid.uuid4().hex}"
        self.shell.link(step_dir, f"{job_dir}/0")
        for position, entry in enumerate(chain, start=1):
            self.shell.link(entry["dir"], f"{job_dir}/{position}")
        steps = [{"manifest": manifest, "dir": step_dir}] + [
            {"template": entry["template"], "dir": entry["dir"], "inputs": entry["inputs"]} for entry in chain
        ]
        self.shell.write(f"{job_dir}/chain-0.json", json.dumps({"steps": steps}))
        everything = [launch.resources] + [Resources(**entry["resources"]) for entry in chain]
        resources = Resources(
            cpus=max(r.cpus for r in everything), memory_mb=max(r.memory_mb for r in everything),
            walltime_s=sum(r.walltime_s for r in everything), gpus=max(r.gpus for r in everything),
        )
        script = dialect.batch_script(name=f"iliad-{self.name}", manifests=[manifest], resources=resources,
                                      options=self.options, log_dir=job_dir, chain=True)
        job_id = dialect.parse_sbatch(self.shell.run(dialect.sbatch_command(), stdin=script))
        try:
            self.shell.link(job_dir, f"{self.options.workdir}/jobs/{job_id}")
            for position, entry in enumerate(chain, start=1):
                self.shell.write(f"{entry['dir']}/{CHAIN_MARKER}", json.dumps(
                    {"job": job_id, "position": position, "step_id": entry["step_id"]}))
        except BackendError:
            self.cancel(job_id)
            raise
        self.last_packing.append({
            "job": job_id, "steps": [launch.step_id] + [entry["step_id"] for entry in chain], "how": "chain",
            "message": f"packed a chain of {len(chain) + 1} steps into Slurm job {job_id} on {self.name} "
                       f"(each waits only for the one before, walltime hints at most "
                       f"{self.chain_max_walltime_s} s)",
        })
        return f"{job_id}+0"

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        ids: list[str] = [""] * len(launches)
        self.last_packing = []
        rest = []
        for index, launch in enumerate(launches):
            if not self.chain_max_steps:
                rest.append(index)
                continue
            manifest, step_dir = self._cluster_manifest(launch)
            attached = self._attached(launch, step_dir)
            chain = [] if attached else self.chain_rule(launch)
            if attached:
                ids[index] = attached
            elif chain:
                ids[index] = self._submit_chain(launch, manifest, step_dir, chain)
            else:
                rest.append(index)
        for group in self._groups([launches[i] for i in rest]):
            indexes = [rest[i] for i in group]
            per_task = self._per_task(launches[indexes[0]], len(indexes))
            if per_task > 1:
                batch = self._submit_batches([launches[i] for i in indexes], per_task)
                for i, external in zip(indexes, batch, strict=True):
                    ids[i] = external
                continue
            placed = [self._cluster_manifest(launches[i]) for i in indexes]
            job_dir = f"{self.options.workdir}/jobs/{uuid.uuid4().hex}"
            for task, (_, step_dir) in enumerate(placed):
                self.shell.link(step_dir, f"{job_dir}/{task}")
            script = dialect.batch_script(
                name=f"iliad-{self.name}", manifests=[manifest for manifest, _ in placed],
                resources=launches[indexes[0]].resources, options=self.options, log_dir=job_dir,
            )
            job_id = dialect.parse_sbatch(self.shell.run(dialect.sbatch_command(), stdin=script))
            try:
                self.shell.link(job_dir, f"{self.options.workdir}/jobs/{job_id}")
            except BackendError:
                self.cancel(job_id)
                raise
            for i, external in zip(indexes, dialect.external_ids(job_id, len(indexes)), strict=True):
                ids[i] = external
            steps = [launches[i].step_id for i in indexes]
            if len(indexes) > 1:
                message = (f"packed {len(indexes)} steps into Slurm job array {job_id} on {self.name} "
                           "(ready together, same resources)")
            else:
                message = f"submitted as Slurm job {job_id} on {self.name}"
            self.last_packing.append(
                {"job": job_id, "steps": steps, "how": "array" if len(indexes) > 1 else "job",
                 "message": message}
            )
        return ids

    def _per_task(self, launch: Launch, count: int) -> int:
        """How many of ``count`` independent steps with ``launch``'s resources go into one array task:
        ``steps_per_task`` when their walltime hint is short (at most ``chain_max_walltime_s``), fewer
        when the target's ``max_walltime_s`` would not hold that many, 1 otherwise."""
        if self.chain_max_steps == 0 or count < 2 or launch.resources.walltime_s > self.chain_max_walltime_s:
            return 1
        per_task = min(self.steps_per_task, count)
        if self.options.max_walltime_s:
            fits = self.options.max_walltime_s // max(1, launch.resources.walltime_s)
            per_task = min(per_task, max(1, fits))
        return per_task

    def _submit_batches(self, launches: Sequence[Launch], per_task: int) -> list[str]:
        """One job array whose each task runs up to ``per_task`` of these independent steps one after
        the other (``blocks.chain`` with ``independent``). External ids ``<job>_<task>+<position>``."""
        job_dir = f"{self.options.workdir}/jobs/{uuid.uuid4().hex}"
        tasks = [list(range(start, min(start + per_task, len(launches))))
                 for start in range(0, len(launches), per_task)]
        for task, members in enumerate(tasks):
            steps = []
            for position, index in enumerate(members):
                manifest, step_dir = self._cluster_manifest(launches[index])
                entry = f"{task}" if position == 0 else f"{task}+{position}"
                self.shell.link(step_dir, f"{job_dir}/{entry}")
                steps.append({"manifest": manifest, "dir": step_dir})
            chain = {"independent": True, "steps": steps}
            self.shell.write(f"{job_dir}/chain-{task}.json", json.dumps(chain))
        first = launches[0].resources
        resources = Resources(cpus=first.cpus, memory_mb=first.memory_mb, gpus=first.gpus,
                              walltime_s=first.walltime_s * per_task)
        script = dialect.batch_script(name=f"iliad-{self.name}", manifests=["-"], resources=resources,
                                      options=self.options, log_dir=job_dir, chain=True, tasks=len(tasks))
        job_id = dialect.parse_sbatch(self.shell.run(dialect.sbatch_command(), stdin=script))
        try:
            self.shell.link(job_dir, f"{self.options.workdir}/jobs/{job_id}")
        except BackendError:
            self.cancel(job_id)
            raise
        ids = [""] * len(launches)
        for task, members in enumerate(tasks):
            for position, index in enumerate(members):
                ids[index] = f"{job_id}_{task}+{position}"
        self.last_packing.append({
            "job": job_id, "steps": [launch.step_id for launch in launches], "how": "array",
            "message": f"packed {len(launches)} steps into Slurm job array {job_id} on {self.name} "
                       f"({len(tasks)} tasks of up to {per_task} steps: ready together, same resources, "
                       f"walltime hints at most {self.chain_max_walltime_s} s)",
        })
        return ids

    # --- poll -------------------------------------------------------------------------------------
    def _task_path(self, external_id: str, name: str) -> str:
        """Where a job's (or array task's, or packed step's) files are: ``<job>`` → ``jobs/<job>/0``,
        ``<job>_<task>`` → ``jobs/<job>/<task>``, a chain's ``<job>+<k>`` → ``jobs/<job>/<k>``, a
        packed task's ``<job>_<task>+<k>`` → ``jobs/<job>/<task>+<k>`` (``<task>`` for k = 0)."""
        base, plus, position = external_id.partition("+")
        job, _, task = base.partition("_")
        if not job.isdigit() or not (task or "0").isdigit() or (plus and not position.isdigit()):
            raise BackendError(f"not a Slurm job id: {external_id!r}", permanent=True)
        if not task:
            entry = position or "0"
        else:
            entry = task if not plus or position == "0" else f"{task}+{position}"
        return f"{self.options.workdir}/jobs/{job}/{entry}/{name}"

    def _result_event(self, external_id: str) -> dict | None:
        events, _ = self.logs(external_id)
        return next((event for event in reversed(events) if event.get("kind") == "result"), None)

    def stderr_tail(self, external_id: str, lines: int = STDERR_LINES) -> tuple[str, ...]:
        """The last ``lines`` lines the job wrote to its standard error (paths of the cluster scrubbed)."""
        try:
            data = self.shell.read(self._task_path(external_id, "_slurm.err"))
        except BackendError:
            return ()
        text = data[-20000:].decode("utf-8", "replace")
        root = self.options.store_root or (str(self.local_store) if self.local_store else None)
        found = [scrub_paths(line.rstrip(), artifact_root=root) for line in text.splitlines() if line.strip()]
        return tuple(found[-lines:])

    def _finished(self, external_id: str, status: JobStatus) -> JobStatus:
        """DONE only with the runner's result (fetched home when nothing is shared); else DIED with
        the end of the job's standard error. The cluster's verdict (TIMEOUT, OUT_OF_MEMORY, …) wins
        over a result the runner wrote as it was being stopped."""
        result = self._result_event(external_id)
        if result is None or (status.state is JobState.DIED and not result.get("ok")):
            stderr = self.stderr_tail(external_id)
            if status.state is JobState.DONE:
                logs = self.logs(external_id)[0]
                tail = [event.get("message", "") for event in logs if event.get("kind") == "log"][-1:]
                tail = tail or [line for line in stderr if "error" in line.lower()][-1:] or list(stderr[-1:])
                reason = "the job ended before the step's runner wrote a result"
                return JobStatus(JobState.DIED, f"{reason}: {tail[0][:200]}" if tail else reason, log=stderr)
            return dataclasses.replace(status, log=stderr)
        if not self.shared and self.local_store is not None:
            uri = str(result.get("result") or "")
            if is_store_relative(uri):
                relative = Path(uri.split(":", 1)[-1] if uri.startswith("store:") else uri).parent
                self.shell.fetch_dir(f"{self.options.store_root}/{relative}", self.local_store / relative)
        return JobStatus(JobState.DONE)

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        queue = dialect.parse_squeue(self.shell.run(dialect.squeue_command()))
        found: dict[str, tuple[str, str]] = {}
        missing = []
        for external in external_ids:
            key = external.split("+", 1)[0]  # a step of a chain: the state of its job
            if key in queue:
                found[external] = queue[key]
            else:
                missing.append(external)
        for job in sorted({external.split("_", 1)[0].split("+", 1)[0] for external in missing}):
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
                key = external.split("+", 1)[0]
                if key in records:
                    found[external] = records[key][:2]
        statuses = {}
        for external in external_ids:
            if external not in found:
                statuses[external] = JobStatus(JobState.UNKNOWN, "the cluster has no record of the job")
                continue
            status = dialect.status_of(*found[external])
            if "+" in external:
                status = self._chain_step(external, status)
            elif status.state in (JobState.DONE, JobState.DIED):
                status = self._finished(external, status)
            statuses[external] = status
        return statuses

    def _chain_step(self, external_id: str, job: JobStatus) -> JobStatus:
        """The state of one step of a chain job: DONE once its runner wrote its result (the job
        may go on with the next), RUNNING once it started, else as the job."""
        position = int(external_id.split("+", 1)[1])  # in its chain, or in its array task
        if self._result_event(external_id) is not None:
            ended = job if job.state is JobState.DIED else JobStatus(JobState.DONE)
            return self._finished(external_id, ended)
        started = position == 0 or bool(self.shell.read(self._task_path(external_id, "_slurm.out")))
        if job.state is JobState.RUNNING:
            return job if started else JobStatus(JobState.PENDING, "waiting for the step before it")
        if job.state in (JobState.DONE, JobState.DIED) and not started:
            return JobStatus(JobState.DIED, "its chain job ended before the step started", retry=True)
        if job.state in (JobState.DONE, JobState.DIED):
            return self._finished(external_id, job)
        return job

    def cancel(self, external_id: str) -> None:
        external_id = external_id.split("+", 1)[0]  # a step of a chain: its job
        try:
            self.shell.run(dialect.scancel_command(external_id))
        except BackendError as error:
            if "Invalid job id" not in str(error) and "already completing or completed" not in str(error):
                raise

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        data = self.shell.read(self._task_path(external_id, "_slurm.out"), offset)
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


def _artifact_root() -> str | None:
    """The portal's artifact store (settings), when Django is configured."""
    try:
        from django.conf import settings

        return str(settings.ILIAD_ARTIFACT_ROOT)
    except Exception:  # noqa: BLE001 - not in a configured Django process
        return None


def config_errors(config: Mapping[str, Any]) -> dict[str, str]:
    """Problems of a Slurm target's configuration (secrets merged in), by option: checked when an
    administrator saves the target, so that a step never finds them out."""
    errors: dict[str, str] = {}
    workdir = config.get("workdir")
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        errors["workdir"] = "an absolute directory on the cluster's file system is required"
    for key in ("partition", "account", "qos", "python", "store_root"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            errors[key] = "must be a string"
        elif key in ("partition", "account", "qos") and value and not dialect._OPTION_VALUE.fullmatch(value):
            errors[key] = "has characters Slurm options may not have"
    for key in ("modules", "setup"):
        value = config.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            errors[key] = "must be a list of strings"
    for key in ("max_walltime_s", "chain_max_walltime_s", "port"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            errors[key] = "must be a whole number, 0 or more"
    transport = config.get("transport", "local")
    if transport not in ("local", "ssh"):
        errors["transport"] = "local or ssh"
    elif transport == "ssh":
        for key in ("host", "user", "known_hosts", "ssh_private_key"):
            if not config.get(key):
                errors[key] = "required for the ssh transport" + (
                    " (a secret option)" if key == "ssh_private_key" else ""
                )
    if config.get("pack", "array") not in ("array", "none"):
        errors["pack"] = "array or none"
    if not config.get("shared_filesystem", True) and not config.get("store_root"):
        errors["store_root"] = "required when the cluster shares no file system with the portal"
    return errors
