"""Writes that walk a run's graph: submit a run, queue what became ready and launch it on its
compute target, record a step's result, finish the run, cancel it, run it again.

Every state change goes through ``apps.runs.transitions.step_transition`` (a conditional UPDATE) and
acts only if it changed a row, so a message delivered twice runs its block once and a step is never
lost. Step completions of one run are serialised on the run row so that a step with two upstream
branches is queued exactly once, by whichever branch finishes last. A claimed step's ``attempts``
identifies the claim: only that claim may finish the step or refresh its heartbeat.

Steps reach their target through ``apps.compute.registry`` (the executor of the target's kind),
after the transaction that queued them commits. Without a ``ComputeTarget`` row for it, the default
target is a Celery queue called ``celery`` (a fresh installation).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from apps.accounts.limits import check_run_allowed
from apps.catalog.selectors import catalog_specs
from apps.compute.base import BackendError, Launch, Resources
from apps.compute.registry import executor_for
from apps.pipelines.models import Pipeline
from apps.pipelines.selectors import pipeline_version_get
from apps.pipelines.services import PipelineInvalid, pipeline_document_issues, pipeline_update
from apps.runs.events import NewEvent, claiming_append_sql, claiming_appended, events_append
from apps.runs.manifests import chain_template_write, run_graph, step_manifest_write
from apps.runs.models import RUN_FINISHED, Artifact, Run, RunEvent, RunState, StepRun, StepState
from apps.runs.signals import run_finished
from apps.runs.step_cache import CachedResult, record_reused, results_on_disk, reuse_cached
from apps.runs.transitions import (
    ACTIVE_STEP_STATES,
    LAUNCHED_STEP_STATES,
    TRANSITIONS,
    state_event,
    step_transition,
    transition_sql,
)
from blocks.manifest import ResultManifest, uri_from_path
from engine import PipelineGraph, parse_document

logger = logging.getLogger(__name__)

TARGETS = ("celery",)
"""Targets that exist without a ``ComputeTarget`` row: the Celery queue of a fresh installation."""

FAIR_CHECK_INTERVAL_S = 0.5
"""How often a worker going on with a user's steps asks whether other users' steps wait for one."""
EXECUTE_STEP_TASK = "runs.execute_step"
RUN_FIELDS_FOR_STEPS = ("id", "owner", "state", "target", "cache", "created_at")
"""What step execution needs of its run: never the snapshot, which is read once per process."""
DISPATCHED_STATES = (StepState.QUEUED, *LAUNCHED_STEP_STATES)
"""States of a dispatched step (``dispatched_at`` set) that count against its user's fair share."""


class RunRejected(Exception):
    """A run cannot be created or changed as asked; the message says why."""


def _relax_commit_sql() -> str:
    """``SET LOCAL synchronous_commit = off; `` for a transaction that claims or finishes steps on
    PostgreSQL, unless ``ILIAD_SYNCHRONOUS_STEP_COMMIT`` (see the setting for what that risks);
    else ""."""
    if connection.vendor == "postgresql" and not settings.ILIAD_SYNCHRONOUS_STEP_COMMIT:
        return "SET LOCAL synchronous_commit = off; "
    return ""


def step_commit_relaxed() -> None:
    """In a transaction that claims or finishes steps: on PostgreSQL, commit it without waiting for
    the WAL flush, unless ``ILIAD_SYNCHRONOUS_STEP_COMMIT``."""
    sql = _relax_commit_sql()
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def run_locked(run_id: int, *, relax_commit: bool = False) -> Run:
    """The run's row with ``RUN_FIELDS_FOR_STEPS``, locked until the transaction ends (``SELECT … FOR
    UPDATE`` where the database has it; SQLite's IMMEDIATE transactions let one writer in anyway).
    With ``relax_commit``, also ``step_commit_relaxed`` in the same round trip. Hand-written: it is
    on the hot path of every step. Raises Run.DoesNotExist."""
    columns = model_columns(Run, RUN_FIELDS_FOR_STEPS)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    relax = _relax_commit_sql() if relax_commit else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"{relax}SELECT {', '.join(columns)} FROM {Run._meta.db_table} WHERE id = %s{lock}",  # noqa: S608
            [run_id],
        )
        if relax:  # the SET's result first (PostgreSQL's client-side binding runs both in one go)
            cursor.nextset()
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return Run.from_db(connection.alias, columns, converted_row(Run, columns, row))


def model_columns(model, names) -> list[str]:
    """The columns of these fields of ``model`` in the model's field order: the order
    ``Model.from_db`` takes values in."""
    wanted = {model._meta.get_field(name).column for name in names}
    return [field.column for field in model._meta.concrete_fields if field.column in wanted]


_converters: dict[tuple[Any, tuple[str, ...], str], list[tuple[int, list, Any]]] = {}


def converted_row(model, columns: list[str], row) -> list[Any]:
    """A raw row's values as the ORM would give them (e.g. SQLite's datetimes and booleans, JSON)."""
    key = (model, tuple(columns), connection.vendor)
    found = _converters.get(key)
    if found is None:
        fields = {field.column: field for field in model._meta.concrete_fields}
        found = []
        for index, column in enumerate(columns):
            col = fields[column].get_col(model._meta.db_table)
            functions = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if functions:
                found.append((index, functions, col))
        _converters[key] = found
    values = list(row)
    for index, functions, col in found:
        for function in functions:
            values[index] = function(values[index], col, connection)
    return values


def _artifacts_sql(run_id: int, step_id: int, records) -> tuple[str, list[Any]]:
    """The INSERT of a step's artifact rows (``blocks.manifest`` records), one statement."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    sql = (
        f"INSERT INTO {Artifact._meta.db_table} (run_id, step_id, port, uri, type, media_type, sha256, "  # noqa: S608
        f"size, created_at) VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s, %s)'] * len(records))}"
    )
    params = [
        value
        for record in records
        for value in (
            run_id, step_id, record.port, record.uri, record.type, record.media_type, record.sha256,
            record.size, now,
        )
    ]  # fmt: skip
    return sql, params


def _record_finished(step: StepRun, source: tuple[str, ...], state: str, now, result: ResultManifest) -> bool:
    """The fenced transition of a claimed step to its finished ``state`` and its artifact rows; False
    (and nothing written) when the step is no longer in ``source`` under its claim. On PostgreSQL,
    one round trip for both (an INSERT whose UPDATE changed nothing is rolled back with the
    transaction)."""
    records = list(result.artifacts)
    claim = {"source": source, "attempt": step.attempts}
    changes = {"finished_at": now, "error": result.error}
    postgresql = connection.vendor == "postgresql"
    update = transition_sql(step.pk, **claim, to=state, **changes) if postgresql and records else None
    if update is None:
        if not step_transition(step.pk, **claim, to=state, **changes):
            return False
        if records:
            with connection.cursor() as cursor:
                cursor.execute(*_artifacts_sql(step.run_id, step.pk, records))
        return True
    insert, params = _artifacts_sql(step.run_id, step.pk, records)
    with connection.cursor() as cursor:
        cursor.execute(f"{update[0]}; {insert}", [*update[1], *params])
        if cursor.rowcount:
            return True
    transaction.set_rollback(True)
    return False


# --- compute targets ------------------------------------------------------------------------------

_TARGET_TTL_S = 5.0
_targets: dict[str, tuple[float, Any]] = {}


def _target_row(name: str):
    """The ``ComputeTarget`` called ``name`` or None, remembered for a few seconds: dispatching a
    fan-out must not read the same row per step, and an administrator's change takes effect soon."""
    from apps.compute.selectors import target_get

    now = time.monotonic()
    cached = _targets.get(name)
    if cached is not None and now - cached[0] < _TARGET_TTL_S:
        return cached[1]
    row = target_get(name)
    _targets[name] = (now, row)
    return row


