"""Pipelines and their versions. A version's document never changes once saved."""

from django.conf import settings
from django.db import models

from apps.projects.models import Visibility


class Pipeline(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="pipelines",
        help_text="The project whose members share it (by their role) when its visibility is not private.",
    )
    visibility = models.CharField(
        max_length=8,
        choices=Visibility.choices,
        default=Visibility.PRIVATE,
        help_text="Who may see it: its owner alone, its project's members, or everyone signed in.",
    )
    latest_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.name


class PipelineVersion(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    document = models.JSONField()
    message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="unique_pipeline_version")]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.pipeline} v{self.number}"
