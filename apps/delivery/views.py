"""The processing report of a run, in the portal: HTML and PDF, for whoever may see the run."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse

from apps.delivery.report import report_html, report_pdf
from apps.runs.selectors import run_get


def _run(request, run_id: int):
    run = run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    return run


@login_required
def run_report(request, run_id: int):
    return HttpResponse(report_html(_run(request, run_id)))


@login_required
def run_report_pdf(request, run_id: int):
    run = _run(request, run_id)
    response = HttpResponse(report_pdf(report_html(run)), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="run-{run.pk}-report.pdf"'
    return response
