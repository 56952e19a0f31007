"""The in-worker agent of self-reporting targets (Celery, RQ): claim a step, keep its heartbeat,
check for cancel and walltime, run its block (in this process, or in an isolated child process when
its target asks for it), record the result, and go on with a step that made ready.

``step_execute(step_id=..., worker=...)`` is what a target's job calls; it is safe to call twice for
the same step: only the call that claims the step runs it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.runs import orchestration
from apps.runs import store as artifact_store
from apps.runs.events import NewEvent, StepEventSink, events_append
from apps.runs.manifests import KnownArtifacts, step_manifest
from apps.runs.models import Run, RunState, StepRun, StepState
from apps.runs.orchestration import RUN_FIELDS_FOR_STEPS, converted_row, model_columns, step_finish
from apps.runs.transitions import state_event, step_transition
from blocks.context import WalltimeExceeded
from blocks.manifest import ResultManifest
from blocks.runner import run_step

logger = logging.getLogger(__name__)

CANCEL_CHECK_INTERVAL_S = 1.0
FINISH_ATTEMPTS = 5
WALLTIME_ADVICE = "Give it less work, e.g. a smaller area or a shorter period."
STEP_FIELDS = (
    "id",
    "run_id",
    "node_id",
    "block_id",
    "block_version",
    "params",
    "state",
    "attempts",
    "walltime_s",
    "target",
)
EVENT_FLUSH_S = 0.5
"""A running block's progress and log events are written at most this often (see StepEventSink)."""
TAKEOVER_BEATS = 3
"""A redelivered message takes over a running step whose heartbeat is older than this many beats
(plus one second): its worker died (Celery redelivers the task of a killed pool process at once)."""


class StepTakenBack(Exception):
    """The step was taken from this worker (lost, overdue) while its block ran: stop, write nothing."""


def _claim(step_id: int, worker: str) -> StepRun | None:
    """Queued or submitted → running, exactly once. None when another delivery got there first (or
    it was cancelled, or it belongs to a polled target's job)."""
    now = timezone.now()
    with transaction.atomic():
        orchestration.step_commit_relaxed()
        # A held step is not claimed: a stray message for it must not overrun its user's cap. A
        # step whose worker field is set is under someone's claim (a polled target's job).
        claimed = step_transition(
            step_id,
            source=(StepState.QUEUED, StepState.SUBMITTED),
            to=StepState.RUNNING,
            where={"dispatched_at__isnull": False, "worker": ""},
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            worker=worker[:200],
        )
        if not claimed:
            return None
        step = _claimed_step(step_id)
        events = []
        if step.run.state == RunState.QUEUED and Run.objects.filter(
            pk=step.run_id, state=RunState.QUEUED
        ).update(state=RunState.RUNNING, started_at=now):
            events.append(state_event(RunState.RUNNING))
        events.append(state_event(StepState.RUNNING, step.node_id, worker=worker))
        events_append(run_id=step.run_id, events=events)
    return step


