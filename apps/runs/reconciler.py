"""Recovery, run periodically (celery beat) and when a worker starts: launch again what a lost
message or a refusing target left queued, take back steps whose worker fell silent, fail steps that
overran their walltime, and poll the targets that do not report by themselves (re-attaching to
their jobs by the external ids in the database after any restart)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.compute.base import BackendError, JobState, JobStatus
from apps.runs import orchestration
from apps.runs.events import NewEvent, events_append
from apps.runs.manifests import manifest_files
from apps.runs.models import RUN_FINISHED, Run, RunEvent, RunState, StepRun, StepState
from apps.runs.orchestration import RUN_FIELDS_FOR_STEPS, end_taken_back, step_finish
from apps.runs.transitions import LAUNCHED_STEP_STATES, state_event, step_transition
from blocks.context import WalltimeExceeded
from blocks.manifest import ManifestError, ResultManifest

logger = logging.getLogger(__name__)

WORKER_LOST = "WorkerLost"
"""Error type of a step failed because its worker was lost more often than it may be retried."""
WALLTIME_EXCEEDED = WalltimeExceeded.__name__
"""Error type of a step that ran longer than its block's walltime (never run again: it would only
overrun again)."""
OUT_OF_MEMORY = "OutOfMemory"
WALLTIME_ADVICE = "Give it less work, e.g. a smaller area or a shorter period."


def _by_target(steps: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for step_id, target in steps:
        grouped.setdefault(target, []).append(step_id)
    return grouped


def _polled_targets() -> set[str]:
    """Names of the enabled targets whose executors are polled (they do not report by themselves)."""
    from apps.compute.models import ComputeTarget

    polled = set()
    for name in ComputeTarget.objects.filter(enabled=True).values_list("name", flat=True):
        try:
            executor = orchestration._executor(name)
        except BackendError:
            continue
        if executor is not None and not executor.reports_itself:
            polled.add(name)
    return polled


def steps_requeue_lost(*, older_than: timedelta) -> int:
    """Dispatch again the steps dispatched longer than ``older_than`` ago and still queued, or
    submitted to a self-reporting target that never started them (a lost message, a broker outage),
    and the queued steps whose launch back-off is over. Held steps (queued, never dispatched) are
    left to the fair-share release: they wait for room under their user's cap, not for a lost message.

    Safe because claiming is exactly-once: if the first message was merely slow, the second one
    finds the step running and does nothing. Returns how many steps were re-dispatched.
    """
    now = timezone.now()
    cutoff = now - older_than
    polled = _polled_targets()
    with transaction.atomic():
        lost = list(
            StepRun.objects.filter(
                Q(state=StepState.QUEUED, dispatched_at__lt=cutoff, launch_after__isnull=True)
                | Q(state=StepState.QUEUED, dispatched_at__isnull=False, launch_after__lte=now)
                | Q(state=StepState.SUBMITTED, dispatched_at__lt=cutoff, worker="")
            )
            .exclude(target__in=polled, state=StepState.SUBMITTED)
            .values_list("id", "target")
        )
        ids = [step_id for step_id, _ in lost]
        step_transition(
            ids, source=StepState.SUBMITTED, to=StepState.QUEUED, where={"worker": ""}, external_id=""
        )
        StepRun.objects.filter(id__in=ids, state=StepState.QUEUED).update(
            dispatched_at=now, launch_after=None
        )
    for target, step_ids in _by_target(lost).items():
        orchestration.dispatch_steps(step_ids, target=target)
    return len(lost)


def steps_recover_stalled(*, stalled_after: timedelta, max_attempts: int, walltime_grace: timedelta) -> int:
    """Recover the running steps of self-reporting targets whose worker has sent no heartbeat for
    ``stalled_after`` (a killed or out-of-memory worker, a lost machine): each is run again or failed
    by ``step_recover``. Fail those of live workers that have run longer than their walltime plus
    ``walltime_grace`` (a hung block, or one that never reports progress, so never learns that it
    is out of time): see ``step_fail_overdue``. Polled targets' steps are left to ``steps_poll``.

    Needed because a redelivered task finds such a step running and leaves it alone unless it
    stays silent. Returns how many steps were taken back or failed.
    """
    now = timezone.now()
    cutoff = now - stalled_after
    running = StepRun.objects.filter(state=StepState.RUNNING)
    polled = _polled_targets()
    if polled:
        running = running.exclude(target__in=polled)
    stalled = list(running.filter(heartbeat_at__lt=cutoff).values_list("id", "heartbeat_at"))
    # A silent step is a lost worker's, run again by step_recover whatever its age: the walltime is
    # for steps of live workers. Few steps run at once, so their walltimes are compared here.
    overdue = [
        (step_id, attempts)
        for step_id, attempts, started_at, walltime_s in running.filter(
            heartbeat_at__gte=cutoff, started_at__lt=now - walltime_grace
        ).values_list("id", "attempts", "started_at", "walltime_s")
        if started_at + timedelta(seconds=walltime_s) + walltime_grace < now
    ]
    failed = sum(
        _unless_locked(step_fail_overdue, step_id=step_id, attempts=attempts, grace=walltime_grace)
        for step_id, attempts in overdue
    )
    return failed + sum(
        _unless_locked(
            step_recover, step_id=step_id, last_heartbeat=last_heartbeat, max_attempts=max_attempts
        )
        for step_id, last_heartbeat in stalled
    )


LOCK_WAIT_S = 5
"""How long a take-back waits for a row another session holds (PostgreSQL) before it leaves the step
to the next round."""


def _wait_briefly_for_locks() -> None:
    """A frozen process (a stopped or suspended worker) can hold a step's row in an open transaction
    until the server ends its session (``ILIAD_DB_IDLE_IN_TRANSACTION_S``); the reconciler must not
    hang on it meanwhile, nor hold up the other steps."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_S}s'")


