"""Writes for deliveries: request one, start those waiting for a run that finished, attempt one (with
retries decided here, scheduled by the task), deliver again, remember a user's choice.

A delivery writes ``<folder>/<pipeline name>-run-<id>/`` in its space::

    deliverables/<step>-<file>     the outputs of deliver.* steps (else of the last steps)
    report/report.html, .pdf       the processing report
    pipeline.json                  the pipeline document the run froze
    provenance.json                W3C PROV (PROV-JSON)
    collection.json, items/*.json  STAC: one Item per deliverable in a Collection per run
    ro-crate-metadata.json         Workflow Run RO-Crate describing all of the above

Attempts are claimed with a conditional UPDATE, so a task delivered twice writes once. Outputs stay in
the artifact store whatever happens; a failed delivery can be tried again at any time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.dataspaces.connectors import ConnectorError, clean_path, connector_for
from apps.dataspaces.models import DataSpace
from apps.delivery.models import DELIVERY_PENDING, Delivery, DeliveryState, PipelineDeliveryChoice
from apps.delivery.provenance import CRATE_METADATA, PROV_FILE, WORKFLOW_FILE, prov_document, write_crate
from apps.delivery.report import artifact_path, deliverable_artifacts, report_data, report_html, report_pdf
from apps.delivery.stac import item_id, stac_collection, stac_item
from apps.runs.events import events_append
from apps.runs.models import Run, RunState

logger = logging.getLogger(__name__)


WRITABLE_KINDS = ("local", "s3", "webdav")


class DeliveryRejected(Exception):
    """A delivery request that cannot be accepted; ``field`` names the bad input."""

    def __init__(self, message: str, *, field: str = "detail") -> None:
        super().__init__(message)
        self.field = field


# ---- choosing a space ----------------------------------------------------------------------------


def spaces_writable_by(*, user):
    """The spaces ``user`` may deliver to (``apps.dataspaces.selectors.spaces_writable_by``) whose
    kind can be written and that are not configured read-only."""
    from apps.dataspaces.selectors import spaces_writable_by as writable

    return writable(user=user).filter(
        Q(kind__in=WRITABLE_KINDS), ~Q(config__has_key="read_only") | ~Q(config__read_only=True))


def _clean_folder(space: DataSpace, folder: str) -> str:
    try:
        return clean_path(folder or "", space=space.name)
    except ConnectorError as error:
        raise DeliveryRejected(str(error), field="folder") from error


def run_folder_name(run: Run) -> str:
    """``<pipeline name>-run-<id>``, the name made safe for every kind of space."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", run.pipeline_name).strip("-._") or "pipeline"
    return f"{name[:80]}-run-{run.pk}"


def _event(run_id: int, level: str, message: str, delivery: Delivery) -> None:
    events_append(
        run_id=run_id,
        events=[
            (
                "log",
                "",
                {
                    "level": level,
                    "message": message,
                    "delivery": {"id": delivery.pk, "state": delivery.state},
                },
            )
        ],
    )


def _enqueue(delivery_id: int, countdown: float = 0) -> None:
    from apps.delivery.tasks import deliver

    transaction.on_commit(lambda: deliver.apply_async((delivery_id,), countdown=countdown))


@transaction.atomic
def delivery_request(
    *, run: Run, user, space: DataSpace, folder: str = "", remember: bool = True
) -> Delivery:
    """Ask for ``run``'s results to be delivered to ``folder`` of ``space``. Queued at once when the
    run already succeeded, skipped when it failed or was cancelled, otherwise waiting for it to end.
    With ``remember`` the choice is offered again for the run's pipeline. Raises DeliveryRejected
    (``field`` "space" or "folder") when the user may not write the space or the folder is unsafe."""
    if not spaces_writable_by(user=user).filter(pk=space.pk).exists():
        raise DeliveryRejected(f"you may not deliver to data space {space.name!r}", field="space")
    folder = _clean_folder(space, folder)
    run = Run.objects.select_for_update().get(pk=run.pk)
    delivery = Delivery.objects.create(run=run, space=space, folder=folder, requested_by=user)
    if remember and run.pipeline_id:
        PipelineDeliveryChoice.objects.update_or_create(
            pipeline_id=run.pipeline_id, user=user, defaults={"space": space, "folder": folder}
        )
    _start(delivery, run.state)
    return delivery


