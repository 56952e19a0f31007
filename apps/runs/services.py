"""Writes for runs: submit, execute a step, finish a step, cancel, re-dispatch lost steps, recover
steps whose worker was lost, fail steps that overran their walltime.

Every state change is a conditional UPDATE (``filter(state=...).update(...)``) and acts only if it
changed a row, so a task delivered twice runs its block once and a step is never lost. Step
completions of one run are serialised on the run row so that a step with two upstream branches is
queued exactly once, by whichever branch finishes last. A claimed step's ``attempts`` identifies the
claim: only that claim may finish the step or refresh its heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from apps.accounts.limits import check_run_allowed
from apps.catalog.selectors import catalog_specs
from apps.pipelines.models import Pipeline
from apps.pipelines.selectors import pipeline_version_get
from apps.pipelines.services import PipelineInvalid, pipeline_document_issues, pipeline_update
from apps.projects.access import runs_visible_to
from apps.runs.events import NewEvent, StepEventSink, events_append
from apps.runs.models import (
    RUN_FINISHED,
    Artifact,
    Run,
    RunEvent,
    RunState,
    StepRun,
    StepState,
)
from blocks.context import WalltimeExceeded
from blocks.manifest import (
    InputRef,
    ManifestError,
    ResultManifest,
    StepManifest,
    path_from_uri,
    uri_from_path,
)
from blocks.runner import run_step, with_defaults
from engine import PipelineGraph, parse_document
from engine.cache import step_cache_key

logger = logging.getLogger(__name__)

TARGETS = ("celery",)
"""Compute targets a run may ask for. Each has a dispatcher below."""

ACTIVE_STEP_STATES = (StepState.PENDING, StepState.QUEUED, StepState.RUNNING)
CANCEL_CHECK_INTERVAL_S = 1.0
FAIR_CHECK_INTERVAL_S = 0.5
"""How often a worker going on with a user's steps asks whether other users' steps wait for one."""
FINISH_ATTEMPTS = 5
WORKER_LOST = "WorkerLost"
"""Error type of a step failed because its worker was lost more often than it may be retried."""
WALLTIME_EXCEEDED = WalltimeExceeded.__name__
"""Error type of a step that ran longer than its block's walltime (never run again: it would only
overrun again)."""
WALLTIME_ADVICE = "Give it less work, e.g. a smaller area or a shorter period."


class RunRejected(Exception):
    """A run cannot be created or changed as asked; the message says why."""


def _state_event(state: str, node_id: str = "", **extra: Any) -> NewEvent:
    return (RunEvent.Kind.STATE, node_id, {"state": state, **extra})


RUN_FIELDS_FOR_STEPS = ("id", "owner", "state", "target", "cache", "created_at")
"""What step execution needs of its run: never the snapshot, which is read once per process."""
STEP_FIELDS = (
    "id", "run_id", "node_id", "block_id", "block_version", "params", "state", "attempts", "walltime_s"
)

_graphs: dict[tuple[int, object], PipelineGraph] = {}


def run_graph(run: Run) -> PipelineGraph:
    """The run's pipeline graph; snapshots never change, so it is parsed once per process."""
    key = (run.pk, run.created_at)
    graph = _graphs.get(key)
    if graph is None:
        if len(_graphs) >= 256:
            _graphs.clear()
        snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)
        graph = _graphs[key] = PipelineGraph.from_document(parse_document(snapshot["document"]))
    return graph


class _CachePlan(NamedTuple):
    """What the step cache needs of a run's snapshot: per cacheable node, its block, version,
    parameters with defaults and input port order (non-cacheable nodes are left out), and the
    nodes a rerun must execute whatever the cache holds."""

    steps: dict[str, tuple[str, str, dict[str, Any], list[str]]]
    fresh: frozenset[str]


_cache_plans: dict[tuple[int, object], _CachePlan] = {}


def _cache_plan(run: Run) -> _CachePlan:
    """The run's cache plan; like its graph, read once per process."""
    key = (run.pk, run.created_at)
    plan = _cache_plans.get(key)
    if plan is None:
        if len(_cache_plans) >= 256:
            _cache_plans.clear()
        snapshot = Run.objects.values_list("snapshot", flat=True).get(pk=run.pk)
        steps = {}
        for node in snapshot["document"]["nodes"]:
            spec = snapshot["blocks"][f"{node['block']}@{node['version']}"]
            if spec.get("cacheable", True):
                params = with_defaults(spec["parameters"], node.get("params") or {})
                ports = [port["name"] for port in spec.get("inputs", ())]
                steps[node["id"]] = (node["block"], node["version"], params, ports)
        fresh = frozenset((snapshot.get("rerun") or {}).get("execute", ()))
        plan = _cache_plans[key] = _CachePlan(steps, fresh)
    return plan


class CachedResult(NamedTuple):
    """A succeeded step whose artifact files are all still there: results another step may reuse."""

    step_id: int
    run_id: int
    node_id: str
    cache_key: str
    artifacts: list[Artifact]


