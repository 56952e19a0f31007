"""Reads for runs, always scoped to what the asking user may see."""

from __future__ import annotations

from apps.projects.access import runs_changeable_by, runs_visible_to
from apps.runs.models import Run, RunEvent

__all__ = ["run_events", "run_get", "runs_changeable_by", "runs_visible_to"]

EVENTS_PAGE_MAX = 1000


def run_get(*, user, run_id: int) -> Run | None:
    """The run if ``user`` may see it, else None (callers answer 404 to hide its existence)."""
    return runs_visible_to(user=user).filter(pk=run_id).first()


def run_events(*, run_id: int, after: int = 0, limit: int = EVENTS_PAGE_MAX) -> list[RunEvent]:
    """Events with ``seq > after`` in order, at most ``limit`` (capped at EVENTS_PAGE_MAX)."""
    limit = max(1, min(limit, EVENTS_PAGE_MAX))
    return list(RunEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")[:limit])