def _start(delivery: Delivery, run_state: str) -> None:
    if run_state == RunState.SUCCEEDED:
        delivery.state = DeliveryState.QUEUED
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["state", "next_attempt_at"])
        _event(
            delivery.run_id,
            "info",
            f"delivery to {delivery.space.name}:{delivery.folder or '/'} queued",
            delivery,
        )
        _enqueue(delivery.pk)
    elif run_state in (RunState.FAILED, RunState.CANCELLED):
        delivery.state = DeliveryState.SKIPPED
        delivery.finished_at = timezone.now()
        delivery.save(update_fields=["state", "finished_at"])


@transaction.atomic
def deliveries_start(*, run_id: int, state: str) -> int:
    """Start the deliveries waiting for run ``run_id``, which just ended in ``state``; returns how many
    were queued."""
    waiting = list(
        Delivery.objects.select_for_update()
        .select_related("space")
        .filter(run_id=run_id, state=DeliveryState.WAITING)
    )
    for delivery in waiting:
        _start(delivery, state)
    return len(waiting) if state == RunState.SUCCEEDED else 0


@transaction.atomic
def delivery_again(*, delivery: Delivery) -> Delivery:
    """Queue a failed, finished or waiting-to-retry delivery again now, with a fresh count of attempts.
    Raises DeliveryRejected when it is already queued or delivering, or its run has not succeeded."""
    delivery = Delivery.objects.select_for_update().select_related("run", "space").get(pk=delivery.pk)
    if delivery.run.state != RunState.SUCCEEDED:
        raise DeliveryRejected(f"run {delivery.run_id} has not succeeded; there is nothing to deliver")
    if delivery.state in (DeliveryState.QUEUED, DeliveryState.DELIVERING):
        raise DeliveryRejected(f"delivery {delivery.pk} is already {delivery.state}")
    delivery.state = DeliveryState.QUEUED
    delivery.attempts = 0
    delivery.error = ""
    delivery.next_attempt_at = timezone.now()
    delivery.finished_at = None
    delivery.save(update_fields=["state", "attempts", "error", "next_attempt_at", "finished_at"])
    _event(
        delivery.run_id,
        "info",
        f"delivery to {delivery.space.name}:{delivery.folder or '/'} queued again",
        delivery,
    )
    _enqueue(delivery.pk)
    return delivery


def deliveries_resume_due(*, grace: timedelta, stalled_after: timedelta) -> int:
    """Periodic: send again the deliveries whose task seems lost (queued or due for a retry more than
    ``grace`` ago), and put back those left ``delivering`` for longer than ``stalled_after`` (their
    worker died mid-way: what arrived is in ``entries`` and is not sent again). The claim in
    :func:`delivery_attempt` makes a duplicate harmless. Returns how many were sent."""
    now = timezone.now()
    Delivery.objects.filter(state=DeliveryState.DELIVERING, started_at__lt=now - stalled_after).update(
        state=DeliveryState.RETRYING, next_attempt_at=now - grace - timedelta(seconds=1),
        error="the worker delivering it stopped; trying again",
    )
    due = list(
        Delivery.objects.filter(state__in=DELIVERY_PENDING, next_attempt_at__lt=now - grace).values_list(
            "pk", flat=True
        )
    )
    for delivery_id in due:
        _enqueue(delivery_id)
    return len(due)


# ---- the package -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageFile:
    """One file of a delivery: ``path`` inside the run's folder, ``local`` where it is now."""

    path: str
    local: Path
    media_type: str
    kind: str
    size: int
    sha256: str
    name: str