def _file_present(uri: str) -> bool:
    try:
        return path_from_uri(uri).is_file()
    except ManifestError:  # not a local file: it cannot be checked here, so it is not reused
        return False


def _results_on_disk(step_ids: Iterable[int]) -> dict[int, CachedResult]:
    """Of these succeeded steps, those whose artifact files all still exist, by step id."""
    rows = StepRun.objects.filter(pk__in=list(step_ids), state=StepState.SUCCEEDED).values_list(
        "id", "run_id", "node_id", "cache_key"
    )
    results = {row[0]: CachedResult(*row, artifacts=[]) for row in rows}
    for artifact in Artifact.objects.filter(step_id__in=list(results)):
        results[artifact.step_id].artifacts.append(artifact)
    return {
        step_id: result
        for step_id, result in results.items()
        if all(_file_present(artifact.uri) for artifact in result.artifacts)
    }


def _cached_results(run: Run, keys: set[str]) -> dict[str, CachedResult]:
    """For each of ``keys`` that has one, the newest succeeded step of another run with that key
    whose files are still there and whose run the run's owner may see (their own runs and those
    ``apps.projects.access`` lets them see)."""
    rows = list(
        StepRun.objects.filter(cache_key__in=keys, state=StepState.SUCCEEDED)
        .exclude(run_id=run.pk)
        .order_by("-id")
        .values_list("id", "cache_key", "run_id", "run__owner_id")
    )
    if not rows:
        return {}
    others = {run_id for _, _, run_id, owner_id in rows if owner_id != run.owner_id}
    if others:
        owner = get_user_model().objects.get(pk=run.owner_id)
        seen = set(runs_visible_to(user=owner).filter(pk__in=others).values_list("pk", flat=True))
        rows = [row for row in rows if row[2] not in others or row[2] in seen]
    on_disk = _results_on_disk(step_id for step_id, *_ in rows)
    found: dict[str, CachedResult] = {}
    for step_id, key, _, _ in rows:
        if key not in found and step_id in on_disk:
            found[key] = on_disk[step_id]
    return found


def _cache_keys(run: Run, plan: _CachePlan, graph: PipelineGraph, ready: Mapping[str, int]) -> dict[str, str]:
    """The cache keys of the ready cacheable steps (node id → key), from their inputs' checksums:
    one query for all of them."""
    nodes = [node_id for node_id in ready if node_id in plan.steps]
    sources = {edge.source for node_id in nodes for edge in graph.incoming(node_id)}
    checksums = {}
    if sources:
        checksums = {
            (node_id, port): sha256
            for node_id, port, sha256 in Artifact.objects.filter(
                run_id=run.pk, step__node_id__in=sources
            ).values_list("step__node_id", "port", "sha256")
        }
    keys = {}
    for node_id in nodes:
        block_id, version, params, ports = plan.steps[node_id]
        inputs = {
            edge.target_port: checksums.get((edge.source, edge.source_port), "")
            for edge in graph.incoming(node_id)
        }
        if all(inputs.values()):  # an upstream output that is missing: nothing to key on
            keys[node_id] = step_cache_key(
                block=block_id, version=version, params=params, inputs=inputs, port_order=ports
            )
    return keys


def _record_reused(run: Run, reused: Mapping[str, tuple[int, CachedResult]], now: datetime) -> list[NewEvent]:
    """Record pending steps (node id → (step id, earlier result)) as succeeded with the earlier
    results: new artifact rows naming the same files, each pointing at the artifact that first
    produced its file. Returns their state events (``cached: true``)."""
    events: list[NewEvent] = []
    artifacts: list[Artifact] = []
    for node_id, (step_id, result) in reused.items():
        if not StepRun.objects.filter(pk=step_id, state=StepState.PENDING).update(
            state=StepState.SUCCEEDED, queued_at=now, started_at=now, finished_at=now,
            cached_from_id=result.step_id, cache_key=result.cache_key,
        ):
            continue
        artifacts += [
            Artifact(
                run_id=run.pk, step_id=step_id, port=artifact.port, uri=artifact.uri, type=artifact.type,
                media_type=artifact.media_type, sha256=artifact.sha256, size=artifact.size,
                cached_from_id=artifact.cached_from_id or artifact.pk,
            )
            for artifact in result.artifacts
        ]
        events.append(
            _state_event(
                StepState.SUCCEEDED, node_id, cached=True,
                cached_from={"run": result.run_id, "node": result.node_id},
            )
        )
    Artifact.objects.bulk_create(artifacts)
    if events:
        Run.objects.filter(pk=run.pk, state=RunState.QUEUED).update(state=RunState.RUNNING, started_at=now)
    return events


