"""Reads for pipelines. Every read is scoped to what the asking user may see."""

from __future__ import annotations

from apps.pipelines.models import Pipeline, PipelineVersion
from apps.projects.access import pipelines_changeable_by, pipelines_visible_to

__all__ = ["pipeline_get", "pipeline_version_get", "pipelines_changeable_by", "pipelines_visible_to"]


def pipeline_get(*, user, pipeline_id: int) -> Pipeline | None:
    """The pipeline if ``user`` may see it, else None (callers answer 404, never 403, to hide it).
    Whether they may also change it is ``apps.projects.access.can``'s question (403 when not)."""
    return pipelines_visible_to(user=user).select_related("owner", "project").filter(pk=pipeline_id).first()


def pipeline_version_get(*, pipeline: Pipeline, number: int | None = None) -> PipelineVersion | None:
    """A version of the pipeline; the latest when ``number`` is None."""
    return pipeline.versions.filter(number=number or pipeline.latest_version).first()
