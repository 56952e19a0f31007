"""Writes for feedback and notifications.

``feedback_give`` creates or changes the asking user's own feedback on a run or one of its results
(one per person per item) and keeps every saved state as a revision; nobody can write another
person's feedback through it. Each new or changed feedback notifies the maintainers of the blocks
involved and the pipeline's owner, in the portal and by e-mail when ``ILIAD_NOTIFY_EMAIL`` is on.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apps.feedback.models import Feedback, FeedbackRevision, Notification, Verdict
from apps.projects.access import can
from apps.runs.models import Artifact, Run

logger = logging.getLogger(__name__)

MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_COMMENT = 5000


class FeedbackInvalid(Exception):
    """A value is wrong; ``field`` names it and the message says what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FeedbackRefused(Exception):
    """The user may see the feedback but not change it (it is someone else's)."""


def clean_tags(tags) -> list[str]:
    """Tags trimmed, lower-cased and deduplicated in order; FeedbackInvalid naming ``tags`` otherwise."""
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise FeedbackInvalid("tags", "a list of short texts")
    cleaned: list[str] = []
    for tag in tags:
        tag = " ".join(tag.split()).lower()
        if "\x00" in tag or len(tag) > MAX_TAG_LENGTH:
            raise FeedbackInvalid("tags", f"each tag has at most {MAX_TAG_LENGTH} characters and no NUL")
        if tag and tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise FeedbackInvalid("tags", f"at most {MAX_TAGS} tags")
    return cleaned


def _check(rating: int, verdict: str, comment: str) -> None:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise FeedbackInvalid("rating", f"a whole number from 1 to 5, not {rating!r}")
    if verdict not in Verdict.values:
        raise FeedbackInvalid("verdict", f"one of {', '.join(Verdict.values)}, not {verdict!r}")
    if "\x00" in comment or len(comment) > MAX_COMMENT:
        raise FeedbackInvalid("comment", f"at most {MAX_COMMENT} characters and no NUL")


def _revise(feedback: Feedback) -> None:
    number = feedback.revisions.count() + 1
    FeedbackRevision.objects.create(
        feedback=feedback,
        number=number,
        rating=feedback.rating,
        verdict=feedback.verdict,
        comment=feedback.comment,
        tags=feedback.tags,
    )


@transaction.atomic
def feedback_give(
    *,
    user,
    run: Run,
    artifact: Artifact | None = None,
    rating: int,
    verdict: str,
    comment: str = "",
    tags: list[str] | None = None,
) -> tuple[Feedback, bool]:
    """The user's feedback on ``run`` (or its result ``artifact``), created or changed; returns it and
    whether it was created. The caller has checked that ``user`` may see the run. FeedbackInvalid for
    a bad value or an artifact of another run."""
    _check(rating, verdict, comment)
    tags = clean_tags(tags or [])
    if artifact is not None and artifact.run_id != run.pk:
        raise FeedbackInvalid("artifact", f"artifact {artifact.pk} is not a result of run {run.pk}")
    values = {"rating": rating, "verdict": verdict, "comment": comment, "tags": tags}
    existing = Feedback.objects.select_for_update().filter(user=user, run=run, artifact=artifact).first()
    if existing is not None:
        return feedback_update(feedback=existing, by=user, **values), False
    try:
        with transaction.atomic():
            feedback = Feedback.objects.create(user=user, run=run, artifact=artifact, **values)
    except IntegrityError:  # the same person's concurrent first save: change that one instead
        existing = Feedback.objects.select_for_update().get(user=user, run=run, artifact=artifact)
        return feedback_update(feedback=existing, by=user, **values), False
    _revise(feedback)
    notify_feedback(feedback=feedback, created=True)
    return feedback, True


@transaction.atomic
def feedback_update(
    *,
    feedback: Feedback,
    by,
    rating: int | None = None,
    verdict: str | None = None,
    comment: str | None = None,
    tags: list[str] | None = None,
) -> Feedback:
    """Change one's own feedback (only the given values); FeedbackRefused for someone else's. A save
    that changes nothing adds no revision and notifies nobody."""
    if feedback.user_id != by.pk:
        raise FeedbackRefused("only the person who gave this feedback may change it")
    values = {
        "rating": feedback.rating if rating is None else rating,
        "verdict": feedback.verdict if verdict is None else verdict,
        "comment": feedback.comment if comment is None else comment,
        "tags": feedback.tags if tags is None else clean_tags(tags),
    }
    _check(values["rating"], values["verdict"], values["comment"])
    if all(getattr(feedback, name) == value for name, value in values.items()):
        return feedback
    for name, value in values.items():
        setattr(feedback, name, value)
    feedback.save()
    _revise(feedback)
    notify_feedback(feedback=feedback, created=False)
    return feedback