_own_scheduled: list[tuple[float, frozenset[str]]] = []


def own_scheduled_targets() -> frozenset[str]:
    """Names of the targets whose executor class says ``own_scheduler`` (a Slurm cluster shares
    itself between users): their steps are dispatched as they become ready, never held under
    ``ILIAD_FAIR_STEPS_PER_USER``, and do not count against it. Remembered for a few seconds."""
    now = time.monotonic()
    if _own_scheduled and now - _own_scheduled[0][0] < _TARGET_TTL_S:
        return _own_scheduled[0][1]
    from django.utils.module_loading import import_string

    from apps.compute.models import ComputeTarget
    from apps.compute.registry import kinds

    known = kinds()
    names = set()
    for name, kind in ComputeTarget.objects.values_list("name", "kind"):
        try:
            if kind in known and getattr(import_string(known[kind]), "own_scheduler", False):
                names.add(name)
        except ImportError:
            continue
    _own_scheduled[:] = [(now, frozenset(names))]
    return _own_scheduled[0][1]


def _forget_targets(**_kwargs) -> None:
    _targets.clear()
    _own_scheduled.clear()


post_save.connect(_forget_targets, sender="compute.ComputeTarget", dispatch_uid="runs-forget-target-saved")
post_delete.connect(_forget_targets, sender="compute.ComputeTarget", dispatch_uid="runs-forget-target-gone")


def _executor(name: str):
    """The executor of target ``name``, or None for a target without a row that dispatches like a
    fresh installation (a Celery queue of that name). Raises a permanent BackendError for an unknown
    or disabled target."""
    from apps.compute.selectors import target_config

    row = _target_row(name)
    if row is None:
        if name in TARGETS:
            return None
        raise BackendError(f"compute target {name!r} does not exist (any more)", permanent=True)
    if not row.enabled:
        raise BackendError(f"compute target {name!r} is disabled", permanent=True)
    return executor_for(row.kind, row.name, target_config(row))


def target_isolates(name: str) -> bool:
    """Whether steps of target ``name`` run their block in an isolated child process (the target's
    ``"isolate": true``, or ``ILIAD_ISOLATE_STEPS`` for every target)."""
    if getattr(settings, "ILIAD_ISOLATE_STEPS", False):
        return True
    row = _target_row(name) if name else None
    return bool(row is not None and (row.config or {}).get("isolate"))


def target_check(*, name: str, user, where: str = "target") -> None:
    """Raise RunRejected unless ``user`` may run steps on target ``name``."""
    from apps.compute.selectors import target_get, targets_usable_by

    row = target_get(name)
    if row is None:
        if name in TARGETS:
            return
        raise RunRejected(f"{where}: unknown compute target {name!r}")
    if not row.enabled:
        raise RunRejected(f"{where}: compute target {name!r} is disabled")
    if not targets_usable_by(user=user).filter(pk=row.pk).exists():
        raise RunRejected(f"{where}: you may not use compute target {name!r}")


# --- queueing and dispatching --------------------------------------------------------------------


def queue_steps(
    run: Run,
    steps: dict[str, int],
    *,
    keep_for: str | None = None,
    keep_target: str = "",
    claimed: int | None = None,
) -> tuple[list[NewEvent], int | None]:
    """Move pending steps (node id → step id) to queued and dispatch them after commit, each to its
    target. With ``keep_for`` (a worker's name), the first of them is instead claimed for that
    worker, in the caller's transaction, for it to run next, if it runs on ``keep_target`` (the
    target of the worker's step). Returns the events of these changes and the kept step's id.

    Claiming the kept step here instead of in a transaction of its own saves a commit (a WAL flush
    on PostgreSQL) per step of a chain. If the worker dies before running it, the step is running
    without heartbeats and the reconciler takes it back.

    ``claimed`` is the id of the step to keep when the caller has already claimed it so (in the
    statements that finished the previous step, see ``step_finish``).

    Callers hold the run's lock and have just read these steps as pending.
    """
    if not steps:
        return [], None
    now = timezone.now()
    named = _node_targets(run)
    targets = {step_id: named.get(node_id, run.target) for node_id, step_id in steps.items()}
    step_ids = list(steps.values())
    kept = None
    if keep_for is not None and targets[step_ids[0]] == (keep_target or run.target):
        kept = step_ids.pop(0)
    events: list[NewEvent] = []
    if kept is not None and kept != claimed:  # takes the ended step's slot: no fair-share count needed
        step_transition(
            kept,
            source=StepState.PENDING,
            to=StepState.RUNNING,
            queued_at=now,
            dispatched_at=now,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            worker=keep_for[:200],
        )
    if step_ids and settings.ILIAD_FAIR_STEPS_PER_USER:
        # Held (not dispatched) until the caller's release_held finds room under the user's cap;
        # except on targets that share themselves between users (a Slurm cluster's fair share).
        own = own_scheduled_targets()
        free = [step_id for step_id in step_ids if targets[step_id] in own] if own else []
        held_ids = [step_id for step_id in step_ids if step_id not in free] if free else step_ids
        step_transition(held_ids, source=StepState.PENDING, to=StepState.QUEUED, queued_at=now)
        if free:
            step_transition(
                free, source=StepState.PENDING, to=StepState.QUEUED, queued_at=now, dispatched_at=now
            )
            _dispatch_on_commit([(step_id, targets[step_id]) for step_id in free])
    elif step_ids:
        step_transition(
            step_ids, source=StepState.PENDING, to=StepState.QUEUED, queued_at=now, dispatched_at=now
        )
        if not named:
            target = run.target
            transaction.on_commit(lambda: dispatch_steps(step_ids, target=target))
        else:
            _dispatch_on_commit([(step_id, targets[step_id]) for step_id in step_ids])
    for node_id, step_id in steps.items():
        events.append(state_event(StepState.QUEUED, node_id))
        if step_id == kept:
            events.append(state_event(StepState.RUNNING, node_id, worker=keep_for))
    return events, kept


_node_target_cache: dict[tuple[int, object], dict[str, str]] = {}


def _node_targets(run: Run) -> dict[str, str]:
    """node id → target named in the run's document (nodes without one are left out: they run on
    the run's target); read once per process, like the graph."""
    key = (run.pk, run.created_at)
    found = _node_target_cache.get(key)
    if found is None:
        if len(_node_target_cache) >= 256:
            _node_target_cache.clear()
        snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)
        found = _node_target_cache[key] = {
            node["id"]: node["target"] for node in snapshot["document"]["nodes"] if node.get("target")
        }
    return found


_step_id_cache: dict[tuple[int, object], dict[str, int]] = {}


