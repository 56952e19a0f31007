from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest
from django.shortcuts import render

from apps.projects.access import can
from apps.runs import store as artifact_store
from apps.runs.apis import run_detail_data
from apps.runs.comparison import result_pairs, step_differences, table_diff
from apps.runs.downloads import is_table, table_head
from apps.runs.models import Artifact
from apps.runs.presentation import graph_layout, step_order
from apps.runs.selectors import run_get, runs_visible_to
from blocks.store import StoreError


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
    graph = graph_layout(document)
    order = {node: index for index, node in enumerate(step_order(graph))}
    steps = sorted(data["steps"], key=lambda step: order.get(step["node"], len(order)))
    # Results in pipeline order, not in the order their steps happened to end.
    artifacts = sorted(data["artifacts"], key=lambda a: (order.get(a["node"], len(order)), a["port"]))
    states = {step["node"]: step["state"] for step in steps}
    for node in graph["nodes"]:
        node["state"] = states.get(node["id"], "pending")
    others = []
    if run.pipeline_id is not None:
        others = list(
            runs_visible_to(user=request.user).filter(pipeline_id=run.pipeline_id).exclude(pk=run.pk)[:20]
        )
    may_cancel = can(request.user, "cancel", run)
    pipeline = run.pipeline
    may_run = pipeline is not None and can(request.user, "run", pipeline)
    may_edit = pipeline is not None and can(request.user, "edit", pipeline)
    return render(
        request,
        "runs/detail.html",
        {
            "run": run, "data": data, "steps": steps, "graph": graph,
            "deliverables": [a for a in artifacts if a["deliverable"]],
            "intermediates": [a for a in artifacts if not a["deliverable"]],
            "may_cancel": may_cancel, "may_run": may_run, "may_edit": may_edit, "others": others,
        },  # fmt: skip
    )


COMPARED_TABLE_ROWS = 20


def _table_head(artifact: dict | None) -> dict | None:
    """The first rows of a table artifact (serialized), or None if it is no CSV or its file is gone."""
    if artifact is None or not is_table(artifact["media_type"]):
        return None
    row = Artifact.objects.filter(pk=artifact["id"]).first()
    try:
        path = artifact_store.served_artifact_path(row.uri) if row is not None else None
    except StoreError:  # an unreachable store shows the table as unavailable, not a 500
        return None
    return table_head(path, COMPARED_TABLE_ROWS) if path is not None else None


@login_required
def run_compare(request):
    """Two runs side by side: what differed in what ran, and their results next to each other."""
    try:
        ids = [int(request.GET[name]) for name in ("a", "b")]
    except (KeyError, ValueError):
        return HttpResponseBadRequest("Choose two runs: /runs/compare/?a=<run id>&b=<run id>, both numbers.")
    runs = [run_get(user=request.user, run_id=run_id) for run_id in ids]
    for run_id, run in zip(ids, runs, strict=True):
        if run is None:
            raise Http404(f"no run #{run_id} you may see")
    data = [run_detail_data(run) for run in runs]
    pairs = result_pairs(*data)
    for pair in pairs:
        heads = [_table_head(pair["a"]), _table_head(pair["b"])]
        pair["table"] = table_diff(*heads) if all(heads) else None
    return render(
        request,
        "runs/compare.html",
        {"a": runs[0], "b": runs[1], "data": data, "differences": step_differences(*data), "pairs": pairs,
         "rows_shown": COMPARED_TABLE_ROWS},
    )
