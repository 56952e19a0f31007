from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.runs.apis import run_detail_data
from apps.runs.selectors import run_get, runs_visible_to


@login_required
def run_list(request):
    return render(request, "runs/list.html", {"runs": runs_visible_to(user=request.user)[:100]})


@login_required
def run_detail(request, run_id: int):
    run = run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    data = run_detail_data(run)
    return render(request, "runs/detail.html", {"run": run, "data": data})
