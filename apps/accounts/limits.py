"""Per-user limits: how much of a shared machine one account may hold at once.

The services that create runs and pipelines call a ``check_*`` function inside their transaction,
before creating anything. It first locks the user's row (on PostgreSQL; SQLite's IMMEDIATE
transactions already let one writer in at a time), so that two concurrent requests of one user
cannot both pass a limit they would together exceed. Each limit is a setting; 0 turns it off.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum

from apps.pipelines.models import Pipeline
from apps.runs.models import Artifact, Run, RunState, StepRun, StepState

MEGABYTE = 1024 * 1024


class LimitExceeded(Exception):
    """A per-user limit refuses the request. The message says which limit, the user's current figure
    and how to get back under it; ``status`` is the HTTP status that says so (429 for limits that
    free themselves as runs finish, 409 for storage, which only deleting frees)."""

    def __init__(self, message: str, *, setting: str, status: int = 429) -> None:
        super().__init__(message)
        self.setting = setting
        self.status = status


def _lock_user(user) -> None:
    """Hold the user's row until the caller's transaction ends (callers are atomic)."""
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def check_run_allowed(*, user, steps: int) -> None:
    """Raise LimitExceeded unless ``user`` may start a run of ``steps`` steps now: fewer than
    ``ILIAD_LIMIT_ACTIVE_RUNS`` runs queued or running, at most ``ILIAD_LIMIT_QUEUED_STEPS`` steps
    waiting (pending or queued) with this run's, results under ``ILIAD_LIMIT_STORAGE_MB``."""
    _lock_user(user)
    limit = settings.ILIAD_LIMIT_ACTIVE_RUNS
    if limit:
        active = Run.objects.filter(owner=user, state__in=(RunState.QUEUED, RunState.RUNNING)).count()
        if active >= limit:
            raise LimitExceeded(
                f"You have {_plural(active, 'active run')}, the limit is {limit} (ILIAD_LIMIT_ACTIVE_RUNS). "
                "Wait for one to finish or cancel one.",
                setting="ILIAD_LIMIT_ACTIVE_RUNS",
            )
    limit = settings.ILIAD_LIMIT_QUEUED_STEPS
    if limit:
        if steps > limit:
            raise LimitExceeded(
                f"This run has {steps} steps, more than the {limit} steps one may have waiting at once "
                "(ILIAD_LIMIT_QUEUED_STEPS). Split the pipeline into smaller ones, or ask an "
                "administrator to raise the limit.",
                setting="ILIAD_LIMIT_QUEUED_STEPS",
            )
        waiting = StepRun.objects.filter(
            run__owner=user, state__in=(StepState.PENDING, StepState.QUEUED, StepState.SUBMITTED)
        ).count()
        if waiting + steps > limit:
            raise LimitExceeded(
                f"You have {_plural(waiting, 'step')} waiting to run and this run adds {steps}; the limit "
                f"is {limit} (ILIAD_LIMIT_QUEUED_STEPS). Wait for runs to finish or cancel some.",
                setting="ILIAD_LIMIT_QUEUED_STEPS",
            )
    limit = settings.ILIAD_LIMIT_STORAGE_MB
    if limit:
        # A reused (cached) result names a file another artifact produced: count each file once.
        used = (
            Artifact.objects.filter(run__owner=user, cached_from__isnull=True).aggregate(total=Sum("size"))[
                "total"
            ]
            or 0
        )
        if used >= limit * MEGABYTE:
            raise LimitExceeded(
                f"The results of your runs take {used / MEGABYTE:,.1f} MB, the limit is {limit} MB "
                "(ILIAD_LIMIT_STORAGE_MB). Delete runs whose results you no longer need, or ask an "
                "administrator to raise the limit.",
                setting="ILIAD_LIMIT_STORAGE_MB",
                status=409,
            )


def check_pipeline_allowed(*, user) -> None:
    """Raise LimitExceeded unless ``user`` has fewer than ``ILIAD_LIMIT_PIPELINES`` pipelines."""
    _lock_user(user)
    limit = settings.ILIAD_LIMIT_PIPELINES
    if limit:
        owned = Pipeline.objects.filter(owner=user).count()
        if owned >= limit:
            raise LimitExceeded(
                f"You have {_plural(owned, 'pipeline')}, the limit is {limit} (ILIAD_LIMIT_PIPELINES). "
                "Delete pipelines you no longer need.",
                setting="ILIAD_LIMIT_PIPELINES",
            )
