import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.limits import LimitExceeded
from apps.pipelines.selectors import pipeline_get, pipeline_version_get, pipelines_visible_to
from apps.pipelines.services import PipelineInvalid
from apps.runs.services import RunRejected, run_submit


@login_required
def pipeline_list(request):
    return render(request, "pipelines/list.html", {"pipelines": pipelines_visible_to(user=request.user)})


@login_required
def pipeline_detail(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    version = pipeline_version_get(pipeline=pipeline)
    return render(
        request,
        "pipelines/detail.html",
        {
            "pipeline": pipeline,
            "version": version,
            "document_json": json.dumps(version.document, indent=2) if version else "",
            "versions": pipeline.versions.all()[:20],
            "runs": pipeline.runs.filter(owner=request.user)[:20],
        },
    )


@login_required
@require_POST
def pipeline_run(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
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
