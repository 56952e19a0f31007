"""Admin for feedback, its history and notifications.

Superusers see everything. Other staff see the feedback on runs they may see (``AccessScopedAdmin``)
and only their own notifications. A feedback is its author's: the admin never changes its text or
rating (its history would no longer be what was given); a superuser may delete one.
"""

from django.contrib import admin

from apps.feedback.models import Feedback, FeedbackRevision, Notification
from apps.projects.admin import AccessScopedAdmin


class FeedbackRevisionInline(admin.TabularInline):
    model = FeedbackRevision
    extra = 0
    can_delete = False
    fields = ("number", "rating", "verdict", "comment", "tags", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Feedback)
class FeedbackAdmin(AccessScopedAdmin):
    scope = "run"
    via = "run"
    list_display = ("id", "user", "run", "artifact", "rating", "verdict", "updated_at")
    list_filter = ("verdict", "rating")
    search_fields = ("comment", "user__username")
    readonly_fields = (
        "user",
        "run",
        "artifact",
        "rating",
        "verdict",
        "comment",
        "tags",
        "created_at",
        "updated_at",
    )
    inlines = [FeedbackRevisionInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser and super().has_delete_permission(request, obj)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "recipient", "message", "created_at", "read_at", "emailed_at")
    list_filter = ("read_at", "emailed_at")
    search_fields = ("message", "recipient__username")
    readonly_fields = ("recipient", "message", "url", "feedback", "created_at", "emailed_at")
    raw_id_fields = ("feedback",)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(recipient=request.user)

    def has_add_permission(self, request):
        return False