def _step_ids(run: Run) -> dict[str, int]:
    """node id → step id of the run's steps (they never change); read once per process."""
    key = (run.pk, run.created_at)
    found = _step_id_cache.get(key)
    if found is None:
        if len(_step_id_cache) >= 256:
            _step_id_cache.clear()
        found = _step_id_cache[key] = dict(StepRun.objects.filter(run_id=run.pk).values_list("node_id", "id"))
    return found


def _dispatch_on_commit(steps: list[tuple[int, str]]) -> None:
    """After commit, dispatch these (step id, target) pairs, one batch per target."""
    by_target: dict[str, list[int]] = {}
    for step_id, target in steps:
        by_target.setdefault(target, []).append(step_id)

    def dispatch() -> None:
        for target, step_ids in by_target.items():
            dispatch_steps(step_ids, target=target)

    transaction.on_commit(dispatch)


def release_held(owner_id: int) -> int:
    """Dispatch (after commit) the user's oldest held steps, as many as ``ILIAD_FAIR_STEPS_PER_USER``
    has room for next to the steps of theirs already dispatched or running. Returns how many.

    Called wherever a user's steps were queued or one of their steps ended without a successor
    taking over its slot. With no cap, steps are dispatched as they are queued (see ``queue_steps``).
    """
    cap = settings.ILIAD_FAIR_STEPS_PER_USER
    if not cap:
        return 0
    _lock_users([owner_id])
    room = (
        cap
        - StepRun.objects.filter(
            run__owner_id=owner_id, state__in=DISPATCHED_STATES, dispatched_at__isnull=False
        )
        .exclude(target__in=own_scheduled_targets())
        .count()
    )
    if room <= 0:
        return 0
    held = list(
        StepRun.objects.filter(run__owner_id=owner_id, state=StepState.QUEUED, dispatched_at__isnull=True)
        .order_by("queued_at", "id")
        .values_list("id", "target")[:room]
    )
    return _mark_dispatched(held)


