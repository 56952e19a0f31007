"""Co-design workshops: an agenda with a timer per item, the pipelines worked on, who takes part, the
runs started there and the decisions taken.

Who takes part: the facilitator, the people added by name or through the join link, and every member
of the workshop's project when it has one. Everybody else does not see the workshop (404).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Workshop(models.Model):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    facilitator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="facilitated_workshops"
    )
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="workshops",
        help_text="Every member of this project takes part.",
    )
    participants = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="workshops")
    pipelines = models.ManyToManyField("pipelines.Pipeline", blank=True, related_name="workshops")
    current_item = models.ForeignKey(
        "AgendaItem",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The agenda item the facilitator is on: what the follow-me view shows.",
    )
    join_digest = models.CharField(max_length=64, blank=True, db_index=True)
    join_prefix = models.CharField(max_length=8, blank=True)
    join_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def join_link_active(self, now=None) -> bool:
        return (
            bool(self.join_digest)
            and self.join_expires_at is not None
            and self.join_expires_at > (now or timezone.now())
        )


class AgendaItem(models.Model):
    workshop = models.ForeignKey(Workshop, on_delete=models.CASCADE, related_name="agenda")
    position = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    minutes = models.PositiveIntegerField(
        default=10, help_text="Time planned for it (the timer counts down)."
    )
    started_at = models.DateTimeField(null=True, blank=True, help_text="When its timer was last started.")

    class Meta:
        ordering = ["workshop", "position", "id"]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class WorkshopRun(models.Model):
    """A run a participant started from the workshop's page: its results are put up for feedback."""

    workshop = models.ForeignKey(Workshop, on_delete=models.CASCADE, related_name="workshop_runs")
    run = models.OneToOneField("runs.Run", on_delete=models.CASCADE, related_name="workshop_run")
    agenda_item = models.ForeignKey(AgendaItem, on_delete=models.SET_NULL, null=True, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.run_id} in {self.workshop}"


class Decision(models.Model):
    workshop = models.ForeignKey(Workshop, on_delete=models.CASCADE, related_name="decisions")
    agenda_item = models.ForeignKey(AgendaItem, on_delete=models.SET_NULL, null=True, blank=True)
    text = models.TextField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.text[:60]