def _unless_locked(take_back, **step) -> bool:
    """``take_back(**step)``, or False when a row it needs stayed locked (tried again next round)."""
    try:
        return take_back(**step)
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        logger.warning("step %s is locked by another session; tried again next round", step["step_id"])
        return False


def _requeue_or_fail(
    run: Run,
    step: StepRun,
    claim: dict,
    now: datetime,
    *,
    lost: str,
    max_attempts: int,
    error_type: str = WORKER_LOST,
    final_message: str | None = None,
) -> bool:
    """Queue the step taken back under ``claim`` again (dispatched after commit) while it had fewer
    than ``max_attempts`` attempts, else end it as failed (cancelled in a cancelled run). Callers
    hold the run's lock."""
    if run.state != RunState.CANCELLED and step.attempts < max_attempts:
        if not step_transition(
            **claim,
            to=StepState.QUEUED,
            queued_at=now,
            dispatched_at=now,
            worker="",
            external_id="",
            launch_attempts=0,
            launch_after=None,
            events_offset=0,
        ):
            return False
        retry = f"{lost}; running the step again, attempt {step.attempts + 1} of {max_attempts}"
        events_append(
            run_id=run.pk,
            events=[
                (RunEvent.Kind.LOG, step.node_id, {"level": "warning", "message": retry}),
                state_event(StepState.QUEUED, step.node_id, reason=lost),
            ],
        )
        target = step.target or run.target
        transaction.on_commit(lambda: orchestration.dispatch_steps([step.pk], target=target))
        return True
    message = final_message or (
        f"{lost}; not run again after {step.attempts} attempts. "
        "The block may need more memory or time than a worker has."
    )
    return end_taken_back(run, claim, step.node_id, now, reason=lost, error_type=error_type, message=message)


@transaction.atomic
def step_recover(*, step_id: int, last_heartbeat: datetime, max_attempts: int) -> bool:
    """Take back a running step whose worker was last heard from at ``last_heartbeat``.

    If it was claimed fewer than ``max_attempts`` times it is queued and dispatched again (its next
    attempt writes into a fresh output directory); otherwise it fails with a ``WorkerLost`` error,
    which fails the run and skips its downstream steps like a failing block does. A step of a
    cancelled run is cancelled. Returns False, changing nothing, when the step is no longer running
    under that claim or its worker sent a heartbeat since: a live worker always keeps its step.
    """
    _wait_briefly_for_locks()
    step = (
        StepRun.objects.only("id", "run_id", "node_id", "attempts", "worker", "target")
        .filter(pk=step_id)
        .first()
    )
    if step is None:
        return False
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = {
        "steps": step.pk,
        "source": StepState.RUNNING,
        "attempt": step.attempts,
        "where": {"heartbeat_at": last_heartbeat},
    }
    now = timezone.now()
    silent_s = int((now - last_heartbeat).total_seconds())
    worker = step.worker or "(unknown)"
    lost = f"worker {worker} lost (no heartbeat for {silent_s} s)"
    message = (
        f"worker lost {step.attempts} times (the last one, {worker}, sent no heartbeat for {silent_s} s); "
        "not run again. The block may need more memory or time than a worker has."
    )
    return _requeue_or_fail(
        run, step, claim, now, lost=lost, max_attempts=max_attempts, final_message=message
    )


