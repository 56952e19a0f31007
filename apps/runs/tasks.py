"""Celery tasks: thin wrappers that take ids, call one service and own their retry policy."""

import logging
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.runs.agent import step_execute
from apps.runs.orchestration import steps_dispatch_held
from apps.runs.reconciler import reconcile, steps_recover_stalled, steps_requeue_lost

logger = logging.getLogger(__name__)


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
    """Periodic (celery beat): re-dispatch steps whose queue message seems lost or whose launch
    back-off is over."""
    return steps_requeue_lost(older_than=timedelta(seconds=settings.ILIAD_REQUEUE_AFTER_S))


@shared_task(name="runs.dispatch_held_steps")
def dispatch_held_steps() -> int:
    """Periodic (celery beat): dispatch held steps in turns across users, each up to their fair share."""
    return steps_dispatch_held()


@shared_task(name="runs.recover_stalled_steps")
def recover_stalled_steps() -> dict[str, int]:
    """Periodic (celery beat): poll the targets that do not report by themselves; run again, or fail,
    running steps whose worker stopped sending heartbeats; fail those that overran their walltime."""
    return reconcile()


@worker_ready.connect
def reconcile_at_start(**_kwargs) -> None:
    """A worker that starts (e.g. after the portal restarted) re-attaches to polled jobs and takes
    back what its predecessors left behind, instead of waiting for the first beat."""
    try:
        reconcile(at_start=True)
    except Exception:
        logger.exception("reconciling at worker start-up failed; the periodic task will try again")


__all__ = ["execute_step", "steps_recover_stalled"]