# --- notifications -----------------------------------------------------------------------------------


def block_maintainers(*, block_ids: set[str]):
    """Who maintains these blocks. The catalog records no owner per block, so the portal's staff do."""
    return get_user_model().objects.filter(is_staff=True, is_active=True)


def notify_feedback(*, feedback: Feedback, created: bool) -> list[Notification]:
    """Tell the run's pipeline owner and the maintainers of the blocks involved (not the author).
    Those who may not see the run learn the rating and verdict only, with a link to the block's
    dashboard; the comment stays with those who may see the run."""
    run = feedback.run
    if feedback.artifact_id:
        blocks = {(feedback.artifact.step.block_id, feedback.artifact.step.block_version)}
        item = f"the result {feedback.artifact.step.node_id} · {feedback.artifact.port} of run {run.pk}"
    else:
        blocks = set(run.steps.values_list("block_id", "block_version"))
        item = f"run {run.pk}"
    action = "gave feedback on" if created else "changed their feedback on"
    verdict = Verdict(feedback.verdict).label
    summary = (
        f"{feedback.user.username} {action} {item} ({run.pipeline_name}): {feedback.rating}/5, {verdict}"
    )
    recipients = {}
    if run.pipeline is not None:
        recipients[run.pipeline.owner_id] = run.pipeline.owner
    for maintainer in block_maintainers(block_ids={block for block, _ in blocks}):
        recipients.setdefault(maintainer.pk, maintainer)
    recipients.pop(feedback.user_id, None)
    run_url = reverse("run-detail", args=[run.pk]) + "#feedback"
    first_block = sorted(blocks)[0][0] if blocks else ""
    notifications = []
    for recipient in recipients.values():
        if can(recipient, "view", run):
            message, url = summary, run_url
            if feedback.comment:
                message = f"{summary} — “{feedback.comment[:200]}”"
        else:
            message = (
                f"New feedback on {item.split(' of ')[0]} using {', '.join(sorted(b for b, _ in blocks))}: "
                f"{feedback.rating}/5, {verdict}"
            )
            url = reverse("validation-block", args=[first_block]) if first_block else ""
        notifications.append(
            Notification(recipient=recipient, message=message[:500], url=url, feedback=feedback)
        )
    Notification.objects.bulk_create(notifications)
    if settings.ILIAD_NOTIFY_EMAIL:
        ids = [notification.pk for notification in notifications if notification.recipient.email]
        transaction.on_commit(lambda: notifications_email(ids=ids))
    return notifications


def notify(*, recipients, message: str, url: str = "") -> list[Notification]:
    """One notification per recipient, e-mailed after commit when ``ILIAD_NOTIFY_EMAIL`` is on."""
    notifications = Notification.objects.bulk_create(
        [Notification(recipient=recipient, message=message[:500], url=url) for recipient in recipients]
    )
    if settings.ILIAD_NOTIFY_EMAIL:
        ids = [notification.pk for notification in notifications if notification.recipient.email]
        transaction.on_commit(lambda: notifications_email(ids=ids))
    return notifications


def notifications_email(*, ids: list[int]) -> int:
    """E-mail the given notifications that were not sent yet; returns how many went out. A failing
    mail server is logged and leaves them unsent: the in-portal list still has them."""
    sent = 0
    base = settings.ILIAD_PUBLIC_URL.rstrip("/")
    for notification in Notification.objects.filter(pk__in=ids, emailed_at__isnull=True).select_related(
        "recipient"
    ):
        body = notification.message + (f"\n\n{base}{notification.url}" if notification.url else "")
        try:
            send_mail(
                "[Iliad Portal] " + notification.message[:90],
                body,
                None,
                [notification.recipient.email],
            )
        except Exception:  # noqa: BLE001 — any transport error: keep the in-portal notification
            logger.exception("could not e-mail notification %s", notification.pk)
            continue
        Notification.objects.filter(pk=notification.pk).update(emailed_at=timezone.now())
        sent += 1
    return sent


def notifications_mark_read(*, user, ids: list[int] | None = None) -> int:
    """Mark the user's notifications read (all unread ones when ``ids`` is None); returns how many."""
    queryset = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    return queryset.update(read_at=timezone.now())