@transaction.atomic
def step_fail_overdue(*, step_id: int, attempts: int, grace: timedelta) -> bool:
    """Fail a step still running under claim ``attempts`` more than ``grace`` after its walltime
    ran out, with a ``WalltimeExceeded`` error, which fails the run and skips its downstream steps
    like a failing block does; it is not run again, as it would only overrun again. A step of a
    cancelled run is cancelled. The worker is not stopped: it stays busy until the block returns,
    and then records nothing. Returns False, changing nothing, when the step is no longer running
    under that claim or has not overrun by more than ``grace``.
    """
    _wait_briefly_for_locks()
    step = (
        StepRun.objects.only(
            "id",
            "run_id",
            "node_id",
            "block_id",
            "block_version",
            "attempts",
            "walltime_s",
            "started_at",
            "worker",
        )
        .filter(pk=step_id, state=StepState.RUNNING, attempts=attempts)
        .first()
    )
    now = timezone.now()
    if step is None or step.started_at + timedelta(seconds=step.walltime_s) + grace >= now:
        return False
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = {"steps": step.pk, "source": StepState.RUNNING, "attempt": attempts}
    ran_s = int((now - step.started_at).total_seconds())
    overran = (
        f"step ran longer than the {step.walltime_s} s walltime of {step.block_id}@{step.block_version} "
        f"and had not stopped after {ran_s} s"
    )
    busy = (
        f"{overran}; the worker {step.worker or '(unknown)'} stays busy until the block returns, "
        "and what it returns then is discarded"
    )
    log = (RunEvent.Kind.LOG, step.node_id, {"level": "error", "message": busy})
    return end_taken_back(
        run,
        claim,
        step.node_id,
        now,
        reason=overran,
        error_type=WALLTIME_EXCEEDED,
        message=f"{overran}; it was given up. {WALLTIME_ADVICE}",
        before=(log,),
    )


# --- polled targets --------------------------------------------------------------------------------

POLL_FIELDS = (
    "id",
    "run_id",
    "node_id",
    "block_id",
    "block_version",
    "state",
    "attempts",
    "walltime_s",
    "target",
    "external_id",
    "events_offset",
    "heartbeat_at",
    "dispatched_at",
)


def steps_poll(*, unknown_grace: timedelta, max_attempts: int) -> int:
    """Poll every polled target once for all of its submitted and running steps' jobs, and act on
    what changed: new events are appended to the run's log; a job that started moves its step to
    running; DONE records the job's result manifest (``orchestration.step_finish``, as the agent
    does); DIED runs the step again (when the backend says a retry may help and attempts remain) or
    fails it with the backend's reason (walltime exceeded, out of memory); CANCELLED ends it; a job
    the backend has no record of for longer than ``unknown_grace`` (and a launch that never got a job
    id) is taken back as lost. Returns how many steps changed state."""
    changed = 0
    for target in sorted(_polled_targets()):
        # A result recorded here may launch the next step at once; if that one is already done (a
        # chain of short steps running in one job) a new pass records it without waiting a cycle.
        seen: set[int] = set()
        for _ in range(MAX_POLL_PASSES):
            finished, launched_ids = _poll_target(
                target, unknown_grace=unknown_grace, max_attempts=max_attempts, seen=seen
            )
            changed += finished
            if not finished or launched_ids <= seen:
                break
            seen |= launched_ids
    return changed


MAX_POLL_PASSES = 100


