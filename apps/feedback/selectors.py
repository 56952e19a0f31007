"""Reads for feedback, notifications and validation dashboards, always scoped to the asking user:
a feedback is seen by whoever may see its run (``apps.projects.access.runs_visible_to``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.feedback.models import Feedback, Notification, Verdict
from apps.projects.access import runs_visible_to
from apps.runs.models import StepRun


def feedback_visible_to(*, user) -> QuerySet[Feedback]:
    """Every feedback on a run ``user`` may see (their own included, as they gave it on such a run)."""
    return Feedback.objects.filter(run_id__in=runs_visible_to(user=user).values("pk")).select_related(
        "user", "artifact__step", "run"
    )


def feedback_get(*, user, feedback_id: int) -> Feedback | None:
    """The feedback if ``user`` may see it, else None (callers answer 404)."""
    return feedback_visible_to(user=user).filter(pk=feedback_id).first()


def feedback_on_block(queryset: QuerySet[Feedback], *, block_id: str) -> QuerySet[Feedback]:
    """Feedback that concerns a block: on a result the block produced, or on a whole run that used it."""
    used_in = StepRun.objects.filter(block_id=block_id).values("run_id")
    return queryset.filter(
        Q(artifact__step__block_id=block_id) | Q(artifact__isnull=True, run_id__in=used_in)
    )


def feedback_for_item(*, user, run, artifact=None) -> QuerySet[Feedback]:
    """Everyone's feedback on one run (``artifact`` None) or one of its results, as ``user`` sees it."""
    queryset = feedback_visible_to(user=user).filter(run=run)
    if artifact is None:
        return queryset.filter(artifact__isnull=True)
    return queryset.filter(artifact=artifact)


def notifications_of(*, user, unread_only: bool = False) -> QuerySet[Notification]:
    queryset = (
        Notification.objects.filter(recipient=user) if user.is_authenticated else Notification.objects.none()
    )
    return queryset.filter(read_at__isnull=True) if unread_only else queryset


# --- validation dashboards -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rated:
    """One feedback as a dashboard counts it: the version it judges and when."""

    version: str
    day: str  # ISO date of its last change
    rating: int
    verdict: str
    feedback: Feedback


def block_ratings(*, user, block_id: str) -> list[Rated]:
    """Feedback ``user`` may see on ``block_id``, each with the block version it judges: the version
    that produced the result, or for a whole run each version of the block the run used."""
    feedback = list(feedback_on_block(feedback_visible_to(user=user), block_id=block_id))
    run_versions: dict[int, set[str]] = defaultdict(set)
    for run_id, version in StepRun.objects.filter(
        block_id=block_id, run_id__in={item.run_id for item in feedback}
    ).values_list("run_id", "block_version"):
        run_versions[run_id].add(version)
    rated = []
    for item in feedback:
        versions = (
            [item.artifact.step.block_version] if item.artifact_id else sorted(run_versions[item.run_id])
        )
        rated += [_rated(item, version) for version in versions]
    return rated


def pipeline_ratings(*, user, pipeline) -> list[Rated]:
    """Feedback ``user`` may see on runs of ``pipeline``, each with the pipeline version the run used."""
    feedback = feedback_visible_to(user=user).filter(run__pipeline=pipeline)
    return [_rated(item, str(item.run.pipeline_version)) for item in feedback]


def _rated(item: Feedback, version: str) -> Rated:
    return Rated(version, item.updated_at.date().isoformat(), item.rating, item.verdict, item)


def validation_summary(rated: list[Rated]) -> dict:
    """Counts, mean rating and verdicts per version, and per version and day (for the time series)."""

    def summarise(items: list[Rated]) -> dict:
        verdicts = {choice: 0 for choice in Verdict.values}
        for item in items:
            verdicts[item.verdict] += 1
        mean = round(sum(item.rating for item in items) / len(items), 2) if items else None
        return {"count": len(items), "mean_rating": mean, "verdicts": verdicts}

    by_version: dict[str, list[Rated]] = defaultdict(list)
    by_version_day: dict[tuple[str, str], list[Rated]] = defaultdict(list)
    for item in rated:
        by_version[item.version].append(item)
        by_version_day[(item.version, item.day)].append(item)
    return {
        **summarise(rated),
        "versions": [
            {"version": version, **summarise(items)}
            for version, items in sorted(by_version.items(), key=_order)
        ],
        "series": [
            {"version": version, "day": day, **summarise(items)}
            for (version, day), items in sorted(by_version_day.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ],
    }


def _order(item: tuple[str, list]) -> tuple:
    """Versions in numeric order ("1.10.0" after "1.9.0"; pipeline versions are plain numbers)."""
    return tuple(int(part) if part.isdigit() else 0 for part in item[0].split("."))