def _lock_users(user_ids: list[int]) -> None:
    """Serialise the releases of these users' held steps until the transaction ends (PostgreSQL;
    SQLite's IMMEDIATE transactions let one writer in at a time anyway). Taken after any run lock."""
    if connection.features.has_select_for_update:
        list(
            get_user_model()
            .objects.select_for_update()
            .filter(pk__in=user_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )


def _mark_dispatched(steps: list[tuple[int, str]]) -> int:
    """Mark held steps (id, target) dispatched and dispatch them, in this order, after commit. (One
    that a concurrent release dispatched meanwhile gets a second message, which finds it claimed.)"""
    if not steps:
        return 0
    StepRun.objects.filter(
        id__in=[step_id for step_id, _ in steps], state=StepState.QUEUED, dispatched_at__isnull=True
    ).update(dispatched_at=timezone.now())
    _dispatch_on_commit(steps)
    return len(steps)


def others_waiting(owner_id: int) -> bool:
    """Whether another user's step waits at the broker for a worker. (A user's held steps need not
    be asked about: they are held because that user's cap is full of steps at the broker or running.)"""
    waiting = StepRun.objects.filter(
        state__in=(StepState.QUEUED, StepState.SUBMITTED), dispatched_at__isnull=False
    ).exclude(run__owner_id=owner_id)
    own = own_scheduled_targets()  # steps waiting at a cluster's own queue wait for no worker here
    return (waiting.exclude(target__in=own) if own else waiting).exists()


def steps_dispatch_held() -> int:
    """Dispatch held steps, each user's oldest first up to their cap (all of them with no cap), in
    turns across users (one step of each, then a second of each, …) so that the broker's queue
    interleaves them. The safety net for room that no release used, e.g. after a cancelled run's
    queued steps were dispatched. Returns how many steps were dispatched."""
    cap = settings.ILIAD_FAIR_STEPS_PER_USER
    with transaction.atomic():
        by_owner: dict[int, list[tuple[int, str]]] = {}
        for step_id, owner_id, target in (
            StepRun.objects.filter(state=StepState.QUEUED, dispatched_at__isnull=True)
            .order_by("queued_at", "id")
            .values_list("id", "run__owner_id", "target")
        ):
            by_owner.setdefault(owner_id, []).append((step_id, target))
        if cap:
            _lock_users(list(by_owner))
            in_flight = dict(
                StepRun.objects.filter(
                    run__owner_id__in=list(by_owner),
                    state__in=DISPATCHED_STATES,
                    dispatched_at__isnull=False,
                )
                .exclude(target__in=own_scheduled_targets())
                .values("run__owner_id")
                .annotate(steps=Count("id"))
                .values_list("run__owner_id", "steps")
            )
            by_owner = {
                owner_id: steps[: max(0, cap - in_flight.get(owner_id, 0))]
                for owner_id, steps in by_owner.items()
            }
        in_turns = [step for turn in zip_longest(*by_owner.values()) for step in turn if step is not None]
        return _mark_dispatched(in_turns)


def dispatch_steps(step_ids: list[int], *, target: str) -> None:
    """Hand queued steps to compute target ``target``; called after the commit that queued them.

    A self-reporting target (Celery, RQ) gets one message per step and the steps go from queued to
    submitted with their job ids, unless a worker claimed them first. A polled target's steps go to
    submitted first (their attempt starts: its manifest file is written), then the executor starts
    their jobs. A transient refusal leaves them queued and tries again after a back-off, up to
    ``ILIAD_MAX_LAUNCH_ATTEMPTS`` launches; a permanent refusal, or the last of those, fails them
    with the backend's message. A failed send to the broker itself (an outage of the portal's
    broker, not of a target) is logged; the requeue job retries it.
    """
    if not step_ids:
        return
    try:
        executor = _executor(target)
        target, executor = _route(step_ids, target, executor)
    except BackendError as error:
        launch_failed(step_ids, target=target, error=error)
        return
    step_ids = _within_capacity(step_ids, target)
    if not step_ids:
        return
    if executor is None:
        _send_celery(step_ids, queue=target)
        return
    try:
        if executor.reports_itself:
            launches = [Launch(step_id=step_id, attempt=0, manifest_uri="") for step_id in step_ids]
            external_ids = executor.submit(launches)
            _mark_submitted(dict(zip(step_ids, external_ids, strict=True)), source=StepState.QUEUED)
        else:
            _launch_polled(executor, step_ids, target=target)
    except BackendError as error:
        launch_failed(step_ids, target=target, error=error)
    except Exception:
        logger.exception(
            "could not dispatch steps %s to %s; they stay queued for re-dispatch", step_ids, target
        )


def _within_capacity(step_ids: list[int], target: str) -> list[int]:
    """The first of ``step_ids`` that fit under target ``target``'s ``max_concurrent_steps``
    (counting its steps dispatched, submitted or running); the others go back to held (queued, not
    dispatched), dispatched again when the user's steps end (release_held) or by the periodic
    ``steps_dispatch_held``. The target's row is locked while counting, so that two dispatchers do
    not both fill the same room."""
    row = _target_row(target)
    if row is None or not row.max_concurrent_steps:
        return step_ids
    from apps.compute.models import ComputeTarget

    with transaction.atomic():
        ComputeTarget.objects.select_for_update().filter(pk=row.pk).exists()
        busy = (
            StepRun.objects.filter(target=target)
            .filter(
                Q(state__in=LAUNCHED_STEP_STATES)
                | Q(state=StepState.QUEUED, dispatched_at__isnull=False)
            )
            .exclude(pk__in=step_ids)
            .count()
        )
        room = max(0, row.max_concurrent_steps - busy)
        if room < len(step_ids):
            StepRun.objects.filter(pk__in=step_ids[room:], state=StepState.QUEUED).update(dispatched_at=None)
    return step_ids[:room]


MAX_OVERFLOW_HOPS = 4


def _route(step_ids: list[int], target: str, executor) -> tuple[str, Any]:
    """Bursting: an executor with ``route(launches)`` (a Celery queue deeper than its threshold)
    may name its overflow target for this batch; that one is asked in turn, at most
    ``MAX_OVERFLOW_HOPS`` times. A missing or disabled overflow target keeps the batch where it is.
    The steps' ``target`` records where they went. Returns the target and its executor."""
    launches = [Launch(step_id=step_id, attempt=0, manifest_uri="") for step_id in step_ids]
    origin = target
    for _ in range(MAX_OVERFLOW_HOPS):
        route = getattr(executor, "route", None)
        routed = route(launches) if route is not None else target
        if routed == target:
            break
        try:
            overflow = _executor(routed)
        except BackendError:
            break
        if overflow is None:
            break
        target, executor = routed, overflow
    if target != origin:
        StepRun.objects.filter(pk__in=step_ids, state=StepState.QUEUED).update(target=target)
    return target, executor


def _send_celery(step_ids: list[int], *, queue: str) -> None:
    """Today's path: one ``runs.execute_step`` message per step on the Celery queue ``queue``, all
    through one producer (one broker connection for the batch)."""
    from celery import current_app

    sent: dict[int, str] = {}
    try:
        with current_app.producer_or_acquire() as producer:
            for step_id in step_ids:
                try:
                    sent[step_id] = current_app.send_task(
                        EXECUTE_STEP_TASK, args=[step_id], queue=queue, producer=producer
                    ).id
                except Exception:
                    logger.exception(
                        "could not dispatch step %s to %s; it stays queued for re-dispatch", step_id, queue
                    )
    except Exception:  # no producer (broker unreachable): they all stay queued
        logger.exception(
            "could not dispatch steps %s to %s; they stay queued for re-dispatch", step_ids, queue
        )
    if sent:
        _mark_submitted(sent, source=StepState.QUEUED)


def _mark_submitted(external_ids: Mapping[int, str], *, source: str, attempts: bool = False) -> int:
    """queued → submitted with each step's job id: one UPDATE for all of them. A step a worker
    claimed meanwhile is left as it is."""
    if not external_ids:
        return 0
    whens = [When(pk=step_id, then=Value(external_id)) for step_id, external_id in external_ids.items()]
    return step_transition(
        external_ids.keys(),
        source=source,
        to=StepState.SUBMITTED,
        external_id=Case(*whens, default=F("external_id")),
        launch_attempts=0,
        launch_after=None,
    )


def _launch_polled(executor, step_ids: list[int], *, target: str) -> None:
    """Start the attempts of queued steps on a polled target: each is claimed (queued → submitted,
    a new attempt) and its manifest file written, then the executor starts them all at once; their
    job ids are recorded under that attempt."""
    now = timezone.now()
    with transaction.atomic():
        step_transition(
            step_ids,
            source=StepState.QUEUED,
            to=StepState.SUBMITTED,
            where={"dispatched_at__isnull": False},
            attempts=F("attempts") + 1,
            dispatched_at=now,
            heartbeat_at=now,
            external_id="",
            worker=target[:200],
        )
    steps = list(
        StepRun.objects.select_related("run")
        .filter(pk__in=step_ids, state=StepState.SUBMITTED, external_id="", worker=target[:200])
        .order_by("id")
    )
    if not steps:
        return
    launches = []
    chain_max = int(getattr(executor, "chain_max_steps", 0) or 0)
    for step in steps:
        resources = _step_resources(step)
        files = step_manifest_write(step, resources=dataclasses.asdict(resources))
        options: dict[str, Any] = {"owner": step.run.owner_id}
        if chain_max and step.attempts == 1:
            # Asked for only if the executor packs this step with the ones after it.
            options["chain"] = functools.partial(_chain_after, step, target=target, limit=chain_max)
        launches.append(
            Launch(
                step_id=step.pk,
                attempt=step.attempts,
                manifest_uri=uri_from_path(files.manifest),
                resources=resources,
                options=options,
            )
        )
    try:
        external_ids = executor.submit(launches)
    except BackendError:
        # Nothing started: the attempts go back to the queue (launch_failed then counts the refusal).
        for step in steps:
            step_transition(
                step.pk,
                source=StepState.SUBMITTED,
                to=StepState.QUEUED,
                attempt=step.attempts,
                where={"external_id": ""},
                attempts=F("attempts") - 1,
            )
        raise
    submitted: dict[int, list[NewEvent]] = {}
    with transaction.atomic():
        for step, external_id in zip(steps, external_ids, strict=True):
            if StepRun.objects.filter(pk=step.pk, state=StepState.SUBMITTED, attempts=step.attempts).update(
                external_id=external_id, launch_attempts=0, launch_after=None
            ):
                # Shown to the user: a step may wait at a polled target (a cluster's queue) for long.
                submitted.setdefault(step.run_id, []).append(
                    state_event(StepState.SUBMITTED, step.node_id, reason=f"job {external_id} on {target}")
                )
        for run_id, events in submitted.items():
            events_append(run_id=run_id, events=events)
    _log_packing(executor, steps)


def _log_packing(executor, steps: list[StepRun]) -> None:
    """Write how a polled executor grouped a submission (``last_packing``: a Slurm job array, one
    job for a chain) to the events of the runs concerned, one line per job and run."""
    packing = getattr(executor, "last_packing", None) or ()
    by_step = {step.pk: step for step in steps}
    for job in packing:
        runs: dict[int, list[str]] = {}
        for step_id in job.get("steps", ()):
            if step_id in by_step:
                runs.setdefault(by_step[step_id].run_id, []).append(by_step[step_id].node_id)
        for run_id, nodes in runs.items():
            node = nodes[0] if len(nodes) == 1 else ""
            events_append(
                run_id=run_id,
                events=[(RunEvent.Kind.LOG, node, {"level": "info", "message": job["message"]})],
            )


def _chain_after(step: StepRun, *, target: str, limit: int) -> list[dict[str, Any]]:
    """The line of pending steps after ``step`` that a polled target may run in the same job (its
    ``chain_max_steps``): each the only downstream step of the one before, with that one as its only
    upstream, on the same target. Writes each one's manifest template (``chain_template_write``) and
    returns ``{"step_id", "node_id", "template", "dir", "inputs", "resources"}`` each, in order; the
    executor decides how many it packs. Their own launch later finds them running in that job."""
    run = step.run
    graph = run_graph(run)
    named = _node_targets(run)
    line: list[str] = []
    current = step.node_id
    while len(line) < limit:
        downstream = graph.downstream(current)
        if len(downstream) != 1:
            break
        (following,) = downstream
        if graph.upstream(following) != {current} or named.get(following, run.target) != target:
            break
        line.append(following)
        current = following
    if not line:
        return []
    rows = {
        row.node_id: row
        for row in StepRun.objects.filter(run_id=run.pk, node_id__in=line, state=StepState.PENDING)
    }
    snapshot_blocks = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)["blocks"]
    chain = []
    for node_id in line:
        row = rows.get(node_id)
        if row is None:
            break
        row.run = run
        hints = snapshot_blocks[f"{row.block_id}@{row.block_version}"].get("resources") or {}
        resources = Resources(
            cpus=int(hints.get("cpus", 1)),
            memory_mb=int(hints.get("memory_mb", 1024)),
            walltime_s=row.walltime_s,
            gpus=int(hints.get("gpus", 0)),
        )
        template = chain_template_write(row, resources=dataclasses.asdict(resources))
        chain.append({
            "step_id": row.pk,
            "node_id": node_id,
            "template": str(template),
            "dir": str(template.parent),
            "inputs": {edge.target_port: edge.source_port for edge in graph.incoming(node_id)},
            "resources": dataclasses.asdict(resources),
        })
    return chain


