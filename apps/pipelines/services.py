"""Writes for pipelines: create, update (a changed document makes a new version), delete."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from apps.accounts.limits import check_pipeline_allowed
from apps.catalog.selectors import catalog_specs
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.pipelines.sources import describe_source
from engine import Limits, validate_document


class PipelineInvalid(Exception):
    """The document has validation issues; ``issues`` holds them as dictionaries."""

    def __init__(self, issues: list[dict[str, Any]]) -> None:
        super().__init__(f"pipeline document has {len(issues)} problem(s)")
        self.issues = issues


def pipeline_document_issues(*, document: Any, catalog: dict | None = None) -> list[dict[str, Any]]:
    """Every validation issue of ``document`` against ``catalog`` (default: the runnable catalog).

    Units and physical quantities are checked along the wires from what the data-space files named
    by source parameters hold (read lazily, attributes only, cached; URLs are not fetched).
    """
    limits = Limits(max_bytes=settings.ILIAD_MAX_PIPELINE_BYTES)
    specs = catalog if catalog is not None else catalog_specs()
    issues = validate_document(document, specs, limits=limits, describe_source=describe_source)
    return [issue.to_dict() for issue in issues]


def _require_valid(document: Any) -> None:
    issues = pipeline_document_issues(document=document)
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
    _require_valid(document)
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
) -> Pipeline:
    """Change name/description; a document that differs from the latest version becomes a new version."""
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    if name is not None:
        pipeline.name = name
    if description is not None:
        pipeline.description = description
    if document is not None:
        _require_valid(document)
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
    pipeline.save()
    return pipeline


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline) -> None:
    """Delete a pipeline and its versions; its runs keep their frozen snapshot."""
    pipeline.delete()
