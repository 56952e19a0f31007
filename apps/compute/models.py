"""Compute targets: where steps run (a Celery queue, an RQ queue, isolated processes on this machine,
a Slurm cluster). Runs and steps refer to a target by its ``name``."""

from django.conf import settings
from django.db import models


class ComputeTarget(models.Model):
    class Kind(models.TextChoices):
        CELERY = "celery", "Celery queue (cloud workers)"
        RQ = "rq", "RQ queue on Redis"
        LOCAL = "local", "Isolated processes on the portal's machine"
        SLURM = "slurm", "Slurm cluster (HPC)"

    name = models.SlugField(
        max_length=64, unique=True,
        help_text="Short identifier used in pipeline documents and as the queue name (e.g. 'cloud').",
    )
    title = models.CharField(max_length=200, help_text="What users see when they pick a target.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(
        blank=True, help_text="For users: what it is for, its limits, the queue wait to expect (markdown)."
    )
    config = models.JSONField(
        default=dict, blank=True,
        help_text="Non-secret options of its executor (queue depth threshold, isolate, partition, …).",
    )
    secrets_encrypted = models.TextField(
        blank=True, default="",
        help_text="Secret options (keys, passwords), encrypted at rest; never returned by the API.",
    )
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, help_text="Where steps run when neither the node nor the run names a target."
    )
    public = models.BooleanField(
        default=True, help_text="Every signed-in user may use it; otherwise only the users and groups below."
    )
    allowed_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    allowed_groups = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    max_concurrent_steps = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many of its steps submitted or running at once."
    )
    overflow = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Where new steps go while this target's queue is deeper than its burst threshold.",
    )
    burst_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Queue depth above which new steps go to the overflow target."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.title} ({self.name})"
