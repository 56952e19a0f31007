"""The executor interface: how the orchestrator hands steps to a computing facility.

Two kinds of backend sit behind it. One *reports itself* (Celery, RQ): its job runs the in-process
agent (``apps.runs.agent.step_execute``), which claims the step, beats, checks for cancel, runs the
block and records the result in the database; the orchestrator never polls it. The other is
*polled* (a local child process, Slurm): its job cannot reach the database, runs
``python -m blocks.runner MANIFEST``, appends JSON-line events to the manifest's events file and
writes the result manifest; the reconciler polls many jobs at once and records their results with the
same function the agent uses.

Nothing here imports Django models: executors are built from a target's kind, name and configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable


class BackendError(Exception):
    """A backend refused or failed an operation. ``permanent`` when retrying cannot help (unknown
    partition, refused key, disabled target): the step then fails with this message. Otherwise the
    orchestrator tries again later, up to a cap on launch attempts."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class JobState(StrEnum):
    PENDING = "pending"
    """Accepted, not started (in a queue, waiting for a node)."""
    RUNNING = "running"
    DONE = "done"
    """The runner wrote its result manifest (a block that failed is a result too)."""
    DIED = "died"
    """Ended without a result: out of memory, walltime, node failure, a lost worker."""
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    """The backend has no record of the job (yet, or any more)."""


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    reason: str = ""
    """For DIED/CANCELLED: the backend's words, shown to the user (e.g. "out of memory")."""
    retry: bool = False
    """For DIED: a new attempt may succeed (node failure, pre-emption, a lost worker)."""
    log: tuple[str, ...] = ()
    """For DIED: the last lines the job wrote to its standard error, for the step's log."""


@dataclass(frozen=True)
class Resources:
    """What one attempt of a step may use, from its block's resource hints."""

    cpus: int = 1
    memory_mb: int = 1024
    walltime_s: int = 3600
    gpus: int = 0


@dataclass(frozen=True)
class Launch:
    """One attempt of one step, as handed to an executor."""

    step_id: int
    attempt: int
    manifest_uri: str
    """Where the step manifest (version 2) is; for self-reporting backends it may be empty (the agent
    builds the manifest itself from the database)."""
    resources: Resources = field(default_factory=Resources)
    options: Mapping[str, Any] = field(default_factory=dict)
    """Per-step options a backend may honour (e.g. the user's id for fair sharing, a priority)."""


@runtime_checkable
class Executor(Protocol):
    """Built once per target by ``apps.compute.registry.executor_for``."""

    kind: ClassVar[str]
    reports_itself: ClassVar[bool]

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        """Start these attempts; one external id per launch, in order. A backend may group a batch
        (a Slurm job array). Raises BackendError for the whole batch."""
        ...

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        """The state of many jobs at once (one backend round trip where the backend allows)."""
        ...

    def cancel(self, external_id: str) -> None:
        """Stop the job: it ends within seconds and writes nothing after. Idempotent."""
        ...

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        """Events (JSON-line dicts) the job appended since ``offset``, and the new offset."""
        ...
