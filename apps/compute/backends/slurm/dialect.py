"""Slurm's command-line text, built and parsed by pure functions (tested against captured output of
Slurm 22.05, the version the test cluster runs).

Nothing here runs a command: ``shell.py`` does, ``executor.py`` ties both to the executor interface.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from apps.compute.base import BackendError, JobState, JobStatus, Resources

# Every Slurm job state, mapped explicitly (squeue %T / scontrol JobState). `retry` for states where
# a new attempt may succeed; the reason is what the user reads.
STATES: dict[str, JobStatus] = {
    "PENDING": JobStatus(JobState.PENDING),
    "CONFIGURING": JobStatus(JobState.PENDING),
    "REQUEUED": JobStatus(JobState.PENDING),
    "REQUEUE_FED": JobStatus(JobState.PENDING),
    "REQUEUE_HOLD": JobStatus(JobState.PENDING, "held by the cluster after a requeue"),
    "RESV_DEL_HOLD": JobStatus(JobState.PENDING, "held: its reservation was deleted"),
    "SPECIAL_EXIT": JobStatus(JobState.PENDING, "held by the cluster after a special exit"),
    "SUSPENDED": JobStatus(JobState.RUNNING, "suspended by the cluster"),
    "STOPPED": JobStatus(JobState.RUNNING, "stopped by the cluster"),
    "RUNNING": JobStatus(JobState.RUNNING),
    "COMPLETING": JobStatus(JobState.RUNNING),
    "SIGNALING": JobStatus(JobState.RUNNING),
    "STAGE_OUT": JobStatus(JobState.RUNNING),
    "RESIZING": JobStatus(JobState.RUNNING),
    # The runner writes its result file before it exits: a block that failed is a result too, so a
    # job that ended by itself is DONE and the result file says how the step went.
    "COMPLETED": JobStatus(JobState.DONE),
    "FAILED": JobStatus(JobState.DONE),
    "TIMEOUT": JobStatus(JobState.DIED, "walltime exceeded on the cluster (Slurm TIMEOUT)"),
    "OUT_OF_MEMORY": JobStatus(JobState.DIED, "out of memory on the cluster (Slurm OUT_OF_MEMORY)"),
    "NODE_FAIL": JobStatus(JobState.DIED, "the cluster node failed", retry=True),
    "PREEMPTED": JobStatus(JobState.DIED, "pre-empted by a job of higher priority", retry=True),
    "BOOT_FAIL": JobStatus(JobState.DIED, "the cluster node failed to boot", retry=True),
    "DEADLINE": JobStatus(JobState.DIED, "the job's deadline passed before it could run"),
    "REVOKED": JobStatus(JobState.DIED, "revoked by a sibling cluster", retry=True),
    "CANCELLED": JobStatus(JobState.CANCELLED, "cancelled on the cluster"),
}

_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.,:=@+/-]{1,200}")
"""What a partition, account, qos or module name may look like: no spaces, quotes or shell syntax."""


@dataclass(frozen=True)
class BatchOptions:
    """A target's options for every job it submits (from its configuration)."""

    workdir: str
    """Working directory on the cluster's file system (job scripts, logs, step manifests)."""
    python: str = "python3"
    """The interpreter that has this repository's ``blocks`` package installed on the cluster."""
    partition: str = ""
    account: str = ""
    qos: str = ""
    modules: tuple[str, ...] = ()
    """Environment modules to load before the runner (``module load <name>``)."""
    setup: tuple[str, ...] = ()
    """Extra shell lines run before the runner (e.g. ``source /opt/venv/bin/activate``); written by an
    administrator in the target's configuration, never by users."""
    store_root: str = ""
    """The artifact store root as the cluster sees it (``--store-root`` of the runner)."""
    max_walltime_s: int = 0
    """The partition's time limit (0: none): a job asks for at most this much, and the cluster ends
    a step that needs more with TIMEOUT."""


def _checked(name: str, value: str) -> str:
    if value and not _OPTION_VALUE.fullmatch(value):
        raise BackendError(f"the target's {name} {value!r} has characters Slurm options may not have",
                           permanent=True)
    return value


