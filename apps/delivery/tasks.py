"""Celery tasks of deliveries: take ids, call one service, own the retry schedule."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.delivery.services import deliveries_resume_due, delivery_attempt


@shared_task(
    name="delivery.deliver",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def deliver(delivery_id: int) -> str | None:
    """Attempt a delivery; after a transient failure, send itself again after the back-off."""
    outcome = delivery_attempt(delivery_id=delivery_id)
    if outcome is None:
        return None
    if outcome.retry_in is not None:
        deliver.apply_async((delivery_id,), countdown=outcome.retry_in)
    return outcome.state


@shared_task(name="delivery.resume_due")
def resume_due_deliveries() -> int:
    """Periodic (celery beat): send again deliveries whose task was lost or whose worker died."""
    return deliveries_resume_due(
        grace=timedelta(seconds=settings.ILIAD_DELIVERY_RESUME_AFTER_S),
        stalled_after=timedelta(seconds=settings.ILIAD_DELIVERY_STALL_AFTER_S),
    )
