"""Pages of workshops: list and create, the workshop page (set-up for the facilitator, runs and
feedback prompts for everyone), the follow-me view for a projector and its state, join links, and
the outcome as a summary page, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.limits import LimitExceeded
from apps.feedback.models import Feedback
from apps.pipelines.selectors import pipeline_get, pipelines_visible_to
from apps.pipelines.services import PipelineInvalid
from apps.projects.access import projects_of
from apps.runs.models import RUN_FINISHED
from apps.runs.services import RunRejected
from apps.workshops.models import Workshop
from apps.workshops.selectors import (
    is_facilitator,
    workshop_get,
    workshop_outcome,
    workshop_people,
    workshop_pipelines,
    workshop_state,
    workshops_visible_to,
)
from apps.workshops.services import (
    JoinLinkGone,
    WorkshopInvalid,
    WorkshopRefused,
    agenda_item_add,
    agenda_item_start,
    decision_add,
    join_link_create,
    join_link_open,
    participant_add,
    pipeline_add,
    workshop_create,
    workshop_join,
    workshop_run_start,
)
from iliad_portal.broker import MESSAGE as BROKER_MESSAGE
from iliad_portal.broker import broker_available


def _workshop(request, workshop_id: int) -> Workshop:
    workshop = workshop_get(user=request.user, workshop_id=workshop_id)
    if workshop is None:
        raise Http404("no such workshop")
    return workshop


def _facilitated(request, workshop_id: int) -> Workshop:
    workshop = _workshop(request, workshop_id)
    if not is_facilitator(user=request.user, workshop=workshop):
        raise PermissionDenied("only the workshop's facilitator may do this")
    return workshop


def _whole_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@login_required
def workshop_list(request):
    if request.method == "POST":
        try:
            workshop = workshop_create(
                user=request.user,
                title=request.POST.get("title", ""),
                description=request.POST.get("description", ""),
                project_slug=request.POST.get("project", "").strip(),
            )
        except WorkshopInvalid as error:
            messages.error(request, str(error))
        else:
            return redirect("workshop-detail", workshop_id=workshop.pk)
    return render(
        request,
        "workshops/list.html",
        {
            "workshops": workshops_visible_to(user=request.user),
            "projects": projects_of(user=request.user),
        },
    )


@login_required
@require_safe
def workshop_detail(request, workshop_id: int):
    workshop = _workshop(request, workshop_id)
    facilitator = is_facilitator(user=request.user, workshop=workshop)
    entries = list(workshop.workshop_runs.select_related("run", "started_by"))
    given = set(
        Feedback.objects.filter(
            user=request.user, run_id__in=[entry.run_id for entry in entries]
        ).values_list("run_id", flat=True)
    )
    runs = [
        {"entry": entry, "finished": entry.run.state in RUN_FINISHED, "given": entry.run_id in given}
        for entry in entries
    ]
    context = {
        "workshop": workshop,
        "facilitator": facilitator,
        "agenda": workshop.agenda.all(),
        "people": workshop_people(workshop=workshop),
        "pipelines": workshop_pipelines(user=request.user, workshop=workshop),
        "runs": runs,
        "awaiting_feedback": [row for row in runs if row["finished"] and not row["given"]],
        "decisions": workshop.decisions.select_related("agenda_item", "decided_by"),
        "state": workshop_state(workshop=workshop),
        "join_url": request.session.pop(f"workshop-join-{workshop.pk}", None) if facilitator else None,
    }
    if facilitator:
        context["my_pipelines"] = pipelines_visible_to(user=request.user).exclude(
            pk__in=workshop.pipelines.values("pk")
        )[:200]
    return render(request, "workshops/detail.html", context)


@login_required
@require_POST
def workshop_manage(request, workshop_id: int):
    """The facilitator's set-up actions, one per form: ``action`` names which."""
    workshop = _facilitated(request, workshop_id)
    action = request.POST.get("action", "")
    try:
        if action == "add_item":
            agenda_item_add(
                workshop=workshop,
                by=request.user,
                title=request.POST.get("title", ""),
                minutes=_whole_number(request.POST.get("minutes", "")) or 0,
            )
        elif action == "start_item":
            item = workshop.agenda.filter(pk=_whole_number(request.POST.get("item", "")) or 0).first()
            if item is None:
                raise WorkshopInvalid("item", "not an item of this workshop's agenda")
            agenda_item_start(workshop=workshop, by=request.user, item=item)
        elif action == "add_participant":
            participant_add(workshop=workshop, by=request.user, username=request.POST.get("username", ""))
        elif action == "add_pipeline":
            pipeline = pipeline_get(
                user=request.user, pipeline_id=_whole_number(request.POST.get("pipeline", "")) or 0
            )
            if pipeline is None:
                raise WorkshopInvalid("pipeline", "no such pipeline")
            pipeline_add(workshop=workshop, by=request.user, pipeline=pipeline)
        elif action == "join_link":
            token = join_link_create(
                workshop=workshop, by=request.user, hours=_whole_number(request.POST.get("hours", "")) or 0
            )
            request.session[f"workshop-join-{workshop.pk}"] = request.build_absolute_uri(
                reverse("workshop-join", args=[token])
            )
        elif action == "decision":
            item = None
            if request.POST.get("item"):
                item = workshop.agenda.filter(pk=_whole_number(request.POST["item"]) or 0).first()
            decision_add(workshop=workshop, by=request.user, text=request.POST.get("text", ""), item=item)
        else:
            raise WorkshopInvalid("action", f"unknown action {action[:40]!r}")
    except WorkshopInvalid as error:
        messages.error(request, str(error))
    return redirect("workshop-detail", workshop_id=workshop.pk)