def _step_resources(step: StepRun) -> Resources:
    """The resources an attempt may use: its block's resource hints from the run's snapshot."""
    snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=step.run_id)
    hints = snapshot["blocks"][f"{step.block_id}@{step.block_version}"].get("resources") or {}
    return Resources(
        cpus=int(hints.get("cpus", 1)),
        memory_mb=int(hints.get("memory_mb", 1024)),
        walltime_s=step.walltime_s,
        gpus=int(hints.get("gpus", 0)),
    )


def launch_failed(step_ids: list[int], *, target: str, error: BackendError) -> None:
    """A target refused to launch queued steps. Permanent, or the ``ILIAD_MAX_LAUNCH_ATTEMPTS``-th
    refusal: the step fails with the backend's message (its downstream steps are skipped, its run
    fails). Else it stays queued, not tried again before a back-off of 5 s doubling per refusal
    (at most 5 min)."""
    cap = settings.ILIAD_MAX_LAUNCH_ATTEMPTS
    logger.warning(
        "target %s refused steps %s (%s): %s",
        target,
        step_ids,
        "permanent" if error.permanent else "transient",
        error,
    )
    for step_id, launches, run_id in StepRun.objects.filter(
        pk__in=step_ids, state=StepState.QUEUED
    ).values_list("id", "launch_attempts", "run_id"):
        if error.permanent or launches + 1 >= cap:
            tried = "" if error.permanent else f" ({launches + 1} launches refused)"
            _fail_queued(
                step_id, run_id, message=f"compute target {target!r} refused the step{tried}: {error}"
            )
        else:
            backoff = min(5 * 2**launches, 300)
            StepRun.objects.filter(pk=step_id, state=StepState.QUEUED, launch_attempts=launches).update(
                launch_attempts=launches + 1, launch_after=timezone.now() + timedelta(seconds=backoff)
            )


LAUNCH_FAILED = "LaunchFailed"
"""Error type of a step its compute target refused to start."""


@transaction.atomic
def _fail_queued(step_id: int, run_id: int, *, message: str) -> bool:
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=run_id)
    node_id = StepRun.objects.values_list("node_id", flat=True).get(pk=step_id)
    claim = {"steps": step_id, "source": StepState.QUEUED}
    return end_taken_back(
        run, claim, node_id, timezone.now(), reason=message, error_type=LAUNCH_FAILED, message=message
    )


def cancel_launched(steps: Iterable[tuple[str, str]]) -> None:
    """Ask the targets of these (target, external id) jobs to stop them; after commit."""
    for target, external_id in steps:
        try:
            executor = _executor(target)
            if executor is not None:
                executor.cancel(external_id)
        except Exception:
            logger.warning("could not cancel job %s on %s", external_id, target, exc_info=True)


# --- submitting runs --------------------------------------------------------------------------------


@transaction.atomic
def run_submit(
    *,
    pipeline: Pipeline,
    user,
    version: int | None = None,
    target: str | None = None,
    cache: bool = True,
    reuse: Mapping[str, int] | None = None,
    rerun: Mapping[str, Any] | None = None,
) -> Run:
    """Freeze a pipeline version into a run and dispatch its first steps once committed.

    ``target`` is where steps run whose node names no target of its own (default: the default
    target, see ``apps.compute.selectors.default_target_name``). With ``cache`` (the default), a
    step that becomes ready is not executed when a succeeded step with the same cache key
    (``engine.cache``) of a run the user may see still has its files: it is recorded as succeeded
    with those results. ``reuse`` (node id → id of an earlier succeeded step of the same node) takes
    those results as they are, cache or not, whenever their files are still there; the nodes must
    include everything upstream of each (``run_rerun``, ``run_retry``). ``rerun`` (what the run
    repeats: ``{"run", "from", "execute"}``) is kept in the snapshot; its ``execute`` nodes are
    never taken from the cache.

    Raises RunRejected for an unknown version, or a target that does not exist, is disabled or the
    user may not use; PipelineInvalid when the document no longer validates against the catalog
    (e.g. a block version was removed), LimitExceeded when the user is at one of their limits (see
    ``apps.accounts.limits``). Of its first steps, those over the user's
    ``ILIAD_FAIR_STEPS_PER_USER`` stay queued without being dispatched until room frees up.
    """
    from apps.compute.selectors import default_target_name

    target = target or default_target_name()
    target_check(name=target, user=user)
    pipeline_version = pipeline_version_get(pipeline=pipeline, number=version)
    if pipeline_version is None:
        raise RunRejected(f"pipeline {pipeline.pk} has no version {version}")
    specs = catalog_specs()
    issues = pipeline_document_issues(document=pipeline_version.document, catalog=specs, user=user)
    if issues:
        raise PipelineInvalid(issues)
    node_targets = {
        node["id"]: node["target"] for node in pipeline_version.document["nodes"] if node.get("target")
    }
    document = parse_document(pipeline_version.document)
    blocks = {f"{node.block}@{node.version}": specs[node.block][node.version] for node in document.nodes}
    check_run_allowed(user=user, steps=len(document.nodes))
    run = Run.objects.create(
        owner=user,
        pipeline=pipeline,
        pipeline_version=pipeline_version.number,
        pipeline_name=pipeline.name,
        target=target,
        cache=cache,
        snapshot={
            "document": pipeline_version.document,
            "blocks": blocks,
            **({"rerun": dict(rerun)} if rerun else {}),
        },
    )
    steps = StepRun.objects.bulk_create(
        StepRun(
            run=run,
            node_id=node.id,
            block_id=node.block,
            block_version=node.version,
            params=node.params,
            target=node_targets.get(node.id, target),
            walltime_s=blocks[f"{node.block}@{node.version}"]["resources"]["walltime_s"],
        )
        for node in document.nodes
    )
    step_ids = {step.node_id: step.pk for step in steps}
    graph = PipelineGraph.from_document(document)
    states = {node_id: StepState.PENDING for node_id in graph.nodes}
    events = [state_event(RunState.QUEUED, pipeline_version=pipeline_version.number)]
    now = timezone.now()
    if reuse:
        on_disk = results_on_disk(reuse.values())
        taken: dict[str, tuple[int, CachedResult]] = {}
        for node_id in graph.topological_order():  # a result is taken only if its upstream ones are
            source_id = reuse.get(node_id)
            if source_id in on_disk and graph.upstream(node_id) <= taken.keys():
                taken[node_id] = (step_ids[node_id], on_disk[source_id])
        events += record_reused(run, taken, now)
        states.update((node_id, StepState.SUCCEEDED) for node_id in taken)
    ready, reused = reuse_cached(run, {node_id: step_ids[node_id] for node_id in graph.ready(states)}, now)
    events += reused
    queued = queue_steps(run, ready)[0]
    events += queued
    release_held(user.pk)
    if not queued:  # every step was taken from earlier runs
        events += run_finish_if_done(run, now)
    events_append(run_id=run.pk, events=events)
    return run


