from django.contrib import admin
from django.utils.html import format_html

from apps.projects.admin import AccessScopedAdmin
from apps.runs.models import Artifact, Run, RunEvent, StepRun


@admin.register(Run)
class RunAdmin(AccessScopedAdmin):
    scope = "run"
    list_display = ("id", "pipeline_name", "pipeline_version", "owner", "state", "created_at", "finished_at")
    list_filter = ("state",)


@admin.register(StepRun)
class StepRunAdmin(AccessScopedAdmin):
    """Shows a failed step's whole traceback, which users never see (the API leaves it out)."""

    scope = "run"
    via = "run"

    list_display = ("id", "run", "node_id", "block_id", "state", "attempts", "worker", "finished_at")
    list_filter = ("state",)
    readonly_fields = ("error_traceback",)
    raw_id_fields = ("cached_from",)

    @admin.display(description="Traceback")
    def error_traceback(self, step: StepRun) -> str:
        return format_html("<pre>{}</pre>", (step.error or {}).get("traceback") or "-")


@admin.register(Artifact)
class ArtifactAdmin(AccessScopedAdmin):
    scope = "run"
    via = "run"
    raw_id_fields = ("cached_from",)


@admin.register(RunEvent)
class RunEventAdmin(AccessScopedAdmin):
    scope = "run"
    via = "run"
