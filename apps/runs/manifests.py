"""What a step needs to run, read from its run: the run's pipeline graph, the step cache's plan of
the run, and step manifests (in memory for the in-process agent, as a JSON file for polled targets).
Snapshots never change, so graphs and plans are read once per process."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings

from apps.runs import store as artifact_store
from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import InputRef, StepManifest, uri_from_path
from blocks.runner import with_defaults
from engine import PipelineGraph, parse_document

EVENTS_FILE = "_events.jsonl"
RESULT_FILE = "_result.json"

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


class CachePlan(NamedTuple):
    """What the step cache needs of a run's snapshot: per cacheable node, its block, version,
    parameters with defaults and input port order (non-cacheable nodes are left out), and the
    nodes a rerun must execute whatever the cache holds."""

    steps: dict[str, tuple[str, str, dict[str, Any], list[str]]]
    fresh: frozenset[str]


_cache_plans: dict[tuple[int, object], CachePlan] = {}


def cache_plan(run: Run) -> CachePlan:
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
        plan = _cache_plans[key] = CachePlan(steps, fresh)
    return plan


KnownArtifacts = dict[tuple[str, str], tuple[str, str]]
"""(node id, port) → (uri, type) of artifacts already at hand."""


def step_output_dir(step: StepRun) -> Path:
    """Where an attempt of the step writes: a fresh directory per attempt after the first, so a
    lost attempt's partial outputs are never mixed in."""
    output_dir = settings.ILIAD_ARTIFACT_ROOT / "runs" / str(step.run_id) / step.node_id
    if step.attempts > 1:
        output_dir /= f"attempt-{step.attempts}"
    return output_dir


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
    return StepManifest(
        run_id=str(step.run_id),
        step_id=step.node_id,
        block_id=step.block_id,
        block_version=step.block_version,
        params=step.params,
        inputs=inputs,
        output_dir=artifact_store.output_uri(step_output_dir(step)),
    )


class ManifestFiles(NamedTuple):
    """Where a polled attempt's files are: the step manifest it runs, the events file its runner
    appends JSON lines to, and the result manifest it writes last."""

    manifest: Path
    events: Path
    result: Path


def manifest_files(step: StepRun) -> ManifestFiles:
    """The files of the step's current attempt (see ``step_output_dir``)."""
    output_dir = step_output_dir(step)
    return ManifestFiles(output_dir / "_manifest.json", output_dir / EVENTS_FILE, output_dir / RESULT_FILE)


def step_manifest_write(step: StepRun, *, resources: Mapping[str, int]) -> ManifestFiles:
    """Write the step manifest of the step's current attempt to a file, for a polled target's job,
    and return its files. Manifest version 2 carries the attempt, its resources and (by default,
    next to the outputs) the events and result files."""
    files = manifest_files(step)
    files.manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest = step_manifest(step)
    fields = {field.name for field in dataclasses.fields(StepManifest)}
    if "resources" in fields:  # version 2
        from blocks.manifest import StepResources

        manifest = dataclasses.replace(
            manifest,
            attempt=step.attempts,
            resources=StepResources(**resources),
            events=uri_from_path(files.events),
            result=uri_from_path(files.result),
        )
    partial = files.manifest.with_suffix(".partial")
    partial.write_text(json.dumps(manifest.to_dict()))
    os.replace(partial, files.manifest)
    return files


CHAIN_TEMPLATE_FILE = "_chain_template.json"


def chain_template_write(step: StepRun, *, resources: Mapping[str, int]) -> Path:
    """Write the manifest of a pending step's first attempt without its inputs, for a polled target
    that runs a chain of steps in one job (``blocks.chain`` fills the inputs in from the result of
    the step before it on the cluster). Returns the template's path."""
    output_dir = step_output_dir(step)  # a pending step's first attempt writes here too
    output_dir.mkdir(parents=True, exist_ok=True)
    from blocks.manifest import StepResources

    manifest = StepManifest(
        run_id=str(step.run_id),
        step_id=step.node_id,
        block_id=step.block_id,
        block_version=step.block_version,
        params=step.params,
        inputs={},
        output_dir=uri_from_path(output_dir),
        attempt=1,
        resources=StepResources(**resources),
        events=uri_from_path(output_dir / EVENTS_FILE),
        result=uri_from_path(output_dir / RESULT_FILE),
    )
    path = output_dir / CHAIN_TEMPLATE_FILE
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest.to_dict()))
    os.replace(partial, path)
    return path