def _reuse_cached(run: Run, ready: dict[str, int], now: datetime) -> tuple[dict[str, int], list[NewEvent]]:
    """Of the steps that just became ready (node id → step id), record those with a cached result
    as succeeded with it (see ``_record_reused``), then likewise the steps that made ready, and so
    on. Returns the steps left to queue and the events of the reuses. Each round costs a few
    queries for all of its steps; a run without the cache (``Run.cache``) costs none.

    Callers hold the run's lock.
    """
    if not run.cache or not ready:
        return ready, []
    plan = _cache_plan(run)
    graph = run_graph(run)
    to_queue: dict[str, int] = {}
    events: list[NewEvent] = []
    while ready:
        keys = _cache_keys(run, plan, graph, ready)
        if keys:
            StepRun.objects.bulk_update(
                [StepRun(pk=ready[node_id], cache_key=key) for node_id, key in keys.items()], ["cache_key"]
            )
        wanted = {node_id: key for node_id, key in keys.items() if node_id not in plan.fresh}
        found = _cached_results(run, set(wanted.values())) if wanted else {}
        hits = {node_id: (ready[node_id], found[key]) for node_id, key in wanted.items() if key in found}
        to_queue.update((node_id, step_id) for node_id, step_id in ready.items() if node_id not in hits)
        if not hits:
            break
        events += _record_reused(run, hits, now)
        candidates = set().union(*(graph.downstream(node_id) for node_id in hits)) - set(to_queue)
        involved = candidates.union(*(graph.upstream(node_id) for node_id in candidates))
        rows = StepRun.objects.filter(run=run, node_id__in=involved).values_list("node_id", "state", "id")
        states = {node_id: step_state for node_id, step_state, _ in rows}
        step_ids = {node_id: step_id for node_id, _, step_id in rows}
        ready = {node_id: step_ids[node_id] for node_id in graph.ready(states) if node_id in candidates}
    return to_queue, events


def _queue(
    run: Run, steps: dict[str, int], *, keep_for: str | None = None
) -> tuple[list[NewEvent], int | None]:
    """Move pending steps (node id → step id) to queued and dispatch them after commit. With
    ``keep_for`` (a worker's name), one of them is instead claimed for that worker, in the caller's
    transaction, for it to run next. Returns the events of these changes and the kept step's id.

    Claiming the kept step here instead of in a transaction of its own saves a commit (a WAL flush
    on PostgreSQL) per step of a chain. If the worker dies before running it, the step is running
    without heartbeats and ``steps_recover_stalled`` takes it back.

    Callers hold the run's lock and have just read these steps as pending.
    """
    if not steps:
        return [], None
    now = timezone.now()
    step_ids = list(steps.values())
    kept = step_ids.pop(0) if keep_for is not None else None
    events: list[NewEvent] = []
    if kept is not None:  # takes the slot of the step that just ended: no fair-share count needed
        StepRun.objects.filter(id=kept, state=StepState.PENDING).update(
            state=StepState.RUNNING, queued_at=now, dispatched_at=now, started_at=now, heartbeat_at=now,
            attempts=F("attempts") + 1, worker=keep_for[:200],
        )
    if step_ids and settings.ILIAD_FAIR_STEPS_PER_USER:
        # Held (not dispatched) until the caller's _release_held finds room under the user's cap.
        StepRun.objects.filter(id__in=step_ids, state=StepState.PENDING).update(
            state=StepState.QUEUED, queued_at=now
        )
    elif step_ids:
        StepRun.objects.filter(id__in=step_ids, state=StepState.PENDING).update(
            state=StepState.QUEUED, queued_at=now, dispatched_at=now
        )
        target = run.target
        transaction.on_commit(lambda: dispatch_steps(step_ids, target=target))
    for node_id, step_id in steps.items():
        events.append(_state_event(StepState.QUEUED, node_id))
        if step_id == kept:
            events.append(_state_event(StepState.RUNNING, node_id, worker=keep_for))
    return events, kept


def _release_held(owner_id: int) -> int:
    """Dispatch (after commit) the user's oldest held steps, as many as ``ILIAD_FAIR_STEPS_PER_USER``
    has room for next to the steps of theirs already dispatched or running. Returns how many.

    Called wherever a user's steps were queued or one of their steps ended without a successor
    taking over its slot. With no cap, steps are dispatched as they are queued (see ``_queue``).
    """
    cap = settings.ILIAD_FAIR_STEPS_PER_USER
    if not cap:
        return 0
    _lock_users([owner_id])
    room = cap - StepRun.objects.filter(
        run__owner_id=owner_id, state__in=(StepState.QUEUED, StepState.RUNNING), dispatched_at__isnull=False
    ).count()
    if room <= 0:
        return 0
    held = list(
        StepRun.objects.filter(run__owner_id=owner_id, state=StepState.QUEUED, dispatched_at__isnull=True)
        .order_by("queued_at", "id")
        .values_list("id", "run__target")[:room]
    )
    return _mark_dispatched(held)


