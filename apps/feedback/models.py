"""Feedback on runs and their results, its history, and the notifications it sends.

One person gives at most one feedback per item: a whole run (``artifact`` empty) or one result
artifact of it. Editing keeps the earlier states as ``FeedbackRevision`` rows. Who may see a feedback
is who may see its run (``apps.projects.access``); these models only hold the facts.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Verdict(models.TextChoices):
    FIT = "fit", "fit for decision"
    NEEDS_CHANGES = "needs_changes", "needs changes"
    WRONG = "wrong", "wrong"


class Feedback(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback")
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="feedback")
    artifact = models.ForeignKey(
        "runs.Artifact",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="feedback",
        help_text="The result it is about; empty when it is about the whole run.",
    )
    rating = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True, help_text="Short labels, e.g. ['coastline', 'units'].")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "run"], condition=Q(artifact__isnull=True), name="one_feedback_per_run"
            ),
            models.UniqueConstraint(
                fields=["user", "artifact"],
                condition=Q(artifact__isnull=False),
                name="one_feedback_per_artifact",
            ),
            models.CheckConstraint(condition=Q(rating__gte=1, rating__lte=5), name="feedback_rating_1_to_5"),
        ]
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        item = f"artifact {self.artifact_id}" if self.artifact_id else f"run {self.run_id}"
        return f"{self.user} on {item}: {self.rating}/5 {self.verdict}"


class FeedbackRevision(models.Model):
    """One saved state of a feedback, oldest first: number 1 is what was first given."""

    feedback = models.ForeignKey(Feedback, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    rating = models.PositiveSmallIntegerField()
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["feedback", "number"], name="unique_feedback_revision")
        ]
        ordering = ["feedback", "number"]

    def __str__(self) -> str:
        return f"revision {self.number} of feedback {self.feedback_id}"


class Notification(models.Model):
    """A message in someone's in-portal list (the bell), also e-mailed when e-mail is configured."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    message = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True, help_text="Where the message leads (a portal path).")
    feedback = models.ForeignKey(
        Feedback, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["recipient", "read_at"])]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"to {self.recipient}: {self.message[:60]}"
