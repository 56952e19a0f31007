"""The visual pipeline editor: thin views that render the page and embed what the island needs.

The editor itself is a React island (frontend/, built into static/editor/); it reads the catalog,
the compute targets and the pipeline's latest document from ``json_script`` elements and talks to
the REST API for validation, saving, versions, templates and runs.
"""

from __future__ import annotations

import re
from typing import Any

from csp.constants import UNSAFE_EVAL
from csp.decorators import csp_update
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie

from apps.catalog.selectors import catalog_specs
from apps.catalog.templatetags.portal import markdown
from apps.pipelines.selectors import pipeline_get, pipeline_version_get
from apps.projects.access import can
from blocks.semver import semver_key
from blocks.spec import CATEGORIES

# The parameter forms check values with Ajv (@rjsf/validator-ajv8), which compiles each block's JSON
# Schema into a function with `new Function`: the editor pages allow eval, no other page does.
editor_policy = csp_update({"script-src": [UNSAFE_EVAL]})


def _editor_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """Every available block version's spec, with its markdown description rendered and sanitised."""
    return {
        block_id: {version: {**spec, "description_html": str(markdown(spec.get("description", "")))}
                   for version, spec in versions.items()}
        for block_id, versions in catalog_specs().items()
    }


def _target_names(user) -> list[str]:
    """The compute targets ``user`` may run on, the default first (a fresh installation: its Celery
    queue, also before the data migration's row exists)."""
    from apps.compute.selectors import default_target_name, targets_usable_by

    default = default_target_name()
    names = list(targets_usable_by(user=user).order_by("name").values_list("name", flat=True))
    if default in names or not names:
        names = [default] + [name for name in names if name != default]
    return names


def _render_editor(request, *, pipeline=None, document=None, template: str = "", read_only: bool = False):
    config = {
        # A viewer's editor: it follows the live document and comments, and changes nothing (the
        # shared document's server drops a viewer's updates, the API refuses their saves).
        "readOnly": read_only,
        "pipeline": (
            {
                "id": pipeline.pk,
                "name": pipeline.name,
                "description": pipeline.description,
                "version": pipeline.latest_version,
            }
            if pipeline is not None
            else None
        ),
        "template": template,
        # Live co-editing (apps/collab): y-websocket appends the pipeline id to this URL.
        "collab": {
            "url": "/ws/collab/pipelines",
            "user": {"id": request.user.pk, "name": request.user.get_username()},
        },
        "targets": _target_names(request.user),
        # Delivery data spaces a run may target: [{"id", "name"}], once that feature lands.
        "data_spaces": [],
        "categories": list(CATEGORIES),
        "urls": {
            "pipelines": reverse("api-pipelines"),
            "pipeline": reverse("api-pipeline-detail", args=[0]).replace("/0/", "/{id}/"),
            "versions": reverse("api-pipeline-versions", args=[0]).replace("/0/", "/{id}/"),
            "validate": reverse("api-pipeline-validate"),
            "runs": reverse("api-pipeline-runs", args=[0]).replace("/0/", "/{id}/"),
            "run_page": reverse("run-detail", args=[0]).replace("/0/", "/{id}/"),
            "edit_page": reverse("pipeline-edit", args=[0]).replace("/0/", "/{id}/"),
            "new_page": reverse("pipeline-new"),
            "templates": reverse("api-templates"),
            "comments": reverse("api-pipeline-comments", args=[0]).replace("/0/", "/{id}/"),
        },
    }
    return render(
        request,
        "pipelines/editor.html",
        {
            "pipeline": pipeline,
            "editor_config": config,
            "editor_catalog": _editor_catalog(),
            "editor_document": document,
        },
    )


@login_required
@ensure_csrf_cookie
@editor_policy
def pipeline_new(request):
    """An empty editor; ``?template=<slug>`` starts from a template of the gallery, ``?block=<id>``
    from that block alone (its latest version, default parameters)."""
    return _render_editor(
        request,
        template=request.GET.get("template", "").strip()[:200],
        document=_single_block_document(request.GET.get("block", "").strip()[:200]),
    )


def _single_block_document(block_id: str) -> dict[str, Any] | None:
    """A pipeline document holding one node of the latest version of ``block_id``; None for an
    unknown or empty id (the editor then starts empty)."""
    versions = catalog_specs().get(block_id) if block_id else None
    if not versions:
        return None
    version = max(versions, key=semver_key)
    name = re.sub(r"[^A-Za-z0-9_-]", "", block_id.rsplit(".", 1)[-1])[:40]
    node = {"id": name if name[:1].isalpha() else "step", "block": block_id, "version": version,
            "params": {}, "position": {"x": 80, "y": 80}}
    return {"format": "iliad.pipeline", "version": 1, "nodes": [node], "edges": []}


@login_required
@ensure_csrf_cookie
@editor_policy
def pipeline_edit(request, pipeline_id: int):
    """The editor on the latest saved version of a pipeline (404 for one the user may not see). Who
    may only see it (a viewer) gets it read-only: it follows the others' live changes and comments."""
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    version = pipeline_version_get(pipeline=pipeline)
    return _render_editor(
        request,
        pipeline=pipeline,
        document=version.document if version else None,
        read_only=not can(request.user, "edit", pipeline),
    )
