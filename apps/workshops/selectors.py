"""Reads for workshops, scoped to who takes part, and the outcome a facilitator exports."""

from __future__ import annotations

from django.apps import apps as django_apps
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.feedback.selectors import feedback_visible_to
from apps.pipelines.diff import document_diff
from apps.pipelines.models import PipelineVersion
from apps.projects.access import pipelines_visible_to, projects_of
from apps.workshops.models import Workshop


def workshops_visible_to(*, user) -> QuerySet[Workshop]:
    """The workshops ``user`` takes part in: as facilitator, by name or through their project."""
    if user is None or not user.is_authenticated:
        return Workshop.objects.none()
    workshops = Workshop.objects.filter(
        Q(facilitator=user) | Q(participants=user) | Q(project_id__in=projects_of(user=user).values("pk"))
    )
    token_project = getattr(user, "token_project_id", None)
    if token_project is not None:  # a personal API token restricted to one project sees its workshops only
        workshops = workshops.filter(project_id=token_project)
    return workshops.distinct().select_related("facilitator", "project", "current_item")


def workshop_get(*, user, workshop_id: int) -> Workshop | None:
    """The workshop if ``user`` takes part in it, else None (callers answer 404)."""
    return workshops_visible_to(user=user).filter(pk=workshop_id).first()


def is_facilitator(*, user, workshop: Workshop) -> bool:
    return workshop.facilitator_id == user.pk


def workshop_people(*, workshop: Workshop) -> list:
    """Everyone taking part: the facilitator, the named participants and the project's members."""
    people = {workshop.facilitator_id: workshop.facilitator}
    for user in workshop.participants.all():
        people.setdefault(user.pk, user)
    if workshop.project_id:
        for membership in workshop.project.memberships.select_related("user"):
            people.setdefault(membership.user_id, membership.user)
    return sorted(people.values(), key=lambda user: user.username)


def workshop_pipelines(*, user, workshop: Workshop):
    """The workshop's pipelines that ``user`` may see (the workshop shares no pipeline by itself)."""
    return pipelines_visible_to(user=user).filter(pk__in=workshop.pipelines.values("pk"))


def timer_state(item, now=None) -> dict | None:
    """The agenda item's timer: planned seconds, seconds left (negative when over), running or not."""
    if item is None:
        return None
    now = now or timezone.now()
    planned = item.minutes * 60
    left = planned if item.started_at is None else planned - int((now - item.started_at).total_seconds())
    return {
        "item": item.pk,
        "title": item.title,
        "planned_s": planned,
        "left_s": left,
        "running": item.started_at is not None,
    }


def workshop_state(*, workshop: Workshop) -> dict:
    """What the follow-me view shows and polls: the current item and its timer, the agenda, decisions."""
    return {
        "workshop": workshop.pk,
        "title": workshop.title,
        "current": timer_state(workshop.current_item),
        "agenda": [
            {"id": item.pk, "position": item.position, "title": item.title, "minutes": item.minutes}
            for item in workshop.agenda.all()
        ],
        "decisions": [
            {"text": decision.text, "item": decision.agenda_item_id} for decision in workshop.decisions.all()
        ],
        "runs": workshop.workshop_runs.count(),
    }


# --- the outcome -----------------------------------------------------------------------------------

#: Where the pipeline comments of live co-editing may live; the first model found is exported. Until
#: one exists the export has an empty ``comments`` list.
COMMENT_MODELS = (("collab", "Comment"), ("pipelines", "Comment"), ("pipelines", "PipelineComment"))


