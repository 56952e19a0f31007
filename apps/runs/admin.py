from django.contrib import admin

from apps.runs.models import Artifact, Run, RunEvent, StepRun


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "pipeline_name", "pipeline_version", "owner", "state", "created_at", "finished_at")
    list_filter = ("state",)


admin.site.register(StepRun)
admin.site.register(Artifact)
admin.site.register(RunEvent)