# --- recording results ---------------------------------------------------------------------------


@transaction.atomic
def step_finish(
    *,
    step: StepRun,
    result: ResultManifest,
    pending: Iterable[NewEvent] = (),
    keep_for: str | None = None,
    source: tuple[str, ...] = (StepState.RUNNING,),
) -> int | None:
    """Record a claimed step's outcome, queue what became ready, skip what can no longer run.

    ``pending`` are the block's last progress and log events, written in the same transaction.
    With ``keep_for`` (the finishing worker's name), one newly ready step is not dispatched but
    claimed for that worker: its id is returned for the caller to run next. Does nothing (returns
    None) unless the step is still in ``source`` (running, for the agent; submitted or running for a
    polled job) under the same claim: a worker whose step was taken back as lost, or failed for
    overrunning its walltime, does not record anything.
    """
    if result.ok:
        state = StepState.SUCCEEDED
    elif (result.error or {}).get("type") == "cancelled":
        state = StepState.CANCELLED
    else:
        state = StepState.FAILED
    now = timezone.now()
    extra = {"duration_s": result.duration_s}
    if result.error:
        extra["error"] = {"type": result.error.get("type"), "message": result.error.get("message")}
    events = [*pending, state_event(state, step.node_id, **extra)]
    claimed = None
    if connection.vendor == "postgresql" and "run" in step._state.fields_cache:
        finished = _finish_batched(step, source, state, now, result, keep_for, events)
        if finished is None:
            return None
        run, claimed = finished
    else:
        run = run_locked(step.run_id, relax_commit=True)
        if not _record_finished(step, source, state, now, result):
            return None
    return step_ended(
        run, step.node_id, state, events, now, keep_for=keep_for, keep_target=step.target, claimed=claimed
    )


class _Continuation(NamedTuple):
    """The step ``step_finish`` claimed for the finishing worker in the statements that finished its
    step: the one step that step made ready (``held`` False) or, when it made none ready, the run's
    oldest held step (``held`` True); ``step_id`` (and ``node_id``) None when there was none to claim."""

    held: bool
    step_id: int | None
    node_id: str = ""
    written: tuple[NewEvent, ...] = ()
    """The events already written with the claim: the first of those ``step_ended`` writes."""


def _continuation_sql(
    step: StepRun, state: str, now, keep_for: str | None
) -> tuple[bool, str, list[Any]] | None:
    """What ``step_ended`` would claim for ``keep_for`` after ``step`` ended in ``state``, as an
    UPDATE … RETURNING (id, node_id) to send along with the statements that finish the step, when
    that can be told without a query: a succeeded step whose downstream steps each wait for it
    alone (its first one is claimed), or that has none (the run's oldest held step, under
    ``ILIAD_FAIR_STEPS_PER_USER``). A cancelled run claims nothing. None otherwise (``step_ended``
    finds out). Returns (held, sql, params)."""
    run = step.run
    if keep_for is None or state != StepState.SUCCEEDED or run.cache:
        return None
    graph = run_graph(run)
    candidates = graph.downstream(step.node_id)
    table = StepRun._meta.db_table
    stamp = connection.ops.adapt_datetimefield_value(now)
    alive = f"EXISTS (SELECT 1 FROM {Run._meta.db_table} WHERE id = %s AND state <> %s)"  # noqa: S608
    if candidates:
        if not all(graph.upstream(node_id) == {step.node_id} for node_id in candidates):
            return None
        first = next(node_id for node_id in graph.nodes if node_id in candidates)
        if _node_targets(run).get(first, run.target) != (step.target or run.target):
            return None
        assert StepState.RUNNING in TRANSITIONS[StepState.PENDING]
        sql = (
            f"UPDATE {table} SET state = %s, queued_at = %s, dispatched_at = %s, started_at = %s, "  # noqa: S608
            "heartbeat_at = %s, attempts = attempts + 1, worker = %s "
            f"WHERE id = %s AND state = %s AND {alive} RETURNING id, node_id"
        )
        params = [StepState.RUNNING, stamp, stamp, stamp, stamp, keep_for[:200], _step_ids(run)[first],
                  StepState.PENDING, run.pk, RunState.CANCELLED]  # fmt: skip
        return False, sql, params
    if not settings.ILIAD_FAIR_STEPS_PER_USER:
        return None
    assert StepState.RUNNING in TRANSITIONS[StepState.QUEUED]
    sql = (
        f"UPDATE {table} SET state = %s, dispatched_at = %s, started_at = %s, heartbeat_at = %s, "  # noqa: S608
        "attempts = attempts + 1, worker = %s WHERE id = ("
        f"SELECT id FROM {table} WHERE run_id = %s AND state = %s AND dispatched_at IS NULL "
        "AND target = %s ORDER BY queued_at, id LIMIT 1"
        ") AND state = %s AND dispatched_at IS NULL RETURNING id, node_id"
    )
    params = [StepState.RUNNING, stamp, stamp, stamp, keep_for[:200], run.pk, StepState.QUEUED,
              step.target or run.target, StepState.QUEUED]  # fmt: skip
    return True, sql, params


def _finish_batched(
    step: StepRun,
    source: tuple[str, ...],
    state: str,
    now,
    result: ResultManifest,
    keep_for: str | None,
    events: list[NewEvent],
) -> tuple[Run, _Continuation | None] | None:
    """PostgreSQL: lock the run, record the step's outcome and artifacts and claim what the worker
    goes on with (``_continuation_sql``) writing ``events`` and those of the claim, all in one round
    trip. None (nothing written) when the step is no longer in ``source`` under its claim."""
    columns = model_columns(Run, RUN_FIELDS_FOR_STEPS)
    relax = _relax_commit_sql()
    statements = [
        (f"SELECT {', '.join(columns)} FROM {Run._meta.db_table} WHERE id = %s FOR UPDATE", [step.run_id])  # noqa: S608
    ]
    update = transition_sql(
        step.pk, source=source, to=state, attempt=step.attempts, finished_at=now, error=result.error
    )
    assert update is not None
    statements.append(update)
    records = list(result.artifacts)
    if records:
        statements.append(_artifacts_sql(step.run_id, step.pk, records))
    continuation = _continuation_sql(step, state, now, keep_for)
    claimed_events: list[tuple[str, dict[str, Any]]] = []
    if continuation is not None:
        held = continuation[0]
        running = {"state": StepState.RUNNING, "worker": keep_for}
        claimed_events = [(RunEvent.Kind.STATE, running)]
        if not held:
            claimed_events.insert(0, (RunEvent.Kind.STATE, {"state": StepState.QUEUED}))
        claiming = claiming_append_sql(
            run_id=step.run_id, events=events, claim=continuation[1:], claimed_events=claimed_events, now=now
        )
        statements.append(claiming)
    with connection.cursor() as cursor:
        sql = relax + "; ".join(sql for sql, _ in statements)
        cursor.execute(sql, [value for _, params in statements for value in params])
        if relax:
            cursor.nextset()
        row = cursor.fetchone()
        cursor.nextset()
        changed = cursor.rowcount
        if records:
            cursor.nextset()
        kept = None
        if continuation is not None:
            cursor.nextset()
            kept = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {step.run_id} does not exist")
    if not changed:
        transaction.set_rollback(True)
        return None
    claimed = None
    if continuation is not None:
        kept_id, kept_node, last_seq = kept
        written = claiming_appended(
            run_id=step.run_id, events=events, claimed_events=claimed_events, claimed_node=kept_node,
            last_seq=last_seq, now=now,
        )  # fmt: skip
        claimed = _Continuation(continuation[0], kept_id, kept_node or "", tuple(written))
    return Run.from_db(connection.alias, columns, converted_row(Run, columns, row)), claimed


