"""Writes for pipelines: create, update (a changed document makes a new version), delete."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from apps.accounts.limits import check_pipeline_allowed
from apps.catalog.selectors import catalog_specs
from apps.collab.services import shared_document_take_version
from apps.pipelines.diff import document_diff
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.pipelines.sources import describe_source
from engine import EditorCheck, Limits, validate_document_for_editor


class PipelineInvalid(Exception):
    """The document has validation issues; ``issues`` holds them as dictionaries."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(f"pipeline document has {len(issues)} problem(s)")
        self.issues = issues


def pipeline_document_issues(
    *, document: Any, catalog: dict | None = None, user=None
) -> list[dict[str, Any]]:
    """Every validation issue of ``document`` against ``catalog`` (default: the runnable catalog).

    Units and physical quantities are checked along the wires from what the data-space files named
    by source parameters hold (read lazily, attributes only, cached; URLs are not fetched). With
    ``user``, a node's compute ``target`` must be one they may use (``node.unknown_target``: no such
    enabled target; ``node.target_forbidden``: not theirs to use).
    """
    return pipeline_document_check(document=document, catalog=catalog, user=user).issues


def pipeline_document_check(*, document: Any, catalog: dict | None = None, user=None) -> EditorCheck:
    """:func:`pipeline_document_issues` (as dictionaries), and what the editor offers where the data are
    known: the names each variable- or column-naming parameter can choose from, and the area and days
    of the data each node with area or time parameters works on (see :class:`engine.EditorCheck`)."""
    limits = Limits(max_bytes=settings.ILIAD_MAX_PIPELINE_BYTES)
    specs = catalog if catalog is not None else catalog_specs()
    check = validate_document_for_editor(document, specs, limits=limits, describe_source=describe_source)
    found = [issue.to_dict() for issue in check.issues]
    if user is not None and not found:
        found += _target_issues(document, user)
    return EditorCheck(found, check.choices, check.extents)


def _target_issues(document: dict[str, Any], user) -> list[dict[str, Any]]:
    """Issues of nodes naming a compute target ``user`` may not use (a valid document's)."""
    from apps.compute.models import ComputeTarget
    from apps.compute.selectors import DEFAULT_TARGET_NAME, targets_usable_by

    named = {
        index: node["target"] for index, node in enumerate(document["nodes"]) if node.get("target")
    }
    if not named:
        return []
    rows = dict(ComputeTarget.objects.filter(name__in=set(named.values())).values_list("name", "enabled"))
    usable = set(targets_usable_by(user=user).filter(name__in=list(rows)).values_list("name", flat=True))
    issues = []
    for index, target in named.items():
        node_id = document["nodes"][index]["id"]
        if target not in rows and target == DEFAULT_TARGET_NAME:
            continue  # a fresh installation's Celery queue, before its row exists
        if target not in rows or not rows[target]:
            code = "node.unknown_target"
            message = f"node {node_id!r} names no enabled compute target {target!r}"
        elif target not in usable:
            code = "node.target_forbidden"
            message = f"node {node_id!r}: you may not use compute target {target!r}"
        else:
            continue
        issues.append(
            {"code": code, "pointer": f"/nodes/{index}/target", "node": node_id, "port": None,
             "message": message, "details": {"target": target}}
        )
    return issues


class PipelineConflict(Exception):
    """A save was based on an older version than the latest: nothing was written. ``latest`` is the
    newest version, ``base`` the version the save started from, ``changes`` what happened since the
    base (``document_diff``) and ``yours`` how the refused document differs from the latest."""

    def __init__(self, *, base: int, latest: PipelineVersion, changes: dict, yours: dict) -> None:
        by = latest.created_by.username if latest.created_by else "someone"
        super().__init__(
            f"version {latest.number} was saved by {by} after your base version {base}; "
            f"review their changes and save again on top of version {latest.number}"
        )
        self.base = base
        self.latest = latest
        self.changes = changes
        self.yours = yours


def _require_valid(document: Any, user=None) -> None:
    issues = pipeline_document_issues(document=document, user=user)
    if issues:
        raise PipelineInvalid(issues)


@transaction.atomic
def pipeline_create(
    *, owner, name: str, document: Any, description: str = "", project=None, visibility: str = "private"
) -> Pipeline:
    """Create a pipeline with version 1; raises PipelineInvalid with every issue of the document,
    LimitExceeded when ``owner`` has as many pipelines as ``ILIAD_LIMIT_PIPELINES`` allows.
    ``project`` and ``visibility`` must have been checked by the caller
    (``apps.projects.services.project_for_pipeline`` and ``sharing_check``)."""
    _require_valid(document, owner)
    check_pipeline_allowed(user=owner)
    pipeline = Pipeline.objects.create(
        owner=owner,
        name=name,
        description=description,
        latest_version=1,
        project=project,
        visibility=visibility,
    )
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=owner)
    return pipeline


@transaction.atomic
def pipeline_update(
    *,
    pipeline: Pipeline,
    user,
    name: str | None = None,
    description: str | None = None,
    document: Any = None,
    message: str = "",
    base_version: int | None = None,
) -> Pipeline:
    """Change name/description; a document that differs from the latest version becomes a new version.

    ``base_version`` is the version the caller's document was edited from: when a newer version was
    saved since, nothing changes and PipelineConflict says who saved what (a document equal to the
    latest one is no conflict). None skips the check (scripts that mean to overwrite).
    A new version's changes are also replayed onto the pipeline's live shared document (apps.collab)
    once committed, so editors open on it see them.
    """
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if document is not None and base_version is not None and base_version != pipeline.latest_version:
        _refuse_stale(pipeline=pipeline, base_version=base_version, document=document)
    if name is not None:
        pipeline.name = name
    if description is not None:
        pipeline.description = description
    if document is not None:
        _require_valid(document, user)
        current = pipeline.versions.filter(number=pipeline.latest_version).values_list("document", flat=True)
        if not current or current[0] != document:
            pipeline.latest_version += 1
            PipelineVersion.objects.create(
                pipeline=pipeline,
                number=pipeline.latest_version,
                document=document,
                created_by=user,
                message=message,
            )
            previous = current[0] if current else None
            transaction.on_commit(
                lambda: shared_document_take_version(pipeline_id=pipeline.pk, old=previous, new=document)
            )
    pipeline.save()
    return pipeline


def _refuse_stale(*, pipeline: Pipeline, base_version: int, document: Any) -> None:
    versions = {
        version.number: version
        for version in pipeline.versions.select_related("created_by").filter(
            number__in=[base_version, pipeline.latest_version]
        )
    }
    latest = versions[pipeline.latest_version]
    if latest.document == document:
        return
    base = versions.get(base_version)
    raise PipelineConflict(
        base=base_version,
        latest=latest,
        changes=document_diff(base.document if base else {}, latest.document),
        yours=document_diff(latest.document, document),
    )


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline) -> None:
    """Delete a pipeline and its versions; its runs keep their frozen snapshot."""
    pipeline.delete()
