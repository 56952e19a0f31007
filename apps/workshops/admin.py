"""Admin for workshops: superusers see all of them, other staff those they take part in."""

from django.contrib import admin

from apps.workshops.models import AgendaItem, Decision, Workshop, WorkshopRun
from apps.workshops.selectors import workshops_visible_to


class AgendaItemInline(admin.TabularInline):
    model = AgendaItem
    extra = 0
    fields = ("position", "title", "minutes", "started_at")


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    fields = ("text", "agenda_item", "decided_by", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("decided_by",)


@admin.register(Workshop)
class WorkshopAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "facilitator", "project", "join_expires_at", "created_at")
    search_fields = ("title", "facilitator__username")
    raw_id_fields = ("facilitator", "project", "participants", "pipelines", "current_item")
    readonly_fields = ("join_digest", "join_prefix")
    inlines = [AgendaItemInline, DecisionInline]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(pk__in=workshops_visible_to(user=request.user).values("pk"))

    def _facilitates(self, request, obj) -> bool:
        return obj is None or request.user.is_superuser or obj.facilitator_id == request.user.pk

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._facilitates(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._facilitates(request, obj)


@admin.register(WorkshopRun)
class WorkshopRunAdmin(admin.ModelAdmin):
    list_display = ("id", "workshop", "run", "started_by", "created_at")
    raw_id_fields = ("workshop", "run", "agenda_item", "started_by")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(workshop__in=workshops_visible_to(user=request.user).values("pk"))
