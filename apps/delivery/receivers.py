"""Start deliveries when a run ends (``apps.runs.signals.run_finished``, sent after commit)."""

from django.dispatch import receiver

from apps.runs.models import Run
from apps.runs.signals import run_finished


@receiver(run_finished, sender=Run, dispatch_uid="delivery-start-on-run-finished")
def start_deliveries(sender, *, run_id: int, state: str, **kwargs) -> None:
    from apps.delivery.services import deliveries_start

    deliveries_start(run_id=run_id, state=state)