def _lock_users(user_ids: list[int]) -> None:
    """Serialise the releases of these users' held steps until the transaction ends (PostgreSQL;
    SQLite's IMMEDIATE transactions let one writer in at a time anyway). Taken after any run lock."""
    if connection.features.has_select_for_update:
        list(
            get_user_model().objects.select_for_update().filter(pk__in=user_ids).order_by("pk")
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

    def dispatch() -> None:
        for step_id, target in steps:
            dispatch_steps([step_id], target=target)

    transaction.on_commit(dispatch)
    return len(steps)


def _others_waiting(owner_id: int) -> bool:
    """Whether another user's step waits at the broker for a worker. (A user's held steps need not
    be asked about: they are held because that user's cap is full of steps at the broker or running.)"""
    return (
        StepRun.objects.filter(state=StepState.QUEUED, dispatched_at__isnull=False)
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
            .values_list("id", "run__owner_id", "run__target")
        ):
            by_owner.setdefault(owner_id, []).append((step_id, target))
        if cap:
            _lock_users(list(by_owner))
            in_flight = dict(
                StepRun.objects.filter(
                    run__owner_id__in=list(by_owner),
                    state__in=(StepState.QUEUED, StepState.RUNNING),
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
    """Hand queued steps to the compute target. A failed send is logged; the requeue job retries it."""
    from apps.runs.tasks import execute_step

    for step_id in step_ids:
        try:
            execute_step.apply_async(args=[step_id])
        except Exception:
            logger.exception(
                "could not dispatch step %s to %s; it stays queued for re-dispatch", step_id, target
            )


@transaction.atomic
def run_submit(
    *,
    pipeline: Pipeline,
    user,
    version: int | None = None,
    target: str = "celery",
    cache: bool = True,
    reuse: Mapping[str, int] | None = None,
    rerun: Mapping[str, Any] | None = None,
) -> Run:
    """Freeze a pipeline version into a run and dispatch its first steps once committed.

    With ``cache`` (the default), a step that becomes ready is not executed when a succeeded step
    with the same cache key (``engine.cache``) of a run the user may see still has its files: it is
    recorded as succeeded with those results. ``reuse`` (node id → id of an earlier succeeded step
    of the same node) takes those results as they are, cache or not, whenever their files are still
    there; the nodes must include everything upstream of each (``run_rerun``, ``run_retry``).
    ``rerun`` (what the run repeats: ``{"run", "from", "execute"}``) is kept in the snapshot; its
    ``execute`` nodes are never taken from the cache.

    Raises RunRejected for an unknown version or target, PipelineInvalid when the document no longer
    validates against the catalog (e.g. a block version was removed), LimitExceeded when the user
    is at one of their limits (see ``apps.accounts.limits``). Of its first steps, those over the
    user's ``ILIAD_FAIR_STEPS_PER_USER`` stay queued without being dispatched until room frees up.
    """
    if target not in TARGETS:
        raise RunRejected(f"unknown compute target {target!r}; known targets: {', '.join(TARGETS)}")
    pipeline_version = pipeline_version_get(pipeline=pipeline, number=version)
    if pipeline_version is None:
        raise RunRejected(f"pipeline {pipeline.pk} has no version {version}")
    specs = catalog_specs()
    issues = pipeline_document_issues(document=pipeline_version.document, catalog=specs)
    if issues:
        raise PipelineInvalid(issues)
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
            walltime_s=blocks[f"{node.block}@{node.version}"]["resources"]["walltime_s"],
        )
        for node in document.nodes
    )
    step_ids = {step.node_id: step.pk for step in steps}
    graph = PipelineGraph.from_document(document)
    states = {node_id: StepState.PENDING for node_id in graph.nodes}
    events = [_state_event(RunState.QUEUED, pipeline_version=pipeline_version.number)]
    now = timezone.now()
    if reuse:
        on_disk = _results_on_disk(reuse.values())
        taken: dict[str, tuple[int, CachedResult]] = {}
        for node_id in graph.topological_order():  # a result is taken only if its upstream ones are
            source_id = reuse.get(node_id)
            if source_id in on_disk and graph.upstream(node_id) <= taken.keys():
                taken[node_id] = (step_ids[node_id], on_disk[source_id])
        events += _record_reused(run, taken, now)
        states.update((node_id, StepState.SUCCEEDED) for node_id in taken)
    ready, reused = _reuse_cached(run, {node_id: step_ids[node_id] for node_id in graph.ready(states)}, now)
    events += reused
    queued = _queue(run, ready)[0]
    events += queued
    _release_held(user.pk)
    if not queued:  # every step was taken from earlier runs
        events += _run_finish_if_done(run, now)
    events_append(run_id=run.pk, events=events)
    return run


def _claim(step_id: int, worker: str) -> StepRun | None:
    """Queued → running, exactly once. None when another delivery got there first (or it was cancelled)."""
    now = timezone.now()
    with transaction.atomic():
        # A held step is not claimed: a stray message for it must not overrun its user's cap.
        claimed = StepRun.objects.filter(
            pk=step_id, state=StepState.QUEUED, dispatched_at__isnull=False
        ).update(
            state=StepState.RUNNING,
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
            events.append(_state_event(RunState.RUNNING))
        events.append(_state_event(StepState.RUNNING, step.node_id, worker=worker))
        events_append(run_id=step.run_id, events=events)
    return step


def _claimed_step(step_id: int) -> StepRun:
    """A claimed step with what running it needs of its run (see ``RUN_FIELDS_FOR_STEPS``)."""
    return (
        StepRun.objects.select_related("run")
        .only(*STEP_FIELDS, *(f"run__{name}" for name in RUN_FIELDS_FOR_STEPS))
        .get(pk=step_id)
    )


KnownArtifacts = dict[tuple[str, str], tuple[str, str]]
"""(node id, port) → (uri, type) of artifacts already at hand."""


def step_manifest(step: StepRun, known: KnownArtifacts | None = None) -> StepManifest:
    """The step manifest of a claimed step: its inputs are the artifacts of its upstream steps.

    ``known`` artifacts (those the previous step of this worker just produced) are not read again.
    """
    graph = run_graph(step.run)
    incoming = graph.incoming(step.node_id)
    artifacts = dict(known or {})
    if any((edge.source, edge.source_port) not in artifacts for edge in incoming):
        artifacts.update(
            ((node_id, port), (uri, kind))
            for node_id, port, uri, kind in Artifact.objects.filter(
                run_id=step.run_id, step__node_id__in={edge.source for edge in incoming}
            ).values_list("step__node_id", "port", "uri", "type")
        )
    inputs = {}
    for edge in incoming:
        uri, kind = artifacts[(edge.source, edge.source_port)]
        inputs[edge.target_port] = InputRef(uri=uri, type=kind)
    output_dir = settings.ILIAD_ARTIFACT_ROOT / "runs" / str(step.run_id) / step.node_id
    if step.attempts > 1:  # a lost attempt may have left partial outputs behind: never mix them in
        output_dir /= f"attempt-{step.attempts}"
    return StepManifest(
        run_id=str(step.run_id),
        step_id=step.node_id,
        block_id=step.block_id,
        block_version=step.block_version,
        params=step.params,
        inputs=inputs,
        output_dir=uri_from_path(output_dir),
    )


def _cancel_checker(step: StepRun):
    """The ``cancel_requested`` callback of a claimed step's block: True once its run was cancelled
    (asked of the database at most every ``CANCEL_CHECK_INTERVAL_S``); raises WalltimeExceeded once
    the step ran longer than its walltime, counted from now, so that it fails instead."""
    # Starts as "just checked": the claim has seen the run alive a moment ago.
    last_check = [time.monotonic(), False]
    deadline = last_check[0] + step.walltime_s

    def cancel_requested() -> bool:
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
def _heartbeat(step: StepRun) -> Iterator[None]:
    """Refresh the claimed step's ``heartbeat_at`` every ``ILIAD_HEARTBEAT_S`` while the body runs.

    A thread does it, so that a block computing for minutes without reporting progress still shows
    that its worker is alive; it stops (and closes its database connection) when the body ends.
    """
    stop = threading.Event()
    thread = threading.Thread(
        target=_send_heartbeats,
        args=(step.pk, step.attempts, stop),
        name=f"step-heartbeat-{step.pk}",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _send_heartbeats(step_id: int, attempt: int, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.ILIAD_HEARTBEAT_S):
            try:
                mine = StepRun.objects.filter(pk=step_id, state=StepState.RUNNING, attempts=attempt).update(
                    heartbeat_at=timezone.now()
                )
            except DatabaseError:  # a missed beat is no harm; many in a row are what a lost worker is
                logger.warning("could not refresh the heartbeat of step %s", step_id, exc_info=True)
                connection.close()
                continue
            if not mine:  # taken back as lost, or cancelled: nothing of ours left to keep alive
                return
    finally:
        connection.close()


def step_execute(*, step_id: int, worker: str = "", local_steps: int | None = None) -> bool:
    """Claim a queued step, run its block in this process and record the outcome; then go on with
    one step it made ready, up to ``local_steps`` steps in all (default ``ILIAD_LOCAL_STEPS``).

    Going on locally saves a round trip through the broker per step of a chain; every other newly
    ready step is dispatched as usual. When a step made nothing ready, it goes on with one of its
    run's held steps instead, if any (see ``ILIAD_FAIR_STEPS_PER_USER``). The kept step is claimed
    for this worker in the transaction that finished the previous one (see ``_queue``); if the
    run was cancelled meanwhile, it ends as cancelled without running. With fair sharing on, it
    does not go on while another user's step waits at the broker (asked at most every
    ``FAIR_CHECK_INTERVAL_S``): the ready step then goes through the broker, behind theirs.

    Returns False (and does nothing) when the step was not queued: a duplicate delivery, a retry of
    a step that already ran, or a step of a cancelled run.
    """
    budget = settings.ILIAD_LOCAL_STEPS if local_steps is None else local_steps
    known: KnownArtifacts = {}
    ran = False
    step = _claim(step_id, worker)
    fair_checked_at = time.monotonic()  # the broker just gave this worker to this user
    while step is not None:
        ran, budget = True, budget - 1
        if step.run.state == RunState.CANCELLED:
            result = _failed_result(step, "cancelled", "the run was cancelled before this step started")
            pending = []
        else:
            result, pending = _run_claimed(step, known)
        go_on = budget > 0
        if (
            go_on
            and settings.ILIAD_FAIR_STEPS_PER_USER
            and time.monotonic() - fair_checked_at >= FAIR_CHECK_INTERVAL_S
        ):
            fair_checked_at = time.monotonic()
            go_on = not _others_waiting(step.run.owner_id)
        next_id = _finish_with_retries(step, result, pending, keep_for=worker if go_on else None)
        known = {(step.node_id, record.port): (record.uri, record.type) for record in result.artifacts}
        step = _claimed_step(next_id) if next_id is not None else None
    return ran


def _run_claimed(step: StepRun, known: KnownArtifacts) -> tuple[ResultManifest, list[NewEvent]]:
    """Run a claimed step's block; returns its result and the events it emitted but not yet wrote."""
    sink = StepEventSink(run_id=step.run_id, node_id=step.node_id)
    try:
        manifest = step_manifest(step, known)
        with _heartbeat(step):
            result = run_step(
                manifest,
                emit=sink,
                cancel_requested=_cancel_checker(step),
                data_dir=settings.ILIAD_DATA_DIR,
                artifact_root=settings.ILIAD_ARTIFACT_ROOT,
            )
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


@transaction.atomic
def step_finish(
    *, step: StepRun, result: ResultManifest, pending: Iterable[NewEvent] = (), keep_for: str | None = None
) -> int | None:
    """Record a claimed step's outcome, queue what became ready, skip what can no longer run.

    ``pending`` are the block's last progress and log events, written in the same transaction.
    With ``keep_for`` (the finishing worker's name), one newly ready step is not dispatched but
    claimed for that worker: its id is returned for the caller to run next. Does nothing (returns
    None) unless the step is still running under the same claim: a worker whose step was taken
    back as lost, or failed for overrunning its walltime, does not record anything.
    """
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    if result.ok:
        state = StepState.SUCCEEDED
    elif (result.error or {}).get("type") == "cancelled":
        state = StepState.CANCELLED
    else:
        state = StepState.FAILED
    now = timezone.now()
    changed = StepRun.objects.filter(pk=step.pk, state=StepState.RUNNING, attempts=step.attempts).update(
        state=state, finished_at=now, error=result.error
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
    events = [*pending, _state_event(state, step.node_id, **extra)]
    return _step_ended(run, step.node_id, state, events, now, keep_for=keep_for)


def _step_ended(
    run: Run, ended_node: str, state: str, events: list[NewEvent], now: datetime, *,
    keep_for: str | None = None,
) -> int | None:
    """After the step of ``ended_node`` went from running to ``state``: queue what that made ready,
    skip what it made impossible, close the run when done, and write ``events`` followed by those
    of these changes. Unless a kept step takes over the ended step's place under its user's
    ``ILIAD_FAIR_STEPS_PER_USER``, that place goes to the user's oldest held step. Returns the kept
    step's id (see ``_queue``).

    Callers hold the run's lock.
    """
    graph = run_graph(run)
    queued: list[NewEvent] = []
    kept = None
    held = False
    if state == StepState.SUCCEEDED and run.state != RunState.CANCELLED:
        candidates = graph.downstream(ended_node)
        involved = set(candidates).union(*(graph.upstream(node_id) for node_id in candidates))
        rows = StepRun.objects.filter(run=run, node_id__in=involved).values_list("node_id", "state", "id")
        states = {node_id: step_state for node_id, step_state, _ in rows}
        step_ids = {node_id: step_id for node_id, _, step_id in rows}
        ready = {node_id: step_ids[node_id] for node_id in graph.ready(states) if node_id in candidates}
        ready, reused = _reuse_cached(run, ready, now)
        events += reused
        queued, kept = _queue(run, ready, keep_for=keep_for)
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
            _state_event(StepState.SKIPPED, node_id, reason=f"{ended_node} failed") for node_id in skipped
        ]
    if kept is None and keep_for is not None and settings.ILIAD_FAIR_STEPS_PER_USER:
        kept, taken = _keep_held(run, keep_for, now)
        events += taken
    if kept is None or held:
        _release_held(run.owner_id)
    if not queued and kept is None:  # else the run goes on: no need to ask whether it is done
        events += _run_finish_if_done(run, now)
    events_append(run_id=run.pk, events=events)
    return kept


def _keep_held(run: Run, worker: str, now: datetime) -> tuple[int | None, list[NewEvent]]:
    """Claim the run's oldest held step for ``worker`` to run next, in the place of the step that
    just ended: a wide run's held steps then need no broker round trip. Returns its id (None if
    the run has none) and the events of the claim. Callers hold the run's lock."""
    oldest = (
        StepRun.objects.filter(run=run, state=StepState.QUEUED, dispatched_at__isnull=True)
        .order_by("queued_at", "id")
        .values_list("id", "node_id")
        .first()
    )
    if oldest is None:
        return None, []
    step_id, node_id = oldest
    StepRun.objects.filter(id=step_id, state=StepState.QUEUED, dispatched_at__isnull=True).update(
        state=StepState.RUNNING, dispatched_at=now, started_at=now, heartbeat_at=now,
        attempts=F("attempts") + 1, worker=worker[:200],
    )
    return step_id, [_state_event(StepState.RUNNING, node_id, worker=worker)]


def _run_finish_if_done(run: Run, now) -> list[NewEvent]:
    """Close the run once no step can change any more; returns the run's state event if it closed."""
    if StepRun.objects.filter(run=run, state__in=ACTIVE_STEP_STATES).exists():
        return []
    if run.state == RunState.CANCELLED:
        final = RunState.CANCELLED
    elif StepRun.objects.filter(run=run, state=StepState.FAILED).exists():
        final = RunState.FAILED
    else:
        final = RunState.SUCCEEDED
    Run.objects.filter(pk=run.pk).update(state=final, finished_at=now)
    return [_state_event(final)]


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    """Cancel a run: waiting steps are cancelled now, running ones stop at their next progress report.
    The places its dispatched steps held under the user's ``ILIAD_FAIR_STEPS_PER_USER`` go to the
    user's held steps."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in RUN_FINISHED:
        raise RunRejected(f"run {run.pk} has already finished ({run.state})")
    now = timezone.now()
    waiting = list(
        StepRun.objects.filter(run=run, state__in=(StepState.PENDING, StepState.QUEUED)).values_list(
            "node_id", flat=True
        )
    )
    StepRun.objects.filter(
        run=run, node_id__in=waiting, state__in=(StepState.PENDING, StepState.QUEUED)
    ).update(state=StepState.CANCELLED, finished_at=now)
    run.state = RunState.CANCELLED
    events = [_state_event(StepState.CANCELLED, node_id) for node_id in waiting]
    events.append(_state_event(RunState.CANCELLED))
    if not StepRun.objects.filter(run=run, state=StepState.RUNNING).exists():
        run.finished_at = now
    run.save(update_fields=["state", "finished_at"])
    _release_held(run.owner_id)
    events_append(run_id=run.pk, events=events)
    return run


@transaction.atomic
def run_rerun(
    *, run: Run, user, from_node: str, params: Mapping[str, Mapping[str, Any]] | None = None,
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
                if node["id"] in changed else node
                for node in document["nodes"]
            ],
        }
        pipeline = pipeline_update(
            pipeline=pipeline, user=user, document=document,
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
        pipeline=run.pipeline, user=user, version=version, target=run.target, cache=cache, reuse=reuse,
        rerun={"run": run.pk, "from": from_node, "execute": sorted(execute)},
    )


def steps_requeue_lost(*, older_than: timedelta) -> int:
    """Dispatch again the steps dispatched longer than ``older_than`` ago and still queued (a lost
    message, a broker outage). Held steps (queued, never dispatched) are left to the fair-share
    release: they wait for room under their user's cap, not for a lost message.

    Safe because claiming is exactly-once: if the first message was merely slow, the second one
    finds the step running and does nothing. Returns how many steps were re-dispatched.
    """
    cutoff = timezone.now() - older_than
    by_target: dict[str, list[int]] = {}
    with transaction.atomic():
        lost = list(
            StepRun.objects.filter(state=StepState.QUEUED, dispatched_at__lt=cutoff).values_list(
                "id", "run__target"
            )
        )
        StepRun.objects.filter(id__in=[step_id for step_id, _ in lost], state=StepState.QUEUED).update(
            dispatched_at=timezone.now()
        )
    for step_id, target in lost:
        by_target.setdefault(target, []).append(step_id)
    for target, step_ids in by_target.items():
        dispatch_steps(step_ids, target=target)
    return len(lost)


def steps_recover_stalled(*, stalled_after: timedelta, max_attempts: int, walltime_grace: timedelta) -> int:
    """Recover the running steps whose worker has sent no heartbeat for ``stalled_after`` (a killed
    or out-of-memory worker, a lost machine): each is run again or failed by ``step_recover``. Fail
    those of live workers that have run longer than their walltime plus ``walltime_grace`` (a hung
    block, or one that never reports progress, so never learns that it is out of time): see
    ``step_fail_overdue``.

    Needed because a redelivered task finds such a step running and leaves it alone. Returns how
    many steps were taken back or failed.
    """
    now = timezone.now()
    cutoff = now - stalled_after
    running = StepRun.objects.filter(state=StepState.RUNNING)
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
        step_fail_overdue(step_id=step_id, attempts=attempts, grace=walltime_grace)
        for step_id, attempts in overdue
    )
    return failed + sum(
        step_recover(step_id=step_id, last_heartbeat=last_heartbeat, max_attempts=max_attempts)
        for step_id, last_heartbeat in stalled
    )


@transaction.atomic
def step_recover(*, step_id: int, last_heartbeat: datetime, max_attempts: int) -> bool:
    """Take back a running step whose worker was last heard from at ``last_heartbeat``.

    If it was claimed fewer than ``max_attempts`` times it is queued and dispatched again (its next
    attempt writes into a fresh output directory); otherwise it fails with a ``WorkerLost`` error,
    which fails the run and skips its downstream steps like a failing block does. A step of a
    cancelled run is cancelled. Returns False, changing nothing, when the step is no longer running
    under that claim or its worker sent a heartbeat since: a live worker always keeps its step.
    """
    step = StepRun.objects.only("id", "run_id", "node_id", "attempts", "worker").filter(pk=step_id).first()
    if step is None:
        return False
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = StepRun.objects.filter(
        pk=step.pk, state=StepState.RUNNING, attempts=step.attempts, heartbeat_at=last_heartbeat
    )
    now = timezone.now()
    silent_s = int((now - last_heartbeat).total_seconds())
    worker = step.worker or "(unknown)"
    lost = f"worker {worker} lost (no heartbeat for {silent_s} s)"
    if run.state != RunState.CANCELLED and step.attempts < max_attempts:
        if not claim.update(state=StepState.QUEUED, queued_at=now, dispatched_at=now):
            return False
        retry = f"{lost}; running the step again, attempt {step.attempts + 1} of {max_attempts}"
        events_append(
            run_id=run.pk,
            events=[
                (RunEvent.Kind.LOG, step.node_id, {"level": "warning", "message": retry}),
                _state_event(StepState.QUEUED, step.node_id, reason=lost),
            ],
        )
        target = run.target
        transaction.on_commit(lambda: dispatch_steps([step.pk], target=target))
        return True
    message = (
        f"worker lost {step.attempts} times (the last one, {worker}, sent no heartbeat for {silent_s} s); "
        "not run again. The block may need more memory or time than a worker has."
    )
    return _end_taken_back(
        run, claim, step.node_id, now, reason=lost, error_type=WORKER_LOST, message=message
    )


def _end_taken_back(
    run: Run, claim, node_id: str, now: datetime, *, reason: str, error_type: str, message: str,
    before: tuple[NewEvent, ...] = (),
) -> bool:
    """End a step taken away from its worker (``claim``: the conditional update that still finds it
    running under that worker's claim): cancelled, for ``reason``, if its run was cancelled, else
    failed with ``error_type`` and ``message``, which fails the run and skips its downstream steps
    like a failing block does. ``before`` are events to write ahead of the step's state event.
    Returns False, changing nothing, when the claim no longer holds. Callers hold the run's lock.
    """
    if run.state == RunState.CANCELLED:
        state, extra = StepState.CANCELLED, {"reason": reason}
        changed = claim.update(state=state, finished_at=now)
    else:
        state, extra = StepState.FAILED, {"error": {"type": error_type, "message": message}}
        changed = claim.update(
            state=state, finished_at=now, error={"type": error_type, "message": message, "traceback": ""}
        )
    if not changed:
        return False
    _step_ended(run, node_id, state, [*before, _state_event(state, node_id, **extra)], now)
    return True


@transaction.atomic
def step_fail_overdue(*, step_id: int, attempts: int, grace: timedelta) -> bool:
    """Fail a step still running under claim ``attempts`` more than ``grace`` after its walltime
    ran out, with a ``WalltimeExceeded`` error, which fails the run and skips its downstream steps
    like a failing block does; it is not run again, as it would only overrun again. A step of a
    cancelled run is cancelled. The worker is not stopped: it stays busy until the block returns,
    and then records nothing. Returns False, changing nothing, when the step is no longer running
    under that claim or has not overrun by more than ``grace``.
    """
    step = (
        StepRun.objects.only(
            "id", "run_id", "node_id", "block_id", "block_version", "attempts", "walltime_s",
            "started_at", "worker",
        )
        .filter(pk=step_id, state=StepState.RUNNING, attempts=attempts)
        .first()
    )
    now = timezone.now()
    if step is None or step.started_at + timedelta(seconds=step.walltime_s) + grace >= now:
        return False
    run = Run.objects.select_for_update().only(*RUN_FIELDS_FOR_STEPS).get(pk=step.run_id)
    claim = StepRun.objects.filter(pk=step.pk, state=StepState.RUNNING, attempts=attempts)
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
    return _end_taken_back(
        run, claim, step.node_id, now, reason=overran, error_type=WALLTIME_EXCEEDED,
        message=f"{overran}; it was given up. {WALLTIME_ADVICE}", before=(log,),
    )