def walltime(seconds: int) -> str:
    """Slurm's ``--time`` for ``seconds``, rounded up to a whole minute: ``D-HH:MM:SS``."""
    minutes = max(1, -(-int(seconds) // 60))
    days, rest = divmod(minutes * 60, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}-{hours:02d}:{rest // 60:02d}:00"


def batch_script(*, name: str, manifests: Sequence[str], resources: Resources, options: BatchOptions,
                 log_dir: str, chain: bool = False, tasks: int = 1) -> str:
    """A batch script running ``python -m blocks.runner`` on each manifest: one job for one
    manifest, a job array (one task per manifest) for several. With ``chain``, each of ``tasks``
    tasks (a job array when more than one) runs ``python -m blocks.chain <log_dir>/chain-<task>.json``
    instead: several steps one after the other in one task (``manifests`` is then not used). Resources
    are per task.

    Slurm writes the job's standard output and error to ``<log_dir>/<task>/_slurm.out`` and
    ``_slurm.err`` (``<log_dir>/0/`` for a single job or a chain): the executor makes each
    ``<log_dir>/<task>`` a link to the step's own directory, so nothing lands anywhere else."""
    if not manifests:
        raise ValueError("a batch script needs at least one manifest")
    array = tasks > 1 if chain else len(manifests) > 1
    count = tasks if chain else len(manifests)
    task_dir = f"{shlex.quote(log_dir)}/%a" if array else f"{shlex.quote(log_dir)}/0"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={_checked('job name', name)}"]
    for flag, value in (("partition", options.partition), ("account", options.account), ("qos", options.qos)):
        if value:
            lines.append(f"#SBATCH --{flag}={_checked(flag, value)}")
    lines += [
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={max(1, int(resources.cpus))}",
        f"#SBATCH --mem={max(1, int(resources.memory_mb))}M",
        f"#SBATCH --time={walltime(job_walltime(resources.walltime_s, options))}",
        f"#SBATCH --chdir={shlex.quote(options.workdir)}",
        f"#SBATCH --output={task_dir}/_slurm.out",
        f"#SBATCH --error={task_dir}/_slurm.err",
        # The portal owns attempts: after a node failure or pre-emption it starts a new attempt in a
        # directory of its own; a job Slurm requeued would rerun into the old one under the same id.
        "#SBATCH --no-requeue",
    ]
    if resources.gpus:
        lines.append(f"#SBATCH --gres=gpu:{int(resources.gpus)}")
    if array:
        lines.append(f"#SBATCH --array=0-{count - 1}")
    lines += ["set -euo pipefail", "unset DJANGO_SETTINGS_MODULE"]
    lines += [f"module load {_checked('module', module)}" for module in options.modules]
    lines += list(options.setup)
    store = f" --store-root {shlex.quote(options.store_root)}" if options.store_root else ""
    if chain:
        chain_file = shlex.quote(f"{log_dir}/chain-") + '"${SLURM_ARRAY_TASK_ID:-0}.json"'
        lines.append(f"exec {shlex.quote(options.python)} -m blocks.chain {chain_file}{store}")
        return "\n".join(lines) + "\n"
    quoted = " ".join(shlex.quote(uri) for uri in manifests)
    lines.append(f"MANIFESTS=({quoted})")
    lines.append('MANIFEST=${MANIFESTS[${SLURM_ARRAY_TASK_ID:-0}]}')
    # exec: the runner itself receives Slurm's TERM at cancel and walltime and ends the step cleanly.
    lines.append(f'exec {shlex.quote(options.python)} -m blocks.runner "$MANIFEST"{store}')
    return "\n".join(lines) + "\n"


def job_walltime(seconds: int, options: BatchOptions) -> int:
    """What a job asks for: the step's walltime, at most the target's ``max_walltime_s``."""
    seconds = max(1, int(seconds))
    return min(seconds, options.max_walltime_s) if options.max_walltime_s else seconds


def sbatch_command() -> list[str]:
    """``sbatch`` reading the script from standard input, printing only the job id."""
    return ["sbatch", "--parsable"]


def parse_sbatch(output: str) -> str:
    """The job id printed by ``sbatch --parsable`` (``12345`` or ``12345;cluster``)."""
    text = output.strip().splitlines()[-1] if output.strip() else ""
    job_id = text.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise BackendError(f"sbatch answered {output.strip()[:200]!r}, not a job id")
    return job_id


def external_ids(job_id: str, count: int) -> list[str]:
    """The external id of each launch of a submission: the job id, or ``<array id>_<task>``."""
    return [job_id] if count == 1 else [f"{job_id}_{index}" for index in range(count)]


SQUEUE_FORMAT = "%i|%T|%r"


def squeue_command() -> list[str]:
    """One ``squeue`` for all of this account's jobs (array tasks expanded, one line each). Not
    ``-j ids``: one id that left the queue makes Slurm refuse the whole list."""
    return ["squeue", "-h", "-r", "--me", "--states=all", "-o", SQUEUE_FORMAT]


def parse_squeue(output: str) -> dict[str, tuple[str, str]]:
    """``{external id: (state, reason)}`` from ``squeue -h -r -o '%i|%T|%r'``."""
    found = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            found[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "")
    return found


def scontrol_command(job_id: str) -> list[str]:
    return ["scontrol", "show", "job", "-o", job_id.split("_", 1)[0]]


_FIELD = re.compile(r"(\w+)=(\S*)")


def parse_scontrol(output: str) -> dict[str, tuple[str, str, str]]:
    """``{external id: (state, reason, exit code)}`` from ``scontrol show job -o``: one line per job
    or array task, array tasks named ``<array id>_<task>``."""
    found = {}
    for line in output.splitlines():
        fields = dict(_FIELD.findall(line))
        if "JobId" not in fields or "JobState" not in fields:
            continue
        task = fields.get("ArrayTaskId")
        external = f"{fields['ArrayJobId']}_{task}" if task and task.isdigit() else fields["JobId"]
        found[external] = (fields["JobState"], fields.get("Reason", ""), fields.get("ExitCode", ""))
    return found


SACCT_FORMAT = "JobID,State,ExitCode"


def sacct_command(job_ids: Iterable[str]) -> list[str]:
    jobs = sorted({external.split("_", 1)[0] for external in job_ids})
    return ["sacct", "-n", "-P", "-X", "--format", SACCT_FORMAT, "-j", ",".join(jobs)]


def parse_sacct(output: str) -> dict[str, tuple[str, str, str]]:
    """``{external id: (state, "", exit code)}`` from ``sacct -n -P -X --format JobID,State,ExitCode``
    (a state such as ``CANCELLED by 0`` keeps its first word)."""
    found = {}
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            found[parts[0]] = (parts[1].split(" ", 1)[0], "", parts[2] if len(parts) > 2 else "")
    return found


def status_of(state: str, reason: str = "") -> JobStatus:
    """Our job status for a Slurm state; an unknown state is reported as such (never guessed)."""
    state = state.rstrip("+").upper()
    status = STATES.get(state)
    if status is None:
        return JobStatus(JobState.UNKNOWN, f"Slurm state {state!r} is not known to the portal")
    if status.state is JobState.PENDING and reason and reason not in ("None", "Priority", "Resources"):
        return JobStatus(JobState.PENDING, f"waiting on the cluster: {reason}")
    return status


def scancel_command(external_id: str) -> list[str]:
    """``scancel`` of one job or one array task (Slurm sends TERM, then KILL after KillWait)."""
    return ["scancel", external_id]


def options_from(config: Mapping[str, object]) -> BatchOptions:
    """A target's configuration as batch options; a missing working directory is a permanent error."""
    workdir = str(config.get("workdir") or "")
    if not workdir.startswith("/"):
        raise BackendError("the Slurm target needs an absolute 'workdir' on the cluster", permanent=True)
    return BatchOptions(
        workdir=workdir,
        python=str(config.get("python") or "python3"),
        partition=str(config.get("partition") or ""),
        account=str(config.get("account") or ""),
        qos=str(config.get("qos") or ""),
        modules=tuple(str(m) for m in config.get("modules") or ()),
        setup=tuple(str(line) for line in config.get("setup") or ()),
        store_root=str(config.get("store_root") or ""),
        max_walltime_s=int(config.get("max_walltime_s") or 0),
    )
