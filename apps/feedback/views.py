"""Pages: the feedback form of the run page, the notification list, validation dashboards and their CSV."""

from __future__ import annotations

import csv
import io

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from apps.catalog.models import BlockVersion
from apps.feedback.models import Verdict
from apps.feedback.selectors import (
    Rated,
    block_ratings,
    notifications_of,
    pipeline_ratings,
    validation_summary,
)
from apps.feedback.services import FeedbackInvalid, feedback_give, notifications_mark_read
from apps.pipelines.selectors import pipeline_get
from apps.runs.models import Artifact
from apps.runs.selectors import run_get


def _whole_number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@login_required
@require_POST
def feedback_give_form(request):
    """The run page's form: the user's feedback on the run or one of its results, then back there."""
    run_id = _whole_number(request.POST.get("run", ""))
    run = run_get(user=request.user, run_id=run_id) if run_id else None
    if run is None:
        raise Http404("no such run")
    artifact = None
    if request.POST.get("artifact"):
        artifact_id = _whole_number(request.POST["artifact"])
        artifact = Artifact.objects.filter(pk=artifact_id, run=run).first() if artifact_id else None
        if artifact is None:
            raise Http404("no such result")
    tags = [tag for tag in request.POST.get("tags", "").split(",") if tag.strip()]
    try:
        rating = _whole_number(request.POST.get("rating", "")) or 0
        feedback_give(
            user=request.user,
            run=run,
            artifact=artifact,
            rating=rating,
            verdict=request.POST.get("verdict", ""),
            comment=request.POST.get("comment", "").strip(),
            tags=tags,
        )
    except FeedbackInvalid as error:
        messages.error(request, f"Your feedback was not saved: {error}")
    else:
        messages.success(request, "Thank you: your feedback was saved.")
    anchor = f"#feedback-artifact-{artifact.pk}" if artifact else "#feedback"
    return redirect(reverse("run-detail", args=[run.pk]) + anchor)


@login_required
@require_safe
def notification_list(request):
    notifications = notifications_of(user=request.user)[:200]
    return render(request, "feedback/notifications.html", {"notifications": notifications})


@login_required
@require_POST
def notifications_read(request):
    notifications_mark_read(user=request.user)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("notifications")
    return redirect(target or reverse("notifications"))


def _figure_data(summary: dict, title: str) -> dict:
    """What static/js/validation.js draws: mean rating per version over time and verdicts per version."""
    return {
        "title": title,
        "series": summary["series"],
        "versions": summary["versions"],
        "verdict_labels": dict(Verdict.choices),
    }


def _recent(rated: list[Rated], limit: int = 50) -> list[Rated]:
    return sorted(rated, key=lambda item: item.feedback.updated_at, reverse=True)[:limit]


@login_required
@require_safe
def block_dashboard(request, block_id: str):
    versions = BlockVersion.objects.filter(block_id=block_id)
    if not versions.exists():
        raise Http404(f"no block {block_id}")
    rated = block_ratings(user=request.user, block_id=block_id)
    summary = validation_summary(rated)
    return render(
        request,
        "feedback/dashboard.html",
        {
            "subject": versions.first().title,
            "subject_code": block_id,
            "kind": "block",
            "back_url": reverse("block-detail", args=[block_id]),
            "csv_url": reverse("validation-block-csv", args=[block_id]),
            "summary": summary,
            "recent": _recent(rated),
            "figure": _figure_data(summary, f"{block_id}: mean rating per version"),
        },
    )


@login_required
@require_safe
def pipeline_dashboard(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    rated = pipeline_ratings(user=request.user, pipeline=pipeline)
    summary = validation_summary(rated)
    return render(
        request,
        "feedback/dashboard.html",
        {
            "subject": pipeline.name,
            "subject_code": f"pipeline {pipeline.pk}",
            "kind": "pipeline",
            "back_url": reverse("pipeline-detail", args=[pipeline.pk]),
            "csv_url": reverse("validation-pipeline-csv", args=[pipeline.pk]),
            "summary": summary,
            "recent": _recent(rated),
            "figure": _figure_data(summary, f"{pipeline.name}: mean rating per version"),
        },
    )


CSV_COLUMNS = [
    "version",
    "feedback_id",
    "run",
    "artifact",
    "node",
    "user",
    "rating",
    "verdict",
    "tags",
    "comment",
    "created_at",
    "updated_at",
]


def ratings_csv(rated: list[Rated], filename: str) -> HttpResponse:
    """One row per feedback and version it judges. Text cells that a spreadsheet would run as a
    formula (starting with = + - @) get a leading apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for item in sorted(rated, key=lambda item: (item.version, item.feedback.pk)):
        feedback = item.feedback
        writer.writerow(
            [
                item.version,
                feedback.pk,
                feedback.run_id,
                feedback.artifact_id or "",
                feedback.artifact.step.node_id if feedback.artifact_id else "",
                _cell(feedback.user.username),
                feedback.rating,
                feedback.verdict,
                _cell(";".join(feedback.tags)),
                _cell(feedback.comment),
                feedback.created_at.isoformat(),
                feedback.updated_at.isoformat(),
            ]
        )
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _cell(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@login_required
@require_safe
def block_csv(request, block_id: str):
    if not BlockVersion.objects.filter(block_id=block_id).exists():
        raise Http404(f"no block {block_id}")
    safe_name = "".join(c if c.isalnum() or c in "._-" else "_" for c in block_id)
    return ratings_csv(block_ratings(user=request.user, block_id=block_id), f"feedback-{safe_name}.csv")


@login_required
@require_safe
def pipeline_csv(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    return ratings_csv(
        pipeline_ratings(user=request.user, pipeline=pipeline), f"feedback-pipeline-{pipeline.pk}.csv"
    )