def _file(path: str, local: Path, media_type: str, kind: str, name: str = "") -> PackageFile:
    digest = hashlib.sha256()
    with local.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return PackageFile(
        path,
        local,
        media_type,
        kind,
        local.stat().st_size,
        digest.hexdigest(),
        name or path.rsplit("/", 1)[-1],
    )


class MissingOutput(Exception):
    """An output to deliver is no longer in the artifact store."""


def build_package(run: Run, staging: Path) -> list[PackageFile]:
    """Write the report, provenance, STAC and RO-Crate of ``run`` into ``staging`` and return every
    file of the delivery (deliverables stay where they are in the artifact store). Raises
    MissingOutput when a deliverable's file is gone."""
    from apps.delivery.extent import file_extent

    data = report_data(run)
    now = timezone.now()
    software = {data["software"]["name"]: data["software"]["version"] or "unversioned"}
    collection_id = f"iliad-run-{run.pk}"
    files: list[PackageFile] = []
    deliverables = []
    for artifact in deliverable_artifacts(run):
        local = artifact_path(artifact)
        if local is None:
            raise MissingOutput(
                f"output {artifact.port} of step {artifact.step.node_id} is no longer in the artifact store"
            )
        deliverables.append(
            (
                artifact,
                PackageFile(
                    f"deliverables/{artifact.filename}",
                    local,
                    artifact.media_type,
                    "deliverable",
                    artifact.size,
                    artifact.sha256,
                    artifact.filename,
                ),
            )
        )
    files += [file for _, file in deliverables]

    (staging / "report").mkdir(parents=True, exist_ok=True)
    html = report_html(run, data)
    (staging / "report" / "report.html").write_text(html, encoding="utf-8")
    (staging / "report" / "report.pdf").write_bytes(report_pdf(html))
    files.append(_file("report/report.html", staging / "report" / "report.html", "text/html", "report"))
    files.append(_file("report/report.pdf", staging / "report" / "report.pdf", "application/pdf", "report"))
    (staging / WORKFLOW_FILE).write_text(json.dumps(data["document"], indent=2), encoding="utf-8")
    files.append(_file(WORKFLOW_FILE, staging / WORKFLOW_FILE, "application/json", "pipeline"))

    prov = prov_document(
        data,
        public_url=settings.ILIAD_PUBLIC_URL,
        files={artifact.pk: file.path for artifact, file in deliverables},
    )
    (staging / PROV_FILE).write_text(json.dumps(prov, indent=2), encoding="utf-8")
    files.append(_file(PROV_FILE, staging / PROV_FILE, "application/json", "provenance"))

    (staging / "items").mkdir(exist_ok=True)
    items, item_hrefs = [], []
    steps_by_node = {step["node"]: step for step in data["steps"]}
    for artifact, file in deliverables:
        extent = file_extent(file.local, artifact.media_type)
        step = steps_by_node[artifact.step.node_id]
        lineage = (
            f"Output {artifact.port} of step {step['node']} ({step['block_id']}@{step['block_version']}) "
            f"of run {run.pk} of the pipeline {run.pipeline_name} v{run.pipeline_version}."
        )
        item = stac_item(
            name=file.name,
            href=f"../{file.path}",
            media_type=file.media_type,
            size=file.size,
            sha256=file.sha256,
            bbox=extent.bbox,
            start=extent.start,
            end=extent.end,
            processed_at=run.finished_at or now,
            software=software,
            lineage=lineage,
            collection_id=collection_id,
            title=f"{step['node']} · {artifact.port}",
        )
        path = f"items/{item_id(file.name)}.json"
        (staging / path).write_text(json.dumps(item, indent=2), encoding="utf-8")
        files.append(_file(path, staging / path, "application/geo+json", "stac"))
        items.append(item)
        item_hrefs.append(f"./{path}")
    collection = stac_collection(
        collection_id=collection_id,
        title=f"Run {run.pk} of {run.pipeline_name}",
        description=f"Results of run {run.pk} of the pipeline {run.pipeline_name} version "
        f"{run.pipeline_version}, delivered by {data['software']['name']}.",
        items=items,
        item_hrefs=item_hrefs,
        processed_at=run.finished_at or now,
        software=software,
        extra_assets={
            "report": {
                "href": "./report/report.html",
                "type": "text/html",
                "roles": ["metadata"],
                "title": "Processing report",
            },
            "report-pdf": {
                "href": "./report/report.pdf",
                "type": "application/pdf",
                "roles": ["metadata"],
                "title": "Processing report (PDF)",
            },
            "provenance": {
                "href": f"./{PROV_FILE}",
                "type": "application/json",
                "roles": ["metadata"],
                "title": "W3C PROV (PROV-JSON)",
            },
            "ro-crate": {
                "href": f"./{CRATE_METADATA}",
                "type": "application/ld+json",
                "roles": ["metadata"],
                "title": "Workflow Run RO-Crate",
            },
        },
    )
    (staging / "collection.json").write_text(json.dumps(collection, indent=2), encoding="utf-8")
    files.append(_file("collection.json", staging / "collection.json", "application/json", "stac"))

    described = [
        {
            "path": file.path,
            "name": file.name,
            "media_type": file.media_type,
            "size": file.size,
            "sha256": file.sha256,
            "result": file.kind == "deliverable",
        }
        for file in files
        if file.path != WORKFLOW_FILE
    ]
    write_crate(staging, data, files=described, public_url=settings.ILIAD_PUBLIC_URL)
    files.append(_file(CRATE_METADATA, staging / CRATE_METADATA, "application/ld+json", "ro-crate"))
    return files


