"""Writes for workshops. The facilitator sets a workshop up (agenda, pipelines, participants, join
link) and records decisions; participants start runs from it. Every function raises
``WorkshopRefused`` (a sentence saying why) when the acting user may not do it and
``WorkshopInvalid`` (naming the field) for a bad value.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from apps.feedback.services import notify
from apps.pipelines.models import Pipeline
from apps.projects.access import can, projects_of
from apps.runs.models import Run, RunState
from apps.runs.services import run_submit
from apps.workshops.models import AgendaItem, Decision, Workshop, WorkshopRun
from apps.workshops.selectors import workshop_people

JOIN_LINK_MAX_HOURS = 24 * 30
MAX_TEXT = 5000


class WorkshopRefused(Exception):
    """The acting user takes part in the workshop but may not do this; the message says why."""


class WorkshopInvalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JoinLinkGone(Exception):
    """The join link existed but has expired or was replaced."""


def _require_facilitator(workshop: Workshop, user) -> None:
    if workshop.facilitator_id != user.pk:
        raise WorkshopRefused("only the workshop's facilitator may do this")


def _text(field: str, value: str, *, limit: int, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise WorkshopInvalid(field, "must not be empty")
    if len(value) > limit or "\x00" in value:
        raise WorkshopInvalid(field, f"at most {limit} characters and no NUL")
    return value


@transaction.atomic
def workshop_create(*, user, title: str, description: str = "", project_slug: str = "") -> Workshop:
    """A workshop facilitated by ``user``; with ``project_slug`` (a project they are a member of)
    every member of that project takes part."""
    workshop = Workshop(
        title=_text("title", title, limit=200),
        description=_text("description", description, limit=MAX_TEXT, required=False),
        facilitator=user,
    )
    if project_slug:
        workshop.project = projects_of(user=user).filter(slug=project_slug).first()
        if workshop.project is None:
            raise WorkshopInvalid("project", f"you are not a member of a project {project_slug[:50]!r}")
    workshop.save()
    return workshop


@transaction.atomic
def agenda_item_add(*, workshop: Workshop, by, title: str, minutes: int) -> AgendaItem:
    _require_facilitator(workshop, by)
    if not 1 <= minutes <= 600:
        raise WorkshopInvalid("minutes", "between 1 and 600")
    last = workshop.agenda.aggregate(last=Max("position"))["last"] or 0
    return AgendaItem.objects.create(
        workshop=workshop, position=last + 1, title=_text("title", title, limit=200), minutes=minutes
    )


@transaction.atomic
def agenda_item_start(*, workshop: Workshop, by, item: AgendaItem) -> AgendaItem:
    """Make ``item`` the current one (what the follow-me view shows) and (re)start its timer."""
    _require_facilitator(workshop, by)
    if item.workshop_id != workshop.pk:
        raise WorkshopInvalid("item", "not an item of this workshop's agenda")
    item.started_at = timezone.now()
    item.save(update_fields=["started_at"])
    workshop.current_item = item
    workshop.save(update_fields=["current_item", "updated_at"])
    return item


@transaction.atomic
def participant_add(*, workshop: Workshop, by, username: str):
    _require_facilitator(workshop, by)
    user = get_user_model().objects.filter(username=username.strip()[:150]).first()
    if user is None:
        raise WorkshopInvalid("username", f"there is no user {username[:150]!r}")
    workshop.participants.add(user)
    return user


@transaction.atomic
def pipeline_add(*, workshop: Workshop, by, pipeline: Pipeline) -> None:
    """Put a pipeline the facilitator may see on the workshop. It is not shared by that: each
    participant sees and runs it by their own rights (its project or its visibility)."""
    _require_facilitator(workshop, by)
    if not can(by, "view", pipeline):
        raise WorkshopInvalid("pipeline", "no such pipeline")
    workshop.pipelines.add(pipeline)


def join_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def join_link_create(*, workshop: Workshop, by, hours: int = 4) -> str:
    """A new join link that works for ``hours`` (1 to JOIN_LINK_MAX_HOURS) and replaces the previous
    one; returns its token, which is not stored (only its digest)."""
    _require_facilitator(workshop, by)
    if not 1 <= hours <= JOIN_LINK_MAX_HOURS:
        raise WorkshopInvalid("hours", f"between 1 and {JOIN_LINK_MAX_HOURS}")
    token = secrets.token_urlsafe(24)
    workshop.join_digest = join_token_digest(token)
    workshop.join_prefix = token[:8]
    workshop.join_expires_at = timezone.now() + timedelta(hours=hours)
    workshop.save(update_fields=["join_digest", "join_prefix", "join_expires_at", "updated_at"])
    return token


def join_link_open(*, token: str) -> Workshop | None:
    """The workshop a join token opens; None for an unknown token; JoinLinkGone once it expired."""
    if not token or len(token) > 200:
        return None
    workshop = Workshop.objects.filter(join_digest=join_token_digest(token)).first()
    if workshop is None:
        return None
    if not workshop.join_link_active():
        raise JoinLinkGone(f"this join link expired at {workshop.join_expires_at:%Y-%m-%d %H:%M} UTC")
    return workshop


@transaction.atomic
def workshop_join(*, token: str, user) -> Workshop | None:
    """Add ``user`` as a participant of the workshop the token opens (see ``join_link_open``)."""
    workshop = join_link_open(token=token)
    if workshop is not None and workshop.facilitator_id != user.pk:
        workshop.participants.add(user)
    return workshop


@transaction.atomic
def decision_add(*, workshop: Workshop, by, text: str, item: AgendaItem | None = None) -> Decision:
    """Record a decision, on the current agenda item unless another is named."""
    _require_facilitator(workshop, by)
    if item is not None and item.workshop_id != workshop.pk:
        raise WorkshopInvalid("item", "not an item of this workshop's agenda")
    return Decision.objects.create(
        workshop=workshop,
        agenda_item=item or workshop.current_item,
        text=_text("text", text, limit=MAX_TEXT),
        decided_by=by,
    )


def workshop_run_start(*, workshop: Workshop, user, pipeline: Pipeline) -> Run:
    """Run one of the workshop's pipelines for a participant who may run it, and link the run to the
    workshop (its results are then put up for everyone's feedback). Raises WorkshopInvalid for a
    pipeline that is not the workshop's, WorkshopRefused when the user may not run it, and whatever
    ``run_submit`` raises (invalid pipeline, limits)."""
    if not workshop.pipelines.filter(pk=pipeline.pk).exists():
        raise WorkshopInvalid("pipeline", "not one of this workshop's pipelines")
    if not can(user, "run", pipeline):
        raise WorkshopRefused("you may see this pipeline but not run it (ask for the editor role)")
    with transaction.atomic():
        run = run_submit(pipeline=pipeline, user=user)
        WorkshopRun.objects.create(
            workshop=workshop, run=run, started_by=user, agenda_item=workshop.current_item
        )
    return run


def workshop_run_finished(*, run_id: int, state: str) -> int:
    """Ask everyone taking part who may see the run for their feedback, once a run started in a
    workshop succeeded; returns how many were asked. Receiver of ``apps.runs.signals.run_finished``."""
    link = (
        WorkshopRun.objects.select_related("workshop__facilitator", "workshop__project", "run")
        .filter(run_id=run_id)
        .first()
    )
    if link is None or state != RunState.SUCCEEDED:
        return 0
    run, workshop = link.run, link.workshop
    people = [person for person in workshop_people(workshop=workshop) if can(person, "view", run)]
    message = (
        f"Run #{run.pk} of {run.pipeline_name} in the workshop “{workshop.title}” is done: "
        "please give your feedback on its results."
    )
    with transaction.atomic():
        notify(recipients=people, message=message, url=reverse("run-detail", args=[run.pk]) + "#feedback")
    return len(people)
