from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from apps.projects.access import can
from apps.runs.apis import run_detail_data
from apps.runs.presentation import graph_layout, step_order
from apps.runs.selectors import run_get, runs_visible_to


@login_required
def run_list(request):
    runs = runs_visible_to(user=request.user).select_related("owner")[:100]
    return render(request, "runs/list.html", {"runs": runs})


@login_required
def run_detail(request, run_id: int):
    run = run_get(user=request.user, run_id=run_id)
    if run is None:
        raise Http404("no such run")
    data = run_detail_data(run)
    document = (run.snapshot or {}).get("document") or {}
    order = {node: index for index, node in enumerate(step_order(document))}
    steps = sorted(data["steps"], key=lambda step: order.get(step["node"], len(order)))
    graph = graph_layout(document)
    states = {step["node"]: step["state"] for step in steps}
    for node in graph["nodes"]:
        node["state"] = states.get(node["id"], "pending")
    may_cancel = can(request.user, "cancel", run)
    pipeline = run.pipeline
    may_run = pipeline is not None and can(request.user, "run", pipeline)
    may_edit = pipeline is not None and can(request.user, "edit", pipeline)
    return render(
        request,
        "runs/detail.html",
        {
            "run": run, "data": data, "steps": steps, "graph": graph,
            "deliverables": [a for a in data["artifacts"] if a["deliverable"]],
            "intermediates": [a for a in data["artifacts"] if not a["deliverable"]],
            "may_cancel": may_cancel, "may_run": may_run, "may_edit": may_edit,
        },  # fmt: skip
    )