def comments_for_export(*, workshop: Workshop, pipeline_ids: list[int]) -> list[dict]:
    """The hook for co-editing comments: every comment on the workshop's pipelines made since the
    workshop was created, as plain values, from the first model of ``COMMENT_MODELS`` installed."""
    for app_label, model_name in COMMENT_MODELS:
        try:
            model = django_apps.get_model(app_label, model_name)
        except LookupError:
            continue
        field_names = {field.name for field in model._meta.get_fields()}
        queryset = (
            model.objects.filter(pipeline_id__in=pipeline_ids)
            if "pipeline" in field_names
            else model.objects.none()
        )
        if "created_at" in field_names:
            queryset = queryset.filter(created_at__gte=workshop.created_at)
        rows = []
        for comment in queryset:
            row = {"id": comment.pk}
            for name in ("pipeline_id", "node_id", "body", "text", "resolved", "created_at", "parent_id"):
                if hasattr(comment, name):
                    value = getattr(comment, name)
                    row[name] = value.isoformat() if hasattr(value, "isoformat") else value
            author = getattr(comment, "author", None) or getattr(comment, "user", None)
            row["author"] = getattr(author, "username", None)
            rows.append(row)
        return rows
    return []


def workshop_outcome(*, user, workshop: Workshop) -> dict:
    """Everything the workshop produced, as ``user`` (the facilitator) may see it: pipeline versions
    saved since it began with what changed from the version before, runs started in it, the feedback
    on them, comments on its pipelines, and decisions."""
    pipelines = list(workshop_pipelines(user=user, workshop=workshop))
    pipeline_rows = []
    for pipeline in pipelines:
        versions = list(
            PipelineVersion.objects.filter(pipeline=pipeline).select_related("created_by").order_by("number")
        )
        rows = []
        for index, version in enumerate(versions):
            if version.created_at < workshop.created_at:
                continue
            previous = versions[index - 1].document if index else {"nodes": [], "edges": []}
            rows.append(
                {
                    "number": version.number,
                    "created_at": version.created_at.isoformat(),
                    "created_by": version.created_by.username if version.created_by else None,
                    "message": version.message,
                    "diff": document_diff(previous, version.document),
                }
            )
        pipeline_rows.append(
            {
                "id": pipeline.pk,
                "name": pipeline.name,
                "latest_version": pipeline.latest_version,
                "versions": rows,
            }
        )
    workshop_runs = list(workshop.workshop_runs.select_related("run", "started_by", "agenda_item"))
    run_ids = [entry.run_id for entry in workshop_runs]
    feedback = feedback_visible_to(user=user).filter(run_id__in=run_ids).order_by("run_id", "id")
    return {
        "workshop": {
            "id": workshop.pk,
            "title": workshop.title,
            "description": workshop.description,
            "facilitator": workshop.facilitator.username,
            "project": workshop.project.slug if workshop.project_id else None,
            "created_at": workshop.created_at.isoformat(),
        },
        "participants": [person.username for person in workshop_people(workshop=workshop)],
        "agenda": [
            {"position": item.position, "title": item.title, "minutes": item.minutes}
            for item in workshop.agenda.all()
        ],
        "pipelines": pipeline_rows,
        "runs": [
            {
                "run": entry.run_id,
                "pipeline": entry.run.pipeline_id,
                "version": entry.run.pipeline_version,
                "state": entry.run.state,
                "started_by": entry.started_by.username if entry.started_by else None,
                "agenda_item": entry.agenda_item.title if entry.agenda_item else None,
                "created_at": entry.created_at.isoformat(),
            }
            for entry in workshop_runs
        ],
        "feedback": [
            {
                "id": item.pk,
                "run": item.run_id,
                "artifact": item.artifact_id,
                "node": item.artifact.step.node_id if item.artifact_id else None,
                "user": item.user.username,
                "rating": item.rating,
                "verdict": item.verdict,
                "comment": item.comment,
                "tags": item.tags,
                "updated_at": item.updated_at.isoformat(),
            }
            for item in feedback
        ],
        "comments": comments_for_export(workshop=workshop, pipeline_ids=[p.pk for p in pipelines]),
        "decisions": [
            {
                "text": decision.text,
                "agenda_item": decision.agenda_item.title if decision.agenda_item else None,
                "decided_by": decision.decided_by.username if decision.decided_by else None,
                "created_at": decision.created_at.isoformat(),
            }
            for decision in workshop.decisions.select_related("agenda_item", "decided_by")
        ],
    }