def step_ended(
    run: Run,
    ended_node: str,
    state: str,
    events: list[NewEvent],
    now: datetime,
    *,
    keep_for: str | None = None,
    keep_target: str = "",
    claimed: _Continuation | None = None,
) -> int | None:
    """After the step of ``ended_node`` went to the finished ``state``: queue what that made ready,
    skip what it made impossible, close the run when done, and write ``events`` followed by those
    of these changes. Unless a kept step takes over the ended step's place under its user's
    ``ILIAD_FAIR_STEPS_PER_USER``, that place goes to the user's oldest held step. Returns the kept
    step's id (see ``queue_steps``). ``claimed``: the continuation ``step_finish`` already tried to
    claim for ``keep_for`` (see ``_Continuation``).

    Callers hold the run's lock.
    """
    graph = run_graph(run)
    claimed_id = claimed.step_id if claimed is not None else None
    queued: list[NewEvent] = []
    kept = None
    held = False
    if state == StepState.SUCCEEDED and run.state != RunState.CANCELLED:
        candidates = graph.downstream(ended_node)
        if all(graph.upstream(node_id) == {ended_node} for node_id in candidates):
            # Each waits for this step alone (a chain, a fan-out from it): ready now, without a query.
            # They are pending: under the run's lock, in a run not cancelled, nothing else moves them.
            step_ids = _step_ids(run)
            ready = {node_id: step_ids[node_id] for node_id in graph.nodes if node_id in candidates}
        else:
            involved = set(candidates).union(*(graph.upstream(node_id) for node_id in candidates))
            rows = StepRun.objects.filter(run=run, node_id__in=involved).values_list("node_id", "state", "id")
            states = {node_id: step_state for node_id, step_state, _ in rows}
            step_ids = {node_id: step_id for node_id, _, step_id in rows}
            ready = {node_id: step_ids[node_id] for node_id in graph.ready(states) if node_id in candidates}
        ready, reused = reuse_cached(run, ready, now)
        events += reused
        queued, kept = queue_steps(run, ready, keep_for=keep_for, keep_target=keep_target, claimed=claimed_id)
        held = len(ready) > (kept is not None)
        events += queued
    elif state == StepState.FAILED:
        skipped = list(
            StepRun.objects.filter(
                run=run, node_id__in=graph.descendants(ended_node), state=StepState.PENDING
            ).values_list("node_id", flat=True)
        )
        StepRun.objects.filter(run=run, node_id__in=skipped, state=StepState.PENDING).update(
            state=StepState.SKIPPED, finished_at=now
        )
        events += [
            state_event(StepState.SKIPPED, node_id, reason=f"{ended_node} failed") for node_id in skipped
        ]
    if kept is None and keep_for is not None and settings.ILIAD_FAIR_STEPS_PER_USER:
        if claimed is not None and claimed.held:  # tried already: its outcome is the answer
            kept, taken = claimed.step_id, []
            if claimed.step_id is not None:
                taken = [state_event(StepState.RUNNING, claimed.node_id, worker=keep_for)]
        else:
            kept, taken = _keep_held(run, keep_for, keep_target or run.target, now)
        events += taken
    if kept is None or held:
        release_held(run.owner_id)
    if not queued and kept is None:  # else the run goes on: no need to ask whether it is done
        events += run_finish_if_done(run, now)
    if claimed is not None and claimed.written:
        # Written with the claim (see ``_finish_batched``): they must be what comes first here.
        if tuple(events[: len(claimed.written)]) != claimed.written:
            raise RuntimeError(
                f"run {run.pk}: the events written with the claim of {claimed.node_id or 'no step'} "
                f"are not those of step_ended: {claimed.written!r} vs {events!r}"
            )
        events = events[len(claimed.written) :]
    events_append(run_id=run.pk, events=events)
    return kept


def _keep_held(run: Run, worker: str, target: str, now: datetime) -> tuple[int | None, list[NewEvent]]:
    """Claim the run's oldest held step on ``target`` (the worker's) for ``worker`` to run next, in the
    place of the step that just ended: a wide run's held steps then need no broker round trip.
    Returns its id (None if the run has none) and the events of the claim. Callers hold the run's lock."""
    if connection.vendor == "postgresql" or (
        connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 35)
    ):
        # One statement: find and claim (UPDATE … RETURNING; the run's lock keeps others off).
        assert StepState.RUNNING in TRANSITIONS[StepState.QUEUED]
        table = StepRun._meta.db_table
        stamp = connection.ops.adapt_datetimefield_value(now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET state = %s, dispatched_at = %s, started_at = %s, heartbeat_at = %s, "  # noqa: S608
                "attempts = attempts + 1, worker = %s WHERE id = ("
                f"SELECT id FROM {table} WHERE run_id = %s AND state = %s AND dispatched_at IS NULL "
                "AND target = %s ORDER BY queued_at, id LIMIT 1"
                ") AND state = %s AND dispatched_at IS NULL RETURNING id, node_id",
                [StepState.RUNNING, stamp, stamp, stamp, worker[:200], run.pk, StepState.QUEUED, target,
                 StepState.QUEUED],
            )  # fmt: skip
            oldest = cursor.fetchone()
        if oldest is None:
            return None, []
        step_id, node_id = oldest
    else:
        oldest = (
            StepRun.objects.filter(run=run, state=StepState.QUEUED, dispatched_at__isnull=True, target=target)
            .order_by("queued_at", "id")
            .values_list("id", "node_id")
            .first()
        )
        if oldest is None:
            return None, []
        step_id, node_id = oldest
        step_transition(
            step_id,
            source=StepState.QUEUED,
            to=StepState.RUNNING,
            where={"dispatched_at__isnull": True},
            dispatched_at=now,
            started_at=now,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            worker=worker[:200],
        )
    return step_id, [state_event(StepState.RUNNING, node_id, worker=worker)]


def run_finish_if_done(run: Run, now) -> list[NewEvent]:
    """Close the run once no step can change any more; returns the run's state event if it closed.
    Sends ``run_finished`` after commit."""
    if StepRun.objects.filter(run=run, state__in=ACTIVE_STEP_STATES).exists():
        return []
    if run.state == RunState.CANCELLED:
        final = RunState.CANCELLED
    elif StepRun.objects.filter(run=run, state=StepState.FAILED).exists():
        final = RunState.FAILED
    else:
        final = RunState.SUCCEEDED
    if not Run.objects.filter(pk=run.pk, finished_at__isnull=True).update(state=final, finished_at=now):
        return []
    _announce_finished(run.pk, final)
    return [state_event(final)]


