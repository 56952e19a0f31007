"""Celery queues as compute targets: one queue per target, named after it.

Any ``celery -A iliad_portal worker -Q <target name>`` on any machine that reaches the broker, the
database and the artifact store serves the target. The job is the task ``runs.execute_step``, whose
in-process agent claims the step, beats, checks for cancel and records the result: the backend
*reports itself* and is never polled on the hot path.

Configuration (the target's ``config``, secrets merged in):

``queue``
    Queue name; defaults to the target's name.
``broker_url``
    Another broker than the portal's (``CELERY_BROKER_URL``), e.g. a cloud's; usually a secret.
``burst_threshold`` and ``overflow``
    Bursting: while the queue holds more than ``burst_threshold`` waiting messages, ``route`` sends
    new launches to the target named ``overflow`` (the model's fields, see
    ``apps.compute.selectors.target_config``).
``terminate_on_cancel``
    ``cancel`` also kills the process running the task (``revoke(terminate=True)``). Off by default:
    the agent ends a cancelled step itself at its next cancel check (≤ 1 s after the block's next
    progress report) and records it ``cancelled``; a killed pool process records nothing, and the
    step is then taken back only by the stall recovery.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from apps.compute.base import BackendError, JobState, JobStatus, Launch

TASK_NAME = "runs.execute_step"
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
"""Sending retries briefly; an unreachable broker is then a transient BackendError and the
orchestrator's own back-off takes over."""


def config_errors(config: Mapping[str, Any]) -> dict[str, str]:
    """Problems with a Celery target's configuration, by option name ({} when valid)."""
    errors: dict[str, str] = {}
    queue = config.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        errors["queue"] = "must be a non-empty queue name"
    broker_url = config.get("broker_url")
    if broker_url is not None and (not isinstance(broker_url, str) or "://" not in broker_url):
        errors["broker_url"] = "must be a broker URL such as redis://host:6379/0"
    if not isinstance(config.get("terminate_on_cancel", False), bool):
        errors["terminate_on_cancel"] = "must be true or false"
    threshold = config.get("burst_threshold")
    if threshold is not None and (type(threshold) is not int or threshold < 0):
        errors["burst_threshold"] = "must be a whole number of queued messages, 0 or more"
    return errors


class CeleryExecutor:
    """Submits steps as ``runs.execute_step`` tasks on the target's queue."""

    kind: ClassVar[str] = "celery"
    reports_itself: ClassVar[bool] = True

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        errors = config_errors(config)
        if errors:
            raise BackendError(
                f"compute target {name!r} is misconfigured: "
                + "; ".join(f"{key} {message}" for key, message in errors.items()),
                permanent=True,
            )
        self.name = name
        self.queue: str = config.get("queue") or name
        self.burst_threshold: int | None = config.get("burst_threshold")
        self.overflow: str = config.get("overflow") or ""
        self.terminate_on_cancel: bool = config.get("terminate_on_cancel", False)
        self._broker_url: str = config.get("broker_url") or ""
        self._own_app = None

    @property
    def app(self):
        """The portal's Celery app, or one of this target's own for another broker."""
        if not self._broker_url:
            from iliad_portal.celery import app

            return app
        if self._own_app is None:
            from celery import Celery

            self._own_app = Celery(f"iliad-target-{self.name}", broker=self._broker_url, set_as_current=False)
            self._own_app.conf.update(
                task_serializer="json", accept_content=["json"], task_ignore_result=True
            )
        return self._own_app

    def queue_depth(self) -> int:
        """Messages waiting in the queue (not those a worker has taken): one broker round trip."""
        try:
            with self.app.pool.acquire(block=True, timeout=5) as connection:
                channel = connection.default_channel
                if connection.transport.driver_type == "redis":
                    # kombu's Redis transport keeps a queue's (priority-0) messages in a list of its name
                    return int(channel.client.llen(self.queue))
                return int(channel.queue_declare(queue=self.queue, passive=True).message_count)
        except Exception as error:
            raise BackendError(f"cannot read the depth of queue {self.queue!r}: {error}") from error

    def route(self, launches: Sequence[Launch]) -> str:
        """The name of the target that should take these launches: this one, or its ``overflow``
        target while this queue holds more than ``burst_threshold`` waiting messages (one broker
        round trip per call, so call it once per batch).

        The orchestrator calls ``route`` before ``submit`` when an executor has it, and submits the
        batch to the executor of the target it names (which may route further; the admin refuses
        cycles), recording that target as where the steps went. An unreadable depth keeps the
        launches here: bursting is an optimisation, never a reason not to run.
        """
        if not launches or self.burst_threshold is None or not self.overflow or self.overflow == self.name:
            return self.name
        try:
            depth = self.queue_depth()
        except BackendError:
            return self.name
        return self.overflow if depth > self.burst_threshold else self.name

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        """Send one ``runs.execute_step`` task per launch to the queue; returns the task ids
        (``step-<step id>-<attempt>-<random>``). Raises a transient BackendError when the broker
        cannot be reached."""
        ids = [f"step-{launch.step_id}-{launch.attempt}-{uuid.uuid4().hex[:12]}" for launch in launches]
        if not launches:
            return ids
        try:
            with self.app.producer_or_acquire() as producer:
                for launch, task_id in zip(launches, ids, strict=True):
                    self.app.send_task(
                        TASK_NAME, args=[launch.step_id], task_id=task_id, queue=self.queue,
                        producer=producer, retry=True, retry_policy=SEND_RETRY_POLICY,
                    )
        except Exception as error:  # kombu's OperationalError, socket errors, timeouts
            raise BackendError(f"cannot send steps to Celery queue {self.queue!r}: {error}") from error
        return ids

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        """What the workers say of these tasks (one broadcast, 1 s): RUNNING when one executes it,
        PENDING when one has reserved it, else UNKNOWN (still in the queue, or finished: the agent
        records the outcome in the database, which is where the reconciler looks for this kind)."""
        statuses = {task_id: JobStatus(JobState.UNKNOWN) for task_id in external_ids}
        if not external_ids:
            return statuses
        try:
            replies = self.app.control.inspect(timeout=1.0).query_task(*external_ids) or {}
        except Exception as error:
            raise BackendError(f"cannot ask the Celery workers about their tasks: {error}") from error
        for tasks in replies.values():
            for task_id, (state, _info) in (tasks or {}).items():
                if state == "active":
                    statuses[task_id] = JobStatus(JobState.RUNNING)
                elif state in ("reserved", "scheduled") and statuses[task_id].state == JobState.UNKNOWN:
                    statuses[task_id] = JobStatus(JobState.PENDING)
        return statuses

    def cancel(self, external_id: str) -> None:
        """Revoke the task: a worker that has not started it discards it. A running one is ended by
        its agent, which sees the run cancelled in the database; with ``terminate_on_cancel`` its
        process is also killed at once. Idempotent."""
        try:
            self.app.control.revoke(external_id, terminate=self.terminate_on_cancel, signal="SIGTERM")
        except Exception as error:
            raise BackendError(f"cannot revoke Celery task {external_id}: {error}") from error

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        """Nothing: the agent writes a step's events to the database as they happen."""
        return [], offset