@login_required
@require_POST
def workshop_run(request, workshop_id: int):
    """A participant starts a run of one of the workshop's pipelines; its page then asks for feedback."""
    workshop = _workshop(request, workshop_id)
    pipeline = pipeline_get(
        user=request.user, pipeline_id=_whole_number(request.POST.get("pipeline", "")) or 0
    )
    if pipeline is None:
        raise Http404("no such pipeline")
    if not broker_available():
        messages.error(request, BROKER_MESSAGE)
        return redirect("workshop-detail", workshop_id=workshop.pk)
    try:
        run = workshop_run_start(workshop=workshop, user=request.user, pipeline=pipeline)
    except WorkshopRefused as error:
        raise PermissionDenied(str(error)) from error
    except PipelineInvalid as error:
        for issue in error.issues:
            messages.error(request, f"{issue['code']} at {issue['pointer']}: {issue['message']}")
        return redirect("workshop-detail", workshop_id=workshop.pk)
    except (WorkshopInvalid, RunRejected, LimitExceeded) as error:
        messages.error(request, str(error))
        return redirect("workshop-detail", workshop_id=workshop.pk)
    messages.success(request, "The run started. When it is done, give your feedback on its results below.")
    return redirect("run-detail", run_id=run.pk)


@login_required
@require_safe
def workshop_follow(request, workshop_id: int):
    """The projector view: the current agenda item large, its timer, the agenda and decisions."""
    workshop = _workshop(request, workshop_id)
    return render(
        request, "workshops/follow.html", {"workshop": workshop, "state": workshop_state(workshop=workshop)}
    )


@login_required
@require_safe
def workshop_state_json(request, workshop_id: int):
    return JsonResponse(workshop_state(workshop=_workshop(request, workshop_id)))


def workshop_join_page(request, token: str):
    """A join link: signed-in people confirm to take part; an expired link answers 410."""
    if not request.user.is_authenticated:
        return redirect(f"{reverse('login')}?next={request.path}")
    try:
        workshop = join_link_open(token=token)
    except JoinLinkGone as error:
        return render(request, "workshops/join.html", {"gone": str(error)}, status=410)
    if workshop is None:
        raise Http404("no such join link")
    if request.method == "POST":
        workshop_join(token=token, user=request.user)
        return redirect("workshop-detail", workshop_id=workshop.pk)
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405)
    return render(request, "workshops/join.html", {"workshop": workshop})


@login_required
@require_safe
def workshop_summary(request, workshop_id: int):
    workshop = _facilitated(request, workshop_id)
    return render(
        request,
        "workshops/summary.html",
        {"workshop": workshop, "outcome": workshop_outcome(user=request.user, workshop=workshop)},
    )


@login_required
@require_safe
def workshop_export_json(request, workshop_id: int):
    workshop = _facilitated(request, workshop_id)
    body = json.dumps(workshop_outcome(user=request.user, workshop=workshop), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="workshop-{workshop.pk}.json"'
    return response


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@login_required
@require_safe
def workshop_export_csv(request, workshop_id: int):
    """The outcome as one table: a row per version change, run, feedback, comment and decision."""
    workshop = _facilitated(request, workshop_id)
    outcome = workshop_outcome(user=request.user, workshop=workshop)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["kind", "when", "who", "subject", "rating", "verdict", "text"])
    for pipeline in outcome["pipelines"]:
        for version in pipeline["versions"]:
            writer.writerow(
                [
                    "version",
                    version["created_at"],
                    _cell(version["created_by"]),
                    _cell(f"{pipeline['name']} v{version['number']}"),
                    "",
                    "",
                    _cell(f"{version['message']} — {version['diff']['summary']}".strip(" —")),
                ]
            )
    for run in outcome["runs"]:
        writer.writerow(
            ["run", run["created_at"], _cell(run["started_by"]), f"run {run['run']}", "", "", run["state"]]
        )
    for item in outcome["feedback"]:
        subject = f"run {item['run']}" + (f" · {item['node']}" if item["node"] else "")
        writer.writerow(
            [
                "feedback",
                item["updated_at"],
                _cell(item["user"]),
                subject,
                item["rating"],
                item["verdict"],
                _cell(item["comment"]),
            ]
        )
    for comment in outcome["comments"]:
        writer.writerow(
            [
                "comment",
                comment.get("created_at", ""),
                _cell(comment.get("author")),
                f"pipeline {comment.get('pipeline_id', '')} {comment.get('node_id') or ''}".strip(),
                "",
                "",
                _cell(comment.get("body") or comment.get("text") or ""),
            ]
        )
    for decision in outcome["decisions"]:
        writer.writerow(
            [
                "decision",
                decision["created_at"],
                _cell(decision["decided_by"]),
                _cell(decision["agenda_item"] or ""),
                "",
                "",
                _cell(decision["text"]),
            ]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="workshop-{workshop.pk}.csv"'
    return response
