"""Deliveries of runs' results to data spaces, and each user's remembered choice per pipeline."""

from django.conf import settings
from django.db import models


class DeliveryState(models.TextChoices):
    WAITING = "waiting", "waiting for the run to succeed"
    QUEUED = "queued", "queued"
    DELIVERING = "delivering", "delivering"
    RETRYING = "retrying", "waiting to try again"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"
    SKIPPED = "skipped", "not delivered: the run did not succeed"


DELIVERY_PENDING = (DeliveryState.QUEUED, DeliveryState.RETRYING)
"""States in which a delivery task may claim it."""


class Delivery(models.Model):
    """One request to write a run's deliverables, report and provenance to ``folder`` of ``space``.

    Files go to ``<folder>/<pipeline name>-run-<run id>/``. ``entries`` records what was written (path
    in the space, size, sha256), so an attempt after a failure skips what already arrived, and the
    artifact store keeps every output whatever happens here.
    """

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="deliveries")
    space = models.ForeignKey("dataspaces.DataSpace", on_delete=models.PROTECT, related_name="deliveries")
    folder = models.CharField(
        max_length=1000, blank=True, help_text="Folder inside the space; empty: its root."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="deliveries"
    )
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.WAITING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since it was last (re)queued.")
    error = models.TextField(blank=True, help_text="Why the last attempt failed, as users see it.")
    target_path = models.CharField(
        max_length=1200, blank=True, help_text="The run's folder in the space, once known."
    )
    entries = models.JSONField(
        default=list, blank=True, help_text="[{'path', 'size', 'sha256', 'kind'}] of the files written."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"delivery {self.pk} of run {self.run_id} to {self.space_id}:{self.folder}"


class PipelineDeliveryChoice(models.Model):
    """Where a user last chose to deliver the results of a pipeline, offered again next time."""

    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.CASCADE, related_name="delivery_choices"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delivery_choices"
    )
    space = models.ForeignKey(
        "dataspaces.DataSpace", on_delete=models.CASCADE, related_name="delivery_choices"
    )
    folder = models.CharField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "user"], name="one_delivery_choice_per_pipeline")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} delivers {self.pipeline_id} to {self.space_id}:{self.folder}"
