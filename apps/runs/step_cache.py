"""The step cache: a step that becomes ready takes the results of an identical earlier step (same
cache key, see ``engine.cache``) whose files are still there, instead of executing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from django.contrib.auth import get_user_model

from apps.projects.access import runs_visible_to
from apps.runs.events import NewEvent
from apps.runs.manifests import CachePlan, cache_plan, run_graph
from apps.runs.models import Artifact, Run, RunState, StepRun, StepState
from apps.runs.transitions import state_event, step_transition
from engine import PipelineGraph
from engine.cache import step_cache_key


class CachedResult(NamedTuple):
    """A succeeded step whose artifact files are all still there: results another step may reuse."""

    step_id: int
    run_id: int
    node_id: str
    cache_key: str
    artifacts: list[Artifact]


def _file_present(uri: str) -> bool:
    """Whether the artifact's file is still there: on this machine, or in the object store."""
    from apps.runs.store import artifact_available

    return artifact_available(uri)


def results_on_disk(step_ids: Iterable[int]) -> dict[int, CachedResult]:
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
    on_disk = results_on_disk(step_id for step_id, *_ in rows)
    found: dict[str, CachedResult] = {}
    for step_id, key, _, _ in rows:
        if key not in found and step_id in on_disk:
            found[key] = on_disk[step_id]
    return found


def _cache_keys(run: Run, plan: CachePlan, graph: PipelineGraph, ready: Mapping[str, int]) -> dict[str, str]:
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


def record_reused(run: Run, reused: Mapping[str, tuple[int, CachedResult]], now: datetime) -> list[NewEvent]:
    """Record pending steps (node id → (step id, earlier result)) as succeeded with the earlier
    results: new artifact rows naming the same files, each pointing at the artifact that first
    produced its file. Returns their state events (``cached: true``)."""
    events: list[NewEvent] = []
    artifacts: list[Artifact] = []
    for node_id, (step_id, result) in reused.items():
        if not step_transition(
            step_id,
            source=StepState.PENDING,
            to=StepState.SUCCEEDED,
            queued_at=now,
            started_at=now,
            finished_at=now,
            cached_from_id=result.step_id,
            cache_key=result.cache_key,
        ):
            continue
        artifacts += [
            Artifact(
                run_id=run.pk,
                step_id=step_id,
                port=artifact.port,
                uri=artifact.uri,
                type=artifact.type,
                media_type=artifact.media_type,
                sha256=artifact.sha256,
                size=artifact.size,
                cached_from_id=artifact.cached_from_id or artifact.pk,
            )
            for artifact in result.artifacts
        ]
        events.append(
            state_event(
                StepState.SUCCEEDED,
                node_id,
                cached=True,
                cached_from={"run": result.run_id, "node": result.node_id},
            )
        )
    Artifact.objects.bulk_create(artifacts)
    if events:
        Run.objects.filter(pk=run.pk, state=RunState.QUEUED).update(state=RunState.RUNNING, started_at=now)
    return events


def reuse_cached(run: Run, ready: dict[str, int], now: datetime) -> tuple[dict[str, int], list[NewEvent]]:
    """Of the steps that just became ready (node id → step id), record those with a cached result
    as succeeded with it (see ``record_reused``), then likewise the steps that made ready, and so
    on. Returns the steps left to queue and the events of the reuses. Each round costs a few
    queries for all of its steps; a run without the cache (``Run.cache``) costs none.

    Callers hold the run's lock.
    """
    if not run.cache or not ready:
        return ready, []
    plan = cache_plan(run)
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
        events += record_reused(run, hits, now)
        candidates = set().union(*(graph.downstream(node_id) for node_id in hits)) - set(to_queue)
        involved = candidates.union(*(graph.upstream(node_id) for node_id in candidates))
        rows = StepRun.objects.filter(run=run, node_id__in=involved).values_list("node_id", "state", "id")
        states = {node_id: step_state for node_id, step_state, _ in rows}
        step_ids = {node_id: step_id for node_id, _, step_id in rows}
        ready = {node_id: step_ids[node_id] for node_id in graph.ready(states) if node_id in candidates}
    return to_queue, events
