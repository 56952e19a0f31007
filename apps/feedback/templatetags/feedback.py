"""Template tags that put feedback on other apps' pages with one line each: the run page's panel, the
catalog page's list for a block, and the notification bell of the top bar."""

from django import template

from apps.feedback.models import Verdict
from apps.feedback.selectors import block_ratings, feedback_visible_to, notifications_of, validation_summary
from apps.feedback.services import MAX_COMMENT

register = template.Library()


@register.inclusion_tag("feedback/run_panel.html", takes_context=True)
def feedback_run_panel(context, run):
    """Forms for the user's feedback on ``run`` and each of its results, and everyone's feedback."""
    user = context["request"].user
    feedback = list(feedback_visible_to(user=user).filter(run=run).order_by("-updated_at"))
    items = [{"key": "run", "title": f"the whole run #{run.pk}", "artifact": None}]
    items += [
        {
            "key": f"artifact-{artifact.pk}",
            "title": f"{artifact.step.node_id} · {artifact.port}",
            "artifact": artifact,
        }
        for artifact in run.artifacts.select_related("step")
    ]
    for item in items:
        artifact_id = item["artifact"].pk if item["artifact"] else None
        on_item = [entry for entry in feedback if entry.artifact_id == artifact_id]
        item["mine"] = next((entry for entry in on_item if entry.user_id == user.pk), None)
        item["others"] = [entry for entry in on_item if entry.user_id != user.pk]
    return {
        "run": run,
        "items": items,
        "workshop": _workshop_asking(user=user, run=run, answered=any(item["mine"] for item in items)),
        "verdicts": Verdict.choices,
        "ratings": [1, 2, 3, 4, 5],
        "max_comment": MAX_COMMENT,
        "csrf_token": context.get("csrf_token"),
    }


def _workshop_asking(*, user, run, answered: bool):
    """The workshop the run was started in, when ``user`` takes part and has not given feedback yet."""
    from apps.workshops.models import WorkshopRun
    from apps.workshops.selectors import workshops_visible_to

    if answered:
        return None
    link = WorkshopRun.objects.filter(run=run).first()
    if link is None:
        return None
    return workshops_visible_to(user=user).filter(pk=link.workshop_id).first()


@register.inclusion_tag("feedback/block_panel.html", takes_context=True)
def feedback_block_panel(context, block_id):
    """A block's validation figures and its latest feedback, as the asking user may see them."""
    user = context["request"].user
    rated = block_ratings(user=user, block_id=block_id)
    recent = sorted(rated, key=lambda item: item.feedback.updated_at, reverse=True)[:10]
    return {"block_id": block_id, "summary": validation_summary(rated), "recent": recent}


@register.inclusion_tag("feedback/bell.html", takes_context=True)
def notification_bell(context):
    user = context["request"].user
    return {"unread": notifications_of(user=user, unread_only=True).count() if user.is_authenticated else 0}


@register.filter
def verdict_label(value: str) -> str:
    return dict(Verdict.choices).get(value, value)


@register.filter
def stars(rating: int) -> str:
    return "★" * rating + "☆" * (5 - rating)
