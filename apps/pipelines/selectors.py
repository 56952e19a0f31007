"""Reads for pipelines. Every read is scoped to what the asking user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.pipelines.models import Pipeline, PipelineVersion


def pipelines_visible_to(*, user) -> QuerySet[Pipeline]:
    return Pipeline.objects.filter(owner=user)


def pipeline_get(*, user, pipeline_id: int) -> Pipeline | None:
    """The pipeline if ``user`` may see it, else None (callers answer 404, never 403, to hide it)."""
    return pipelines_visible_to(user=user).filter(pk=pipeline_id).first()


def pipeline_version_get(*, pipeline: Pipeline, number: int | None = None) -> PipelineVersion | None:
    """A version of the pipeline; the latest when ``number`` is None."""
    return pipeline.versions.filter(number=number or pipeline.latest_version).first()
