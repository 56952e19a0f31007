from django.contrib import admin

from apps.pipelines.models import Pipeline, PipelineVersion
from apps.projects.admin import AccessScopedAdmin


@admin.register(Pipeline)
class PipelineAdmin(AccessScopedAdmin):
    list_display = ("id", "name", "owner", "project", "visibility", "latest_version", "updated_at")
    list_filter = ("visibility",)


@admin.register(PipelineVersion)
class PipelineVersionAdmin(AccessScopedAdmin):
    via = "pipeline"
    list_display = ("pipeline", "number", "created_by", "created_at")