def _announce_finished(run_id: int, state: str) -> None:
    def send() -> None:
        for receiver, response in run_finished.send_robust(sender=Run, run_id=run_id, state=state):
            if isinstance(response, Exception):
                logger.error(
                    "run_finished receiver %r failed for run %s", receiver, run_id, exc_info=response
                )

    transaction.on_commit(send)


def end_taken_back(
    run: Run,
    claim: Mapping[str, Any],
    node_id: str,
    now: datetime,
    *,
    reason: str,
    error_type: str,
    message: str,
    before: tuple[NewEvent, ...] = (),
) -> bool:
    """End a step taken away from its worker or its target (``claim``: the ``step_transition``
    arguments that still find it under that worker's claim): cancelled, for ``reason``, if its run
    was cancelled, else failed with ``error_type`` and ``message``, which fails the run and skips
    its downstream steps like a failing block does. ``before`` are events to write ahead of the
    step's state event. Returns False, changing nothing, when the claim no longer holds. Callers
    hold the run's lock.
    """
    if run.state == RunState.CANCELLED:
        state, extra = StepState.CANCELLED, {"reason": reason}
        changed = step_transition(**claim, to=state, finished_at=now)
    else:
        state, extra = StepState.FAILED, {"error": {"type": error_type, "message": message}}
        changed = step_transition(
            **claim,
            to=state,
            finished_at=now,
            error={"type": error_type, "message": message, "traceback": ""},
        )
    if not changed:
        return False
    step_ended(run, node_id, state, [*before, state_event(state, node_id, **extra)], now)
    return True


# --- cancelling and running again ------------------------------------------------------------------


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    """Cancel a run: waiting steps (pending, queued, submitted) are cancelled now, running ones stop
    at their next progress report; the jobs of its submitted and running steps are cancelled at their
    targets after commit. The places its dispatched steps held under the user's
    ``ILIAD_FAIR_STEPS_PER_USER`` go to the user's held steps."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in RUN_FINISHED:
        raise RunRejected(f"run {run.pk} has already finished ({run.state})")
    now = timezone.now()
    waiting_states = (StepState.PENDING, StepState.QUEUED, StepState.SUBMITTED)
    rows = list(
        StepRun.objects.filter(run=run, state__in=(*waiting_states, StepState.RUNNING)).values_list(
            "id", "node_id", "state", "target", "external_id"
        )
    )
    waiting = [step_id for step_id, _, state, _, _ in rows if state in waiting_states]
    step_transition(waiting, source=waiting_states, to=StepState.CANCELLED, finished_at=now)
    jobs = [
        (target, external_id)
        for _, _, state, target, external_id in rows
        if external_id and state in LAUNCHED_STEP_STATES
    ]
    run.state = RunState.CANCELLED
    events = [
        state_event(StepState.CANCELLED, node_id)
        for _, node_id, state, _, _ in rows
        if state in waiting_states
    ]
    events.append(state_event(RunState.CANCELLED))
    if not StepRun.objects.filter(run=run, state=StepState.RUNNING).exists():
        run.finished_at = now
        _announce_finished(run.pk, RunState.CANCELLED)
    run.save(update_fields=["state", "finished_at"])
    release_held(run.owner_id)
    events_append(run_id=run.pk, events=events)
    if jobs:
        transaction.on_commit(lambda: cancel_launched(jobs))
    return run


@transaction.atomic
def run_rerun(
    *,
    run: Run,
    user,
    from_node: str,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    cache: bool = True,
) -> Run:
    """A new run of ``run``'s pipeline version that takes the results of ``run``'s succeeded steps
    as they are, except for ``from_node`` and everything downstream of it, which execute again.

    ``params`` (node id → parameter values to change) first saves a new pipeline version (the run's
    document with those values merged in) and runs that; the changed nodes and everything
    downstream of them execute too. Raises RunRejected when the run's pipeline was deleted or a node
    is not in the run, PipelineInvalid when the changed document does not validate, and whatever
    ``run_submit`` raises.
    """
    graph = run_graph(run)
    changed = dict(params or {})
    nodes = ", ".join(graph.nodes)
    if from_node not in graph.nodes:
        raise RunRejected(f"from: run {run.pk} has no node {from_node!r}; its nodes: {nodes}")
    unknown = sorted(set(changed) - set(graph.nodes))
    if unknown:
        unknown_text = ", ".join(map(repr, unknown))
        raise RunRejected(f"params: run {run.pk} has no node {unknown_text}; its nodes: {nodes}")
    not_objects = sorted(node_id for node_id, values in changed.items() if not isinstance(values, Mapping))
    if not_objects:
        listed = ", ".join(not_objects)
        raise RunRejected(f"params: the values for {listed} must be objects of parameter values")
    if run.pipeline_id is None:
        raise RunRejected(f"the pipeline of run {run.pk} was deleted; it cannot be run again")
    execute = set()
    for node_id in {from_node, *changed}:
        execute |= {node_id, *graph.descendants(node_id)}
    pipeline, version = run.pipeline, run.pipeline_version
    snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)
    if changed:
        document = snapshot["document"]
        document = {
            **document,
            "nodes": [
                {**node, "params": {**node.get("params", {}), **changed[node["id"]]}}
                if node["id"] in changed
                else node
                for node in document["nodes"]
            ],
        }
        pipeline = pipeline_update(
            pipeline=pipeline,
            user=user,
            document=document,
            message=f"parameters of {', '.join(sorted(changed))} changed to rerun run {run.pk} "
            f"from {from_node}",
        )
        version = pipeline.latest_version
    return _run_again(run, user=user, version=version, cache=cache, execute=execute, from_node=from_node)


@transaction.atomic
def run_retry(*, run: Run, user, cache: bool = True) -> Run:
    """A new run of a failed ``run``'s pipeline version that takes the results of its succeeded steps
    as they are and executes its failed steps and what follows them. Raises RunRejected for a run
    that did not fail or whose pipeline was deleted, and whatever ``run_submit`` raises."""
    if run.state != RunState.FAILED:
        raise RunRejected(f"run {run.pk} did not fail ({run.state}); only a failed run can be retried")
    if run.pipeline_id is None:
        raise RunRejected(f"the pipeline of run {run.pk} was deleted; it cannot be run again")
    again = set(run.steps.exclude(state=StepState.SUCCEEDED).values_list("node_id", flat=True))
    return _run_again(
        run, user=user, version=run.pipeline_version, cache=cache, execute=again, from_node=None
    )


def _run_again(run: Run, *, user, version: int, cache: bool, execute: set[str], from_node: str | None) -> Run:
    reuse = dict(
        run.steps.filter(state=StepState.SUCCEEDED).exclude(node_id__in=execute).values_list("node_id", "id")
    )
    return run_submit(
        pipeline=run.pipeline,
        user=user,
        version=version,
        target=run.target,
        cache=cache,
        reuse=reuse,
        rerun={"run": run.pk, "from": from_node, "execute": sorted(execute)},
    )
