"""Runs, their steps, artifacts and the append-only event log.

A Run is a frozen snapshot: the pipeline document and the spec of every block version it uses, so a
run can be explained and repeated after the pipeline or the catalog changed.
"""

from django.conf import settings
from django.db import models


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepState(models.TextChoices):
    PENDING = "pending", "waiting for upstream steps"
    QUEUED = "queued"
    SUBMITTED = "submitted", "submitted to its compute target"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped", "skipped (an upstream step failed)"
    CANCELLED = "cancelled"


RUN_FINISHED = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)
STEP_FINISHED = (StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED)


class Run(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs")
    pipeline = models.ForeignKey(
        "pipelines.Pipeline", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    pipeline_version = models.PositiveIntegerField()
    pipeline_name = models.CharField(max_length=200)
    snapshot = models.JSONField(help_text="{'document': ..., 'blocks': {'id@version': spec}}")
    target = models.CharField(max_length=64, default="celery")
    cache = models.BooleanField(
        default=True,
        help_text="Whether its steps may reuse the results of identical earlier steps (the step cache).",
    )
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    last_event_seq = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.pipeline_name} v{self.pipeline_version}"


class StepRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=64)
    block_id = models.CharField(max_length=200)
    block_version = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed it.")
    walltime_s = models.PositiveIntegerField(
        help_text="Seconds one attempt may run: its block's walltime, frozen at submit."
    )
    error = models.JSONField(null=True, blank=True, help_text="{'type', 'message', 'traceback'}")
    worker = models.CharField(max_length=200, blank=True)
    target = models.CharField(
        max_length=64, blank=True,
        help_text="The compute target it runs on: its node's target, else its run's (frozen at submit).",
    )
    external_id = models.CharField(
        max_length=200, blank=True, help_text="Its job's id at the compute target (submitted or running)."
    )
    launch_attempts = models.PositiveIntegerField(
        default=0, help_text="Launches its target refused with a transient error since it was last queued."
    )
    launch_after = models.DateTimeField(
        null=True, blank=True, help_text="After a refused launch: not tried again before this time."
    )
    events_offset = models.PositiveBigIntegerField(
        default=0, help_text="Polled targets: how far the reconciler has read the job's events file."
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When it was last sent to its compute target; empty while it is queued but held back "
        "by its user's fair share of the workers (ILIAD_FAIR_STEPS_PER_USER).",
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker running it (state running)."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    cache_key = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        help_text="sha256 of block id@version, parameters with defaults and input checksums (see "
        "engine.cache); set when the step became ready in a run using the cache, empty otherwise.",
    )
    cached_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reused_by",
        help_text="The earlier step whose results this one reused instead of running.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="unique_step_per_run")]
        indexes = [
            models.Index(fields=["state", "queued_at"]),
            models.Index(fields=["state", "dispatched_at"]),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.node_id} ({self.block_id}@{self.block_version}) of run {self.run_id}"


class Artifact(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="artifacts")
    step = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="artifacts")
    port = models.CharField(max_length=64)
    uri = models.CharField(max_length=1000)
    type = models.CharField(max_length=32)
    media_type = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    cached_from = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reused_by",
        help_text="The artifact that first produced this file (same URI), when a step reused it. "
        "Protected: a file must not be deleted while another run's artifact refers to it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "port"], name="unique_artifact_per_port")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.port} of {self.step_id}: {self.uri}"

    @property
    def filename(self) -> str:
        return f"{self.step.node_id}-{self.uri.rsplit('/', 1)[-1]}"


class RunEvent(models.Model):
    """One entry of a run's log. ``seq`` is dense per run and ordered by commit."""

    class Kind(models.TextChoices):
        STATE = "state"
        PROGRESS = "progress"
        LOG = "log"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    node_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="unique_event_seq")]
        ordering = ["run", "seq"]

    def __str__(self) -> str:
        return f"run {self.run_id} #{self.seq} {self.kind}"

    def as_dict(self) -> dict:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "node": self.node_id or None,
            "created_at": self.created_at.isoformat(),
            **self.payload,
        }
