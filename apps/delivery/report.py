"""The processing report of a run: what ran, by whom, on what, with which parameters and inputs, how
long each step took, its figures and a summary of its log.

:func:`report_data` gathers the facts (plain values, also used by the RO-Crate and STAC writers),
:func:`report_html` renders them as one self-contained HTML page (styles inline, the diagram as SVG,
figures as ``data:`` images) and :func:`report_pdf` prints that page to PDF with WeasyPrint.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from apps.delivery.diagram import pipeline_svg
from apps.delivery.figures import figure_png
from apps.runs.models import Artifact, Run, RunEvent, StepRun
from blocks.manifest import ManifestError

logger = logging.getLogger(__name__)
PLOTLY_MEDIA_TYPE = "application/vnd.plotly.v1+json"
SOFTWARE = "Iliad Portal"
LOG_LINES_SHOWN = 20
FIGURE_MAX_BYTES = 5 * 1024 * 1024
"""Pictures larger than this are listed, not embedded, so a report stays a reasonable size."""
SOURCE_CHECKSUM_MAX_BYTES = 2 * 1024**3


def artifact_path(artifact: Artifact) -> Path | None:
    """The local file of an artifact in the artifact store, or None when it is gone or not local."""
    from apps.runs.store import artifact_path as stored_path
    from blocks.store import StoreError

    try:
        path = stored_path(artifact.uri)  # downloaded from the object store when only there
    except (ManifestError, ValueError, StoreError):
        return None
    return path if path is not None and path.is_file() else None


def deliverable_artifacts(run: Run) -> list[Artifact]:
    """What a run delivers: the outputs of its ``deliver.*`` steps; when it has none, the outputs of
    its last steps (those whose outputs feed no other step)."""
    artifacts = list(run.artifacts.select_related("step").order_by("step_id", "port"))
    chosen = [artifact for artifact in artifacts if artifact.step.block_id.startswith("deliver.")]
    if chosen:
        return chosen
    feeding = {str(edge.get("source")) for edge in run.snapshot.get("document", {}).get("edges") or []}
    return [artifact for artifact in artifacts if artifact.step.node_id not in feeding]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _source_file(source: Any) -> dict[str, Any] | None:
    """Size and checksum of a ``source`` parameter naming a file of the local data space."""
    if not isinstance(source, str) or "://" in source or not source.strip():
        return None
    root = Path(settings.ILIAD_DATA_DIR).resolve()
    try:
        path = (root / source.strip().lstrip("/")).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            return None
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    if size > SOURCE_CHECKSUM_MAX_BYTES:
        return {"size": size, "sha256": None}
    return {"size": size, "sha256": _sha256(path)}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _log_summary(run: Run) -> dict[str, Any]:
    events = list(RunEvent.objects.filter(run=run, kind=RunEvent.Kind.LOG).order_by("seq"))
    levels = Counter(str(event.payload.get("level", "info")) for event in events)
    notable = [e for e in events if str(e.payload.get("level", "info")) in ("warning", "error", "critical")]
    shown = (notable or events)[-LOG_LINES_SHOWN:]
    return {
        "total": len(events),
        "levels": dict(sorted(levels.items())),
        "lines": [
            {
                "time": event.created_at.isoformat(timespec="seconds"),
                "node": event.node_id,
                "level": event.payload.get("level", "info"),
                "message": str(event.payload.get("message", "")),
            }
            for event in shown
        ],
    }


def _figure(artifact: Artifact) -> dict[str, Any]:
    figure = {
        "node": artifact.step.node_id,
        "port": artifact.port,
        "type": artifact.type,
        "media_type": artifact.media_type,
        "data_uri": None,
        "redrawn": False,
        "not_drawn": [],
        "note": "",
    }
    path = artifact_path(artifact)
    if artifact.media_type in ("image/png", "image/jpeg", "image/svg+xml") and path is not None:
        if artifact.size <= FIGURE_MAX_BYTES:
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            figure["data_uri"] = f"data:{artifact.media_type};base64,{encoded}"
    elif artifact.media_type == PLOTLY_MEDIA_TYPE and path is not None:
        if artifact.size > FIGURE_MAX_BYTES * 4:
            figure["note"] = "too large to draw in the report"
            return figure
        try:
            drawn = figure_png(path)
        except (OSError, ValueError, TypeError, KeyError) as error:  # a figure the drawing does not know
            logger.warning("figure %s of run %s not drawn: %s", artifact.pk, artifact.run_id, error)
            figure["note"] = "could not be drawn in the report"
            return figure
        figure["not_drawn"] = drawn["not_drawn"]
        figure["title"] = drawn["title"]
        if drawn["png"] is not None:
            figure["data_uri"] = "data:image/png;base64," + base64.b64encode(drawn["png"]).decode("ascii")
            figure["redrawn"] = True
    return figure


def report_data(run: Run) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-compatible values."""
    blocks = run.snapshot.get("blocks", {})
    document = run.snapshot.get("document", {})
    steps = list(StepRun.objects.filter(run=run).order_by("id"))
    artifacts = list(run.artifacts.select_related("step").order_by("id"))
    deliverable_ids = {artifact.pk for artifact in deliverable_artifacts(run)}
    by_step: dict[int, list[Artifact]] = {}
    for artifact in artifacts:
        by_step.setdefault(artifact.step_id, []).append(artifact)
    step_rows = []
    inputs = []
    for step in steps:
        spec = blocks.get(f"{step.block_id}@{step.block_version}", {})
        outputs = [
            {
                "id": artifact.pk,
                "port": artifact.port,
                "type": artifact.type,
                "media_type": artifact.media_type,
                "sha256": artifact.sha256,
                "size": artifact.size,
                "filename": artifact.filename,
                "deliverable": artifact.pk in deliverable_ids,
            }
            for artifact in by_step.get(step.pk, [])
        ]
        step_rows.append(
            {
                "node": step.node_id,
                "block_id": step.block_id,
                "block_version": step.block_version,
                "title": spec.get("title", step.block_id),
                "category": spec.get("category", ""),
                "params": step.params,
                "state": step.state,
                "attempts": step.attempts,
                "worker": step.worker,
                "reused": step.cached_from_id is not None,
                "started_at": step.started_at.isoformat(timespec="seconds") if step.started_at else None,
                "finished_at": step.finished_at.isoformat(timespec="seconds") if step.finished_at else None,
                "duration_s": _seconds(step.started_at, step.finished_at),
                "error": {"type": step.error.get("type"), "message": step.error.get("message")}
                if step.error
                else None,
                "outputs": outputs,
            }
        )
        if spec.get("category") == "data" or step.block_id.startswith("data."):
            source = step.params.get("source")
            inputs.append(
                {
                    "node": step.node_id,
                    "block": f"{step.block_id}@{step.block_version}",
                    "source": source,
                    "file": _source_file(source),
                    "outputs": outputs,
                }
            )
    states = {step.node_id: step.state for step in steps}
    titles = {row["node"]: row["title"] for row in step_rows}
    return {
        "run": {
            "id": run.pk,
            "state": run.state,
            "target": run.target,
            "cache": run.cache,
            "owner": run.owner.get_username(),
            "owner_name": run.owner.get_full_name() or run.owner.get_username(),
            "pipeline_id": run.pipeline_id,
            "pipeline_name": run.pipeline_name,
            "pipeline_version": run.pipeline_version,
            "created_at": run.created_at.isoformat(timespec="seconds"),
            "started_at": run.started_at.isoformat(timespec="seconds") if run.started_at else None,
            "finished_at": run.finished_at.isoformat(timespec="seconds") if run.finished_at else None,
            "duration_s": _seconds(run.started_at or run.created_at, run.finished_at),
        },
        "software": {"name": SOFTWARE, "version": getattr(settings, "ILIAD_VERSION", "")},
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "steps": step_rows,
        "inputs": inputs,
        "compute_targets": sorted({f"{run.target} on {s.worker}" for s in steps if s.worker}) or [run.target],
        "figures": [
            _figure(a)
            for a in artifacts
            if a.type in ("image", "figure") or a.media_type.startswith("image/")
        ],
        "log": _log_summary(run),
        "diagram_svg": pipeline_svg(document, titles=titles, states=states),
        "document": document,
    }


def report_html(run: Run, data: dict[str, Any] | None = None) -> str:
    """The report as one self-contained HTML document."""
    return render_to_string("delivery/report.html", {"report": data or report_data(run)})


def report_pdf(html: str) -> bytes:
    """``html`` printed to PDF (A4) by WeasyPrint; nothing is fetched from the network."""
    # Imported here: pango and its fonts load in about a second, only when a PDF is made.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=["data"])).write_pdf()