def _claimed_step(step_id: int) -> StepRun:
    """A claimed step with what running it needs of its run (see ``RUN_FIELDS_FOR_STEPS``)."""
    step_columns = model_columns(StepRun, STEP_FIELDS)
    run_columns = model_columns(Run, RUN_FIELDS_FOR_STEPS)
    with connection.cursor() as cursor:  # hand-written: on the hot path of every step
        cursor.execute(
            f"SELECT {', '.join(f's.{column}' for column in step_columns)}, "  # noqa: S608
            f"{', '.join(f'r.{column}' for column in run_columns)} "
            f"FROM {StepRun._meta.db_table} s JOIN {Run._meta.db_table} r ON r.id = s.run_id WHERE s.id = %s",
            [step_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise StepRun.DoesNotExist(f"step {step_id} does not exist")
    step = StepRun.from_db(
        connection.alias, step_columns, converted_row(StepRun, step_columns, row[: len(step_columns)])
    )
    step.run = Run.from_db(
        connection.alias, run_columns, converted_row(Run, run_columns, row[len(step_columns) :])
    )
    return step


def _take_over_if_silent(step_id: int) -> bool:
    """A message for a step that is already running was delivered again: Celery does that at once
    when the process running it died. Watch the step's heartbeat: if it moves on (or the step ends),
    its worker is alive and this delivery does nothing; if it stays silent for ``TAKEOVER_BEATS``
    beats, the step is taken back (``reconciler.step_recover``: a new attempt, or a failure after
    ``ILIAD_MAX_ATTEMPTS``). Returns whether it was taken back."""
    from apps.runs.reconciler import step_recover

    row = (
        StepRun.objects.filter(pk=step_id, state=StepState.RUNNING)
        .values_list("heartbeat_at", "attempts", "worker", "target")
        .first()
    )
    if row is None or row[0] is None or row[2] == row[3]:  # a polled target's job: the reconciler's
        return False
    heartbeat, attempts, _, _ = row
    silent_after = TAKEOVER_BEATS * settings.ILIAD_HEARTBEAT_S + 1
    while True:
        wait = (heartbeat - timezone.now()).total_seconds() + silent_after
        if wait > 0:
            time.sleep(min(wait, settings.ILIAD_HEARTBEAT_S))
        current = StepRun.objects.filter(pk=step_id).values_list("state", "heartbeat_at", "attempts").first()
        if current is None or current != (StepState.RUNNING, heartbeat, attempts):
            return False  # a live worker's heartbeat, or the step ended or was taken back by another
        if (timezone.now() - heartbeat).total_seconds() >= silent_after:
            return step_recover(
                step_id=step_id, last_heartbeat=heartbeat, max_attempts=settings.ILIAD_MAX_ATTEMPTS
            )


class _ClaimedSink(StepEventSink):
    """A claimed step's event sink whose writes are fenced by the claim: a batch is written only
    while the step is still running under this worker's attempt (checked by an UPDATE of its
    heartbeat in the same transaction, which also holds off a concurrent take-back until commit).
    Once the step is found taken, ``lost`` is set and nothing more is written."""

    def __init__(self, *, step: StepRun, lost: threading.Event) -> None:
        super().__init__(run_id=step.run_id, node_id=step.node_id, interval_s=EVENT_FLUSH_S)
        self._step_id = step.pk
        self._attempt = step.attempts
        self._lost = lost

    def __call__(self, event) -> None:
        if not self._lost.is_set():
            super().__call__(event)

    def flush(self) -> None:
        with self._write_lock:
            pending = self._take()
            if not pending or self._lost.is_set():
                return
            try:
                with transaction.atomic():
                    mine = StepRun.objects.filter(
                        pk=self._step_id, state=StepState.RUNNING, attempts=self._attempt
                    ).update(heartbeat_at=timezone.now())
                    if not mine:
                        self._lost.set()
                        return
                    events_append(run_id=self.run_id, events=pending)
            except Exception:
                with self._lock:
                    self._buffer[:0] = pending
                raise


def _cancel_checker(step: StepRun, lost: threading.Event):
    """The ``cancel_requested`` callback of a claimed step's block: True once its run was cancelled
    (asked of the database at most every ``CANCEL_CHECK_INTERVAL_S``); raises WalltimeExceeded once
    the step ran longer than its walltime, counted from now, so that it fails instead; raises
    StepTakenBack once the heartbeat found the step no longer this worker's."""
    # Starts as "just checked": the claim has seen the run alive a moment ago.
    last_check = [time.monotonic(), False]
    deadline = last_check[0] + step.walltime_s

    def cancel_requested() -> bool:
        if lost.is_set():
            raise StepTakenBack(f"step {step.pk} was taken from this worker")
        now = time.monotonic()
        if not last_check[1] and now - last_check[0] >= CANCEL_CHECK_INTERVAL_S:
            last_check[0] = now
            last_check[1] = Run.objects.filter(pk=step.run_id, state=RunState.CANCELLED).exists()
        if not last_check[1] and now > deadline:
            raise WalltimeExceeded(
                f"step ran longer than the {step.walltime_s} s walltime of "
                f"{step.block_id}@{step.block_version}; it was stopped. {WALLTIME_ADVICE}"
            )
        return last_check[1]

    return cancel_requested


@contextmanager
def _heartbeat(step: StepRun, lost: threading.Event) -> Iterator[None]:
    """Refresh the claimed step's ``heartbeat_at`` every ``ILIAD_HEARTBEAT_S`` while the body runs;
    set ``lost`` when the step turns out to be no longer this worker's (taken back, cancelled).

    The process's heartbeat thread (``_Beater``) does it, so that a block computing for minutes
    without reporting progress still shows that its worker is alive. One long-lived thread per
    process beats for every step the process runs: starting and joining a thread per step cost a
    chain of no-op steps more than its database work.
    """
    _beater.add(step.pk, step.attempts, lost)
    try:
        yield
    finally:
        _beater.remove(step.pk)


class _Beater:
    """One daemon thread per process that refreshes the heartbeats of the claimed steps registered
    with it, every ``ILIAD_HEARTBEAT_S`` (a step registered while no other is restarts the count:
    it was just claimed; one registered next to others gets its first beat at their next round).
    A step found no longer running under its claim has its ``lost`` event set and is dropped.
    Started on first use, again in a forked child."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[int, tuple[int, threading.Event]] = {}
        self._pid = 0
        self._wake = threading.Event()

    def add(self, step_id: int, attempt: int, lost: threading.Event) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                self._steps = {}
                self._wake = threading.Event()
                threading.Thread(target=self._run, name="step-heartbeat", daemon=True).start()
            if not self._steps:  # the only step: its first beat one interval from now (just claimed)
                self._wake.set()
            self._steps[step_id] = (attempt, lost)

    def remove(self, step_id: int) -> None:
        with self._lock:
            self._steps.pop(step_id, None)

    def _run(self) -> None:
        while True:
            if self._wake.wait(settings.ILIAD_HEARTBEAT_S):
                self._wake.clear()
                continue
            with self._lock:
                steps = dict(self._steps)
            if not steps:
                continue
            try:
                self._beat(steps)
            except Exception:  # a missed beat is no harm; many in a row are what a lost worker is
                logger.warning("could not refresh the heartbeats of steps %s", sorted(steps), exc_info=True)
            finally:
                # One connection a round (every few seconds) rather than one held for the process's
                # life: an idle worker holds none, and a test database can be dropped.
                connection.close()

    def _beat(self, steps: dict[int, tuple[int, threading.Event]]) -> None:
        now = timezone.now()
        for step_id, (attempt, lost) in steps.items():
            mine = StepRun.objects.filter(pk=step_id, state=StepState.RUNNING, attempts=attempt).update(
                heartbeat_at=now
            )
            if mine:
                continue
            with self._lock:  # taken back as lost, or ended: nothing of ours left to keep alive
                current = self._steps.get(step_id)
                if current is not None and current[0] == attempt:
                    del self._steps[step_id]
                    lost.set()


_beater = _Beater()


def step_execute(*, step_id: int, worker: str = "", local_steps: int | None = None) -> bool:
    """Claim a queued step, run its block and record the outcome; then go on with one step it made
    ready, up to ``local_steps`` steps in all (default ``ILIAD_LOCAL_STEPS``).

    Going on locally saves a round trip through the broker per step of a chain; every other newly
    ready step is dispatched as usual. When a step made nothing ready, it goes on with one of its
    run's held steps instead, if any (see ``ILIAD_FAIR_STEPS_PER_USER``). The kept step is claimed
    for this worker in the transaction that finished the previous one (see
    ``orchestration.queue_steps``); if the run was cancelled meanwhile, it ends as cancelled without
    running. With fair sharing on, it does not go on while another user's step waits at the broker
    (asked at most every ``FAIR_CHECK_INTERVAL_S``): the ready step then goes through the broker,
    behind theirs.

    A delivery that finds the step running watches its heartbeat and takes it back when it stays
    silent (``_take_over_if_silent``): the process that ran it died.

    Returns False (and does nothing else) when the step was not queued: a duplicate delivery, a
    retry of a step that already ran, or a step of a cancelled run.
    """
    budget = settings.ILIAD_LOCAL_STEPS if local_steps is None else local_steps
    known: KnownArtifacts = {}
    ran = False
    step = _claim(step_id, worker)
    if step is None:
        _take_over_if_silent(step_id)
        return False
    fair_checked_at = time.monotonic()  # the broker just gave this worker to this user
    while step is not None:
        ran, budget = True, budget - 1
        if step.run.state == RunState.CANCELLED:
            result = _failed_result(step, "cancelled", "the run was cancelled before this step started")
            pending = []
        else:
            try:
                result, pending = _run_claimed(step, known)
            except StepTakenBack:
                logger.warning("step %s was taken from worker %s; its result is discarded", step.pk, worker)
                return ran
        go_on = budget > 0
        if (
            go_on
            and settings.ILIAD_FAIR_STEPS_PER_USER
            and time.monotonic() - fair_checked_at >= orchestration.FAIR_CHECK_INTERVAL_S
        ):
            fair_checked_at = time.monotonic()
            go_on = not orchestration.others_waiting(step.run.owner_id)
        next_id = _finish_with_retries(step, result, pending, keep_for=worker if go_on else None)
        known = {(step.node_id, record.port): (record.uri, record.type) for record in result.artifacts}
        step = _claimed_step(next_id) if next_id is not None else None
    return ran


def _run_claimed(step: StepRun, known: KnownArtifacts) -> tuple[ResultManifest, list[NewEvent]]:
    """Run a claimed step's block; returns its result and the events it emitted but not yet wrote.
    Raises StepTakenBack when the step was taken from this worker meanwhile (its events after that
    are dropped)."""
    lost = threading.Event()
    sink = emit = _ClaimedSink(step=step, lost=lost)
    try:
        manifest = step_manifest(step, known)
        cancel_requested = _cancel_checker(step, lost)

        def execute(store_root):  # inside artifact_store.around_step: inputs fetched, outputs shared
            if orchestration.target_isolates(step.target or step.run.target):
                from apps.compute.isolation import run_isolated  # written with the isolation work

                return run_isolated(
                    manifest, emit=emit, cancel_requested=cancel_requested, walltime_s=step.walltime_s,
                    store_root=store_root,
                )
            return run_step(
                manifest,
                emit=emit,
                cancel_requested=cancel_requested,
                data_dir=settings.ILIAD_DATA_DIR,
                artifact_root=settings.ILIAD_ARTIFACT_ROOT,
                store_root=store_root,
            )

        with _heartbeat(step, lost):
            result = artifact_store.around_step(manifest, execute)
        if lost.is_set():
            raise StepTakenBack(f"step {step.pk} was taken from this worker")
    except StepTakenBack:
        sink.drain()
        raise
    except Exception:  # the portal's side of running failed; the step must still end
        # Its message tells of the portal's insides (paths, queries), not of the user's pipeline: users
        # get a pointer to the step, administrators the traceback (log, and the step in the admin).
        logger.exception("step %s could not be run", step.pk)
        message = f"internal error; the administrators have the details (step {step.pk})"
        result = _failed_result(step, "InternalError", message)
        result.error["traceback"] = traceback.format_exc()
    return result, sink.drain()


def _failed_result(step: StepRun, error_type: str, message: str) -> ResultManifest:
    """The result of a step whose block did not run to its end (``error_type`` "cancelled" ends it
    as cancelled, any other type as failed)."""
    return ResultManifest(
        run_id=str(step.run_id),
        step_id=step.node_id,
        block_id=step.block_id,
        block_version=step.block_version,
        ok=False,
        error={"type": error_type, "message": message, "traceback": ""},
    )


def _finish_with_retries(
    step: StepRun, result: ResultManifest, pending: list[NewEvent], *, keep_for: str | None
) -> int | None:
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            return step_finish(step=step, result=result, pending=pending, keep_for=keep_for)
        except OperationalError:
            # The block's outputs are on disk: retry recording them instead of running it again.
            if attempt == FINISH_ATTEMPTS:
                raise
            logger.warning("recording step %s failed (attempt %s); retrying", step.pk, attempt, exc_info=True)
            time.sleep(0.2 * 2**attempt)
    return None