def _poll_target(
    target: str, *, unknown_grace: timedelta, max_attempts: int, seen: set[int]
) -> tuple[int, set[int]]:
    """One poll of ``target``'s launched steps; returns how many changed and the ids polled."""
    changed = 0
    now = timezone.now()
    steps = list(
        StepRun.objects.filter(target=target, state__in=LAUNCHED_STEP_STATES)
        .only(*POLL_FIELDS)
        .order_by("id")
    )
    if not steps:
        return 0, set()
    launched = [step for step in steps if step.external_id]
    for step in steps:
        if not step.external_id and step.dispatched_at and now - step.dispatched_at > unknown_grace:
            changed += _poll_lost(step, "its launch never got a job id", max_attempts=max_attempts)
    if not launched:
        return changed, set()
    if seen and not {step.pk for step in launched} - seen:
        return changed, {step.pk for step in launched}
    try:
        executor = orchestration._executor(target)
        statuses = executor.poll([step.external_id for step in launched])
    except BackendError:
        logger.warning("could not poll target %s", target, exc_info=True)
        return changed, set()
    for step in launched:
        status = statuses.get(step.external_id, JobStatus(JobState.UNKNOWN))
        try:
            changed += _poll_one(
                executor, step, status, now=now, unknown_grace=unknown_grace, max_attempts=max_attempts
            )
        except Exception:
            logger.exception(
                "could not reconcile step %s (job %s on %s)", step.pk, step.external_id, target
            )
    return changed, {step.pk for step in launched}


def _poll_one(
    executor, step: StepRun, status: JobStatus, *, now, unknown_grace: timedelta, max_attempts: int
) -> int:
    _read_events(executor, step)
    state = status.state
    if state in (JobState.PENDING, JobState.RUNNING):
        with transaction.atomic():
            if state == JobState.RUNNING and step.state == StepState.SUBMITTED:
                if step_transition(
                    step.pk,
                    source=StepState.SUBMITTED,
                    to=StepState.RUNNING,
                    attempt=step.attempts,
                    started_at=now,
                    heartbeat_at=now,
                ):
                    _mark_run_running(step.run_id, now)
                    events_append(
                        run_id=step.run_id,
                        events=[state_event(StepState.RUNNING, step.node_id, worker=step.target)],
                    )
                    return 1
            StepRun.objects.filter(pk=step.pk, attempts=step.attempts, state__in=LAUNCHED_STEP_STATES).update(
                heartbeat_at=now
            )
        return 0
    if state == JobState.DONE:
        result = _read_result(step)
        if result is None:
            return _poll_lost(step, "its job ended without a readable result", max_attempts=max_attempts)
        if step.state == StepState.SUBMITTED:
            with transaction.atomic():
                _mark_run_running(step.run_id, now)
        step_finish(step=step, result=result, source=LAUNCHED_STEP_STATES)
        return 1
    if state == JobState.DIED:
        return _poll_died(step, status, max_attempts=max_attempts)
    if state == JobState.CANCELLED:
        return _poll_ended(
            step, reason=status.reason or f"its job was cancelled on {step.target}", error_type="cancelled"
        )
    # UNKNOWN: a job the backend forgot (or not yet knows): lost once the grace has passed.
    heard = step.heartbeat_at or step.dispatched_at
    if heard is not None and now - heard > unknown_grace:
        return _poll_lost(
            step, f"{step.target} has no record of its job {step.external_id}", max_attempts=max_attempts
        )
    return 0


def _mark_run_running(run_id: int, now) -> None:
    if Run.objects.filter(pk=run_id, state=RunState.QUEUED).update(state=RunState.RUNNING, started_at=now):
        events_append(run_id=run_id, events=[state_event(RunState.RUNNING)])


def _read_events(executor, step: StepRun) -> None:
    """Append the job's new progress and log events to the run's log and remember how far it read."""
    try:
        events, offset = executor.logs(step.external_id, offset=step.events_offset)
    except BackendError:
        return
    if offset == step.events_offset:
        return
    rows: list[NewEvent] = []
    for event in events:
        kind = event.get("kind")
        if kind == "progress":
            rows.append(
                (
                    RunEvent.Kind.PROGRESS,
                    step.node_id,
                    {"fraction": event.get("fraction"), "message": event.get("message", "")},
                )
            )
        elif kind == "log":
            rows.append(
                (
                    RunEvent.Kind.LOG,
                    step.node_id,
                    {"level": event.get("level", "info"), "message": event.get("message", "")},
                )
            )
    with transaction.atomic():
        if StepRun.objects.filter(
            pk=step.pk,
            attempts=step.attempts,
            events_offset=step.events_offset,
            state__in=LAUNCHED_STEP_STATES,
        ).update(events_offset=offset):
            events_append(run_id=step.run_id, events=rows)
    step.events_offset = offset


def _read_result(step: StepRun) -> ResultManifest | None:
    path = manifest_files(step).result
    try:
        return ResultManifest.load(path)
    except (OSError, ValueError, KeyError, ManifestError):
        logger.warning("could not read the result manifest %s of step %s", path, step.pk, exc_info=True)
        return None


