"""Admin for comments on pipelines (staff see those on pipelines they may see)."""

from django.contrib import admin

from apps.collab.models import Comment
from apps.projects.admin import AccessScopedAdmin


@admin.register(Comment)
class CommentAdmin(AccessScopedAdmin):
    via = "pipeline"
    list_display = ("id", "pipeline", "node_id", "author", "parent", "resolved_at", "created_at")
    list_filter = ("resolved_at",)
    search_fields = ("body", "author__username")
    raw_id_fields = ("pipeline", "parent", "author", "resolved_by", "mentions")
