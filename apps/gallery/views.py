from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.limits import LimitExceeded
from apps.gallery.selectors import template_get, templates_all
from apps.gallery.services import template_use
from apps.pipelines.services import PipelineInvalid


@login_required
def gallery(request):
    return render(request, "gallery/gallery.html", {"templates": templates_all()})


@login_required
@require_POST
def use_template(request, slug: str):
    template = template_get(slug=slug)
    if template is None:
        raise Http404("no such template")
    try:
        pipeline = template_use(template=template, owner=request.user)
    except PipelineInvalid as error:
        for issue in error.issues:
            messages.error(request, f"{issue['code']} at {issue['pointer']}: {issue['message']}")
        return redirect("gallery")
    except LimitExceeded as error:
        messages.error(request, str(error))
        return redirect("gallery")
    messages.info(request, f"Created “{pipeline.name}” from the template.")
    return redirect("pipeline-detail", pipeline_id=pipeline.pk)