# ---- one attempt ----------------------------------------------------------------------------------


def retry_delay_s(attempts: int) -> float:
    """Seconds to wait after failed attempt number ``attempts``: doubling from
    ILIAD_DELIVERY_RETRY_S, at most ILIAD_DELIVERY_RETRY_MAX_S."""
    return float(
        min(settings.ILIAD_DELIVERY_RETRY_S * 2 ** max(attempts - 1, 0), settings.ILIAD_DELIVERY_RETRY_MAX_S)
    )


@dataclass(frozen=True)
class Outcome:
    state: str
    retry_in: float | None = None


def _claim(delivery_id: int) -> Delivery | None:
    now = timezone.now()
    claimed = Delivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)),
        pk=delivery_id,
        state__in=DELIVERY_PENDING,
    ).update(state=DeliveryState.DELIVERING, attempts=F("attempts") + 1, started_at=now, error="")
    if not claimed:
        return None
    return Delivery.objects.select_related("run", "run__owner", "space").get(pk=delivery_id)


def delivery_attempt(*, delivery_id: int) -> Outcome | None:
    """Try once to deliver; None when another attempt has it or it is not due. A transient failure
    (server down, space full, time-out) leaves it ``retrying`` with ``retry_in`` seconds to wait,
    until ILIAD_DELIVERY_ATTEMPTS attempts failed; a permanent one (refused, read-only, missing
    output) or the last attempt fails it. Each outcome is told on the run's log."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    run = delivery.run
    base = "/".join(part for part in (delivery.folder, run_folder_name(run)) if part)
    done = {entry["path"]: entry["sha256"] for entry in delivery.entries}
    staging = Path(tempfile.mkdtemp(prefix=f"delivery-{delivery.pk}-", dir=settings.ILIAD_HOME))
    try:
        connector = connector_for(delivery.space)
        for file in build_package(run, staging):
            target = f"{base}/{file.path}"
            if done.get(target) == file.sha256:
                continue  # arrived in an earlier attempt
            connector.put(target, file.local)
            done[target] = file.sha256
            delivery.entries = [entry for entry in delivery.entries if entry["path"] != target] + [
                {"path": target, "size": file.size, "sha256": file.sha256, "kind": file.kind}
            ]
            Delivery.objects.filter(pk=delivery.pk).update(entries=delivery.entries, target_path=base)
    except ConnectorError as error:
        permanent = error.permanent or delivery.attempts >= settings.ILIAD_DELIVERY_ATTEMPTS
        return _failed(delivery, str(error), permanent=permanent)
    except MissingOutput as error:
        return _failed(delivery, str(error), permanent=True)
    except ValueError as error:  # e.g. credentials that cannot be decrypted
        return _failed(delivery, f"data space {delivery.space.name!r}: {error}", permanent=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with transaction.atomic():
        delivery.state = DeliveryState.DELIVERED
        delivery.finished_at = timezone.now()
        delivery.target_path = base
        delivery.next_attempt_at = None
        delivery.save(update_fields=["state", "finished_at", "target_path", "next_attempt_at", "entries"])
        _event(
            run.pk,
            "info",
            f"delivered {len(delivery.entries)} files to {delivery.space.name}:{base}",
            delivery,
        )
    return Outcome(DeliveryState.DELIVERED)


def _failed(delivery: Delivery, message: str, *, permanent: bool) -> Outcome:
    now = timezone.now()
    with transaction.atomic():
        delivery.error = message[:2000]
        if permanent:
            delivery.state = DeliveryState.FAILED
            delivery.finished_at = now
            delivery.next_attempt_at = None
            retry_in = None
            text = (
                f"delivery to {delivery.space.name} failed after {delivery.attempts} "
                f"attempt{'s' if delivery.attempts != 1 else ''}: {message}. The results are kept in the "
                "portal; deliver again when the space is ready."
            )
            level = "error"
        else:
            retry_in = retry_delay_s(delivery.attempts)
            delivery.state = DeliveryState.RETRYING
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
            text = (
                f"delivery to {delivery.space.name} attempt {delivery.attempts} failed: {message}; "
                f"trying again in {retry_in:.0f} s"
            )
            level = "warning"
        delivery.save(update_fields=["state", "error", "finished_at", "next_attempt_at"])
        _event(delivery.run_id, level, text, delivery)
    logger.info("delivery %s: %s", delivery.pk, text)
    return Outcome(delivery.state, retry_in)


def delivery_target(*, user, space: str, folder: str = "") -> tuple[DataSpace, str]:
    """The space named ``space`` that ``user`` may deliver to, and ``folder`` made safe, for a delivery
    asked for with a run's submission (checked before the run is created). Raises DeliveryRejected
    naming ``space`` or ``folder``."""
    chosen = spaces_writable_by(user=user).filter(name=space).first()
    if chosen is None:
        raise DeliveryRejected(f"no data space {space!r} that you may deliver to", field="space")
    return chosen, _clean_folder(chosen, folder)


def delivery_choice_get(*, pipeline, user) -> PipelineDeliveryChoice | None:
    return PipelineDeliveryChoice.objects.select_related("space").filter(pipeline=pipeline, user=user).first()


def delivery_choice_set(*, pipeline, user, space: DataSpace, folder: str) -> PipelineDeliveryChoice:
    """Remember where ``user`` delivers ``pipeline``'s results (checked like a delivery request)."""
    if not spaces_writable_by(user=user).filter(pk=space.pk).exists():
        raise DeliveryRejected(f"you may not deliver to data space {space.name!r}", field="space")
    folder = _clean_folder(space, folder)
    choice, _ = PipelineDeliveryChoice.objects.update_or_create(
        pipeline=pipeline, user=user, defaults={"space": space, "folder": folder}
    )
    return choice


def delivery_summary(delivery: Delivery | None) -> dict[str, Any] | None:
    """What the run page and API show of a delivery."""
    if delivery is None:
        return None
    return {
        "id": delivery.pk,
        "state": delivery.state,
        "state_label": delivery.get_state_display(),
        "space": delivery.space.name,
        "space_title": delivery.space.title,
        "folder": delivery.folder,
        "target_path": delivery.target_path,
        "attempts": delivery.attempts,
        "error": delivery.error,
        "files": len(delivery.entries),
        "created_at": delivery.created_at.isoformat(),
        "finished_at": delivery.finished_at.isoformat() if delivery.finished_at else None,
        "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
    }
