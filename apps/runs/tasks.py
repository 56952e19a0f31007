"""Celery tasks: thin wrappers that take ids, call one service and own their retry policy."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.runs.services import step_execute, steps_dispatch_held, steps_recover_stalled, steps_requeue_lost


@shared_task(
    name="runs.execute_step",
    bind=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def execute_step(self, step_id: int) -> bool:
    """Run one step. Safe to deliver twice: only the delivery that claims the step runs it."""
    return step_execute(step_id=step_id, worker=self.request.hostname or "")


@shared_task(name="runs.requeue_lost_steps")
def requeue_lost_steps() -> int:
    """Periodic (celery beat): re-dispatch steps whose queue message seems lost."""
    return steps_requeue_lost(older_than=timedelta(seconds=settings.ILIAD_REQUEUE_AFTER_S))


@shared_task(name="runs.dispatch_held_steps")
def dispatch_held_steps() -> int:
    """Periodic (celery beat): dispatch held steps in turns across users, each up to their fair share."""
    return steps_dispatch_held()


@shared_task(name="runs.recover_stalled_steps")
def recover_stalled_steps() -> int:
    """Periodic (celery beat): run again, or fail, running steps whose worker stopped sending
    heartbeats; fail those that overran their walltime."""
    return steps_recover_stalled(
        stalled_after=timedelta(seconds=settings.ILIAD_STALL_AFTER_S),
        max_attempts=settings.ILIAD_MAX_ATTEMPTS,
        walltime_grace=timedelta(seconds=settings.ILIAD_WALLTIME_GRACE_S),
    )
