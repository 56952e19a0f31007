"""RQ queues on Redis as compute targets: one RQ queue per target, named after it.

Workers: ``rq worker --url <redis> --worker-class apps.compute.rq_jobs.PortalWorker <target name>``
with the portal's settings (``DATABASE_URL`` …) in the environment, on any machine that reaches
Redis, the database and the artifact store. The job, ``apps.compute.rq_jobs.execute_step``, runs
the in-process agent: the backend *reports itself*.

Configuration (the target's ``config``, secrets merged in):

``redis_url``
    The Redis of the queue; defaults to ``ILIAD_RQ_REDIS_URL`` (the portal's ``REDIS_URL``).
``queue``
    Queue name; defaults to the target's name.
``terminate_on_cancel``
    ``cancel`` of a running job also stops its work horse at once (``send_stop_job_command``; the
    job ends STOPPED). Off by default: the agent ends a cancelled step itself at its next cancel
    check and records it ``cancelled``, which a killed work horse cannot do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from apps.compute.base import BackendError, JobState, JobStatus, Launch

JOB_FUNCTION = "apps.compute.rq_jobs.execute_step"
RESULT_TTL_S = 3600
FAILURE_TTL_S = 7 * 24 * 3600


def config_errors(config: Mapping[str, Any]) -> dict[str, str]:
    """Problems with an RQ target's configuration, by option name ({} when valid)."""
    errors: dict[str, str] = {}
    redis_url = config.get("redis_url")
    if redis_url is not None and (
        not isinstance(redis_url, str) or not redis_url.startswith(("redis://", "rediss://", "unix://"))
    ):
        errors["redis_url"] = "must be a Redis URL (redis://, rediss:// or unix://)"
    queue = config.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        errors["queue"] = "must be a non-empty queue name"
    if not isinstance(config.get("terminate_on_cancel", False), bool):
        errors["terminate_on_cancel"] = "must be true or false"
    return errors


_STATES = {
    "created": JobState.PENDING,
    "queued": JobState.PENDING,
    "deferred": JobState.PENDING,
    "scheduled": JobState.PENDING,
    "started": JobState.RUNNING,
    "finished": JobState.DONE,
    "stopped": JobState.CANCELLED,
    "canceled": JobState.CANCELLED,
}


class RQExecutor:
    """Enqueues steps as RQ jobs ``step-<step id>-<attempt>`` on the target's queue."""

    kind: ClassVar[str] = "rq"
    reports_itself: ClassVar[bool] = True

    def __init__(self, *, name: str, config: Mapping[str, Any]) -> None:
        errors = config_errors(config)
        if errors:
            raise BackendError(
                f"compute target {name!r} is misconfigured: "
                + "; ".join(f"{key} {message}" for key, message in errors.items()),
                permanent=True,
            )
        from django.conf import settings
        from redis import Redis

        self.name = name
        self.queue_name: str = config.get("queue") or name
        self.terminate_on_cancel: bool = config.get("terminate_on_cancel", False)
        self.timeout_grace_s: int = settings.ILIAD_RQ_TIMEOUT_GRACE_S
        url = config.get("redis_url") or settings.ILIAD_RQ_REDIS_URL
        try:
            # Short timeouts: an unreachable Redis must fail a dispatch quickly (transiently).
            self.connection = Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
        except ValueError as error:
            raise BackendError(f"compute target {name!r}: bad redis_url: {error}", permanent=True) from error

    def _queue(self):
        from rq import Queue

        return Queue(self.queue_name, connection=self.connection)

    def submit(self, launches: Sequence[Launch]) -> list[str]:
        """Enqueue one job per launch in one Redis pipeline; returns the job ids. Each job may run
        its step's walltime plus ``ILIAD_RQ_TIMEOUT_GRACE_S`` before RQ kills it. Raises a
        transient BackendError when Redis cannot be reached."""
        from redis.exceptions import RedisError
        from rq import Queue

        ids = [f"step-{launch.step_id}-{launch.attempt}" for launch in launches]
        if not launches:
            return ids
        try:
            self._queue().enqueue_many([
                Queue.prepare_data(
                    JOB_FUNCTION, args=(launch.step_id,), job_id=job_id,
                    timeout=launch.resources.walltime_s + self.timeout_grace_s,
                    result_ttl=RESULT_TTL_S, failure_ttl=FAILURE_TTL_S,
                    description=f"step {launch.step_id}, attempt {launch.attempt}",
                )
                for launch, job_id in zip(launches, ids, strict=True)
            ])
        except RedisError as error:
            raise BackendError(f"cannot enqueue steps on RQ queue {self.queue_name!r}: {error}") from error
        return ids

    def poll(self, external_ids: Sequence[str]) -> dict[str, JobStatus]:
        """The states of these jobs, read with ``Job.fetch_many`` (one round trip). A failed job
        (the work horse died, or the walltime ran out) is DIED with RQ's last line of the error."""
        from redis.exceptions import RedisError
        from rq.job import Job

        try:
            jobs = Job.fetch_many(list(external_ids), connection=self.connection)
        except RedisError as error:
            raise BackendError(f"cannot read RQ jobs: {error}") from error
        statuses: dict[str, JobStatus] = {}
        for job_id, job in zip(external_ids, jobs, strict=True):
            status = _status_text(job)
            if status is None:
                statuses[job_id] = JobStatus(JobState.UNKNOWN)
            elif status == "failed":
                reason = _failure_reason(job)
                # Past its walltime a new attempt would only overrun again.
                retry = "JobTimeoutException" not in reason
                statuses[job_id] = JobStatus(JobState.DIED, reason=reason, retry=retry)
            else:
                statuses[job_id] = JobStatus(_STATES.get(status, JobState.UNKNOWN))
        return statuses

    def cancel(self, external_id: str) -> None:
        """A waiting job is taken off the queue; a running one is ended by its agent, which sees
        the run cancelled in the database, or with ``terminate_on_cancel`` stopped at once.
        Idempotent: an unknown or finished job is left alone."""
        from redis.exceptions import RedisError
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation, NoSuchJobError
        from rq.job import Job

        try:
            job = Job.fetch(external_id, connection=self.connection)
            status = _status_text(job)
            if status in ("queued", "deferred", "scheduled", "created"):
                job.cancel()
            elif status == "started" and self.terminate_on_cancel:
                send_stop_job_command(self.connection, external_id)
        except (NoSuchJobError, InvalidJobOperation):
            return
        except RedisError as error:
            raise BackendError(f"cannot cancel RQ job {external_id}: {error}") from error

    def logs(self, external_id: str, *, offset: int = 0) -> tuple[list[dict], int]:
        """Nothing: the agent writes a step's events to the database as they happen."""
        return [], offset


def _status_text(job) -> str | None:
    """RQ's status of a fetched job as plain text ("queued", "started", …), None without a job."""
    status = job.get_status(refresh=False) if job is not None else None
    return getattr(status, "value", status)


def _failure_reason(job) -> str:
    result = job.latest_result()
    text = (result.exc_string if result is not None else "") or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else "the RQ job failed"