@transaction.atomic
def _poll_died(step: StepRun, status: JobStatus, *, max_attempts: int) -> int:
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = {"steps": step.pk, "source": LAUNCHED_STEP_STATES, "attempt": step.attempts}
    reason = status.reason or "its job died"
    lowered = reason.lower()
    now = timezone.now()
    # The job's standard error (the cluster's own words on why it ended) goes to the step's log.
    stderr = tuple(
        (RunEvent.Kind.LOG, step.node_id, {"level": "error", "message": f"[stderr] {line}"})
        for line in status.log
    )
    if "timeout" in lowered or "walltime" in lowered:
        message = (
            f"step ran longer than the {step.walltime_s} s walltime ({reason}); "
            f"it was stopped. {WALLTIME_ADVICE}"
        )
        return int(
            end_taken_back(
                run, claim, step.node_id, now, reason=reason, error_type=WALLTIME_EXCEEDED, message=message,
                before=stderr,
            )
        )
    if "memory" in lowered or "oom" in lowered:
        message = (
            f"step ran out of memory on {step.target} ({reason}); ask for a block version with more memory"
        )
        return int(
            end_taken_back(
                run, claim, step.node_id, now, reason=reason, error_type=OUT_OF_MEMORY, message=message,
                before=stderr,
            )
        )
    if stderr:
        events_append(run_id=run.pk, events=list(stderr))
    lost = f"job {step.external_id} on {step.target} died: {reason}"
    limit = max_attempts if status.retry else step.attempts
    return int(
        _requeue_or_fail(
            run,
            step,
            claim,
            now,
            lost=lost,
            max_attempts=limit,
            error_type="JobDied",
            final_message=f"{lost}; not run again",
        )
    )


@transaction.atomic
def _poll_lost(step: StepRun, why: str, *, max_attempts: int) -> int:
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = {
        "steps": step.pk,
        "source": LAUNCHED_STEP_STATES,
        "attempt": step.attempts,
        "where": {"external_id": step.external_id},
    }
    return int(
        _requeue_or_fail(
            run, step, claim, timezone.now(), lost=f"step lost: {why}", max_attempts=max_attempts
        )
    )


@transaction.atomic
def _poll_ended(step: StepRun, *, reason: str, error_type: str) -> int:
    """A job cancelled at its target. Cancelled from outside the portal (``scancel`` by the user or
    an administrator of the cluster): the run is cancelled too, as if its owner had cancelled it,
    and the step ends cancelled."""
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = {"steps": step.pk, "source": LAUNCHED_STEP_STATES, "attempt": step.attempts}
    if run.state not in (RunState.CANCELLED, *RUN_FINISHED) and StepRun.objects.filter(
        pk=step.pk, state__in=LAUNCHED_STEP_STATES, attempts=step.attempts
    ).exists():
        events_append(
            run_id=run.pk,
            events=[(RunEvent.Kind.LOG, step.node_id, {
                "level": "warning",
                "message": f"job {step.external_id} of {step.node_id} was cancelled on {step.target} "
                "from outside the portal; the run is cancelled",
            })],
        )
        orchestration.run_cancel(run=run)
        run = Run.objects.only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
        if not StepRun.objects.filter(pk=step.pk, state__in=LAUNCHED_STEP_STATES).exists():
            return 1  # a submitted step: run_cancel ended it
    return int(
        end_taken_back(
            run, claim, step.node_id, timezone.now(), reason=reason, error_type=error_type, message=reason
        )
    )


def reconcile(*, at_start: bool = False) -> dict[str, int]:
    """One pass of everything above with the settings' thresholds (the beat task, and each worker
    at start-up with ``at_start``). Returns counts by kind of repair."""
    return {
        "polled": steps_poll(
            unknown_grace=timedelta(seconds=settings.ILIAD_POLL_UNKNOWN_GRACE_S),
            max_attempts=settings.ILIAD_MAX_ATTEMPTS,
        ),
        "recovered": steps_recover_stalled(
            stalled_after=timedelta(seconds=settings.ILIAD_STALL_AFTER_S),
            max_attempts=settings.ILIAD_MAX_ATTEMPTS,
            walltime_grace=timedelta(seconds=settings.ILIAD_WALLTIME_GRACE_S),
        ),
    }
