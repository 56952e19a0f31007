"""The catalog: one row per block version ever provided, so old runs stay explainable."""

from django.db import models


class BlockVersion(models.Model):
    block_id = models.CharField(max_length=200, db_index=True)
    version = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    category = models.CharField(max_length=32, db_index=True)
    description = models.TextField(blank=True)
    spec = models.JSONField(help_text="BlockSpec.to_dict(): ports, parameter schema, resources.")
    available = models.BooleanField(
        default=True, help_text="Still provided by the installed code; unavailable versions cannot run."
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["block_id", "version"], name="unique_block_version")]
        ordering = ["category", "block_id"]

    def __str__(self) -> str:
        return f"{self.block_id}@{self.version}"
