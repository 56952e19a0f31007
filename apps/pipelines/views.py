import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.limits import LimitExceeded
from apps.pipelines.selectors import pipeline_get, pipeline_version_get, pipelines_visible_to
from apps.pipelines.services import PipelineInvalid, pipeline_delete
from apps.projects.access import can, pipeline_permissions, projects_of
from apps.projects.models import Role, Visibility
from apps.runs.selectors import runs_visible_to
from apps.runs.services import RunRejected, run_submit
from iliad_portal.broker import MESSAGE as BROKER_MESSAGE
from iliad_portal.broker import broker_available


@login_required
def pipeline_list(request):
    pipelines = pipelines_visible_to(user=request.user).select_related("owner", "project")
    return render(request, "pipelines/list.html", {"pipelines": pipelines})


@login_required
def pipeline_detail(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    version = pipeline_version_get(pipeline=pipeline)
    permissions = pipeline_permissions(user=request.user, pipelines=[pipeline])[pipeline.pk]
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline,
            "version": version,
            "document_json": json.dumps(version.document, indent=2) if version else "",
            "versions": pipeline.versions.all()[:20],
            "runs": runs_visible_to(user=request.user).filter(pipeline=pipeline).select_related("owner")[:20],
            "permissions": permissions,
            "share_links": pipeline.share_links.all()[:20] if permissions["edit"] else [],
            "projects": projects_of(user=request.user, roles=(Role.OWNER, Role.EDITOR)),
            "visibilities": Visibility.choices,
        },
    )


@login_required
@require_POST
def pipeline_run(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    if not can(request.user, "run", pipeline):
        raise PermissionDenied("you may see this pipeline but not run it")
    if not broker_available():
        messages.error(request, BROKER_MESSAGE)
        return redirect("pipeline-detail", pipeline_id=pipeline.pk)
    try:
        run = run_submit(pipeline=pipeline, user=request.user)
    except PipelineInvalid as error:
        for issue in error.issues:
            messages.error(request, f"{issue['code']} at {issue['pointer']}: {issue['message']}")
        return redirect("pipeline-detail", pipeline_id=pipeline.pk)
    except (RunRejected, LimitExceeded) as error:
        messages.error(request, str(error))
        return redirect("pipeline-detail", pipeline_id=pipeline.pk)
    return redirect("run-detail", run_id=run.pk)


@login_required
@require_POST
def pipeline_delete_page(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    if not can(request.user, "delete", pipeline):
        raise PermissionDenied("only the pipeline's owner or an owner of its project may delete it")
    pipeline_delete(pipeline=pipeline)
    messages.info(request, f"Deleted “{pipeline.name}”.")
    return redirect("pipeline-list")
