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
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Case, Count, F, Value, When
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from apps.accounts.limits import check_run_allowed
from apps.catalog.selectors import catalog_specs
from apps.compute.base import BackendError, Launch, Resources
from apps.compute.registry import executor_for
from apps.pipelines.models import Pipeline
from apps.pipelines.selectors import pipeline_version_get
from apps.pipelines.services import PipelineInvalid, pipeline_document_issues, pipeline_update
from apps.runs.events import NewEvent, events_append
from apps.runs.manifests import run_graph, step_manifest_write
from apps.runs.models import RUN_FINISHED, Artifact, Run, RunState, StepRun, StepState
from apps.runs.signals import run_finished
from apps.runs.step_cache import CachedResult, record_reused, results_on_disk, reuse_cached
from apps.runs.transitions import ACTIVE_STEP_STATES, LAUNCHED_STEP_STATES, state_event, step_transition
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


def _forget_targets(**_kwargs) -> None:
    _targets.clear()


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
    run: Run, steps: dict[str, int], *, keep_for: str | None = None, keep_target: str = ""
) -> tuple[list[NewEvent], int | None]:
    """Move pending steps (node id → step id) to queued and dispatch them after commit, each to its
    target. With ``keep_for`` (a worker's name), the first of them is instead claimed for that
    worker, in the caller's transaction, for it to run next, if it runs on ``keep_target`` (the
    target of the worker's step). Returns the events of these changes and the kept step's id.

    Claiming the kept step here instead of in a transaction of its own saves a commit (a WAL flush
    on PostgreSQL) per step of a chain. If the worker dies before running it, the step is running
    without heartbeats and the reconciler takes it back.

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
    if kept is not None:  # takes the slot of the step that just ended: no fair-share count needed
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
        # Held (not dispatched) until the caller's release_held finds room under the user's cap.
        step_transition(step_ids, source=StepState.PENDING, to=StepState.QUEUED, queued_at=now)
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
        ).count()
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
    return (
        StepRun.objects.filter(state__in=(StepState.QUEUED, StepState.SUBMITTED), dispatched_at__isnull=False)
        .exclude(run__owner_id=owner_id)
        .exists()
    )


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
    """Today's path: one ``runs.execute_step`` message per step on the Celery queue ``queue``."""
    from celery import current_app

    sent: dict[int, str] = {}
    for step_id in step_ids:
        try:
            sent[step_id] = current_app.send_task(EXECUTE_STEP_TASK, args=[step_id], queue=queue).id
        except Exception:
            logger.exception(
                "could not dispatch step %s to %s; it stays queued for re-dispatch", step_id, queue
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
    for step in steps:
        resources = _step_resources(step)
        files = step_manifest_write(step, resources=dataclasses.asdict(resources))
        launches.append(
            Launch(
                step_id=step.pk,
                attempt=step.attempts,
                manifest_uri=uri_from_path(files.manifest),
                resources=resources,
                options={"owner": step.run.owner_id},
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
    for step, external_id in zip(steps, external_ids, strict=True):
        StepRun.objects.filter(pk=step.pk, state=StepState.SUBMITTED, attempts=step.attempts).update(
            external_id=external_id, launch_attempts=0, launch_after=None
        )


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
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    if result.ok:
        state = StepState.SUCCEEDED
    elif (result.error or {}).get("type") == "cancelled":
        state = StepState.CANCELLED
    else:
        state = StepState.FAILED
    now = timezone.now()
    changed = step_transition(
        step.pk, source=source, to=state, attempt=step.attempts, finished_at=now, error=result.error
    )
    if not changed:
        return None
    Artifact.objects.bulk_create(
        Artifact(
            run=run,
            step_id=step.pk,
            port=record.port,
            uri=record.uri,
            type=record.type,
            media_type=record.media_type,
            sha256=record.sha256,
            size=record.size,
        )
        for record in result.artifacts
    )
    extra = {"duration_s": result.duration_s}
    if result.error:
        extra["error"] = {"type": result.error.get("type"), "message": result.error.get("message")}
    events = [*pending, state_event(state, step.node_id, **extra)]
    return step_ended(run, step.node_id, state, events, now, keep_for=keep_for, keep_target=step.target)


def step_ended(
    run: Run,
    ended_node: str,
    state: str,
    events: list[NewEvent],
    now: datetime,
    *,
    keep_for: str | None = None,
    keep_target: str = "",
) -> int | None:
    """After the step of ``ended_node`` went to the finished ``state``: queue what that made ready,
    skip what it made impossible, close the run when done, and write ``events`` followed by those
    of these changes. Unless a kept step takes over the ended step's place under its user's
    ``ILIAD_FAIR_STEPS_PER_USER``, that place goes to the user's oldest held step. Returns the kept
    step's id (see ``queue_steps``).

    Callers hold the run's lock.
    """
    graph = run_graph(run)
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
        queued, kept = queue_steps(run, ready, keep_for=keep_for, keep_target=keep_target)
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
        kept, taken = _keep_held(run, keep_for, keep_target or run.target, now)
        events += taken
    if kept is None or held:
        release_held(run.owner_id)
    if not queued and kept is None:  # else the run goes on: no need to ask whether it is done
        events += run_finish_if_done(run, now)
    events_append(run_id=run.pk, events=events)
    return kept


def _keep_held(run: Run, worker: str, target: str, now: datetime) -> tuple[int | None, list[NewEvent]]:
    """Claim the run's oldest held step on ``target`` (the worker's) for ``worker`` to run next, in the
    place of the step that just ended: a wide run's held steps then need no broker round trip.
    Returns its id (None if the run has none) and the events of the claim. Callers hold the run's lock."""
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
