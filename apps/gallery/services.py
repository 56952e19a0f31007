"""Writes for the gallery: turning a template into a pipeline of one's own."""

from apps.gallery.selectors import PipelineTemplate
from apps.pipelines.models import Pipeline
from apps.pipelines.services import pipeline_create
from apps.projects.models import Visibility


def template_use(*, template: PipelineTemplate, owner, name: str = "") -> Pipeline:
    """Create a private pipeline of ``owner`` (in no project) from a template; raises PipelineInvalid
    if the catalog no longer fits it, LimitExceeded when ``owner`` has as many pipelines as
    ``ILIAD_LIMIT_PIPELINES`` allows."""
    return pipeline_create(
        owner=owner,
        name=name or template.title,
        description=f"From the template “{template.title}”. {template.summary}",
        document=template.document,
        visibility=Visibility.PRIVATE,
    )
