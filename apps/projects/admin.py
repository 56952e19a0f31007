"""Admin for projects, and the access rules the admin applies to staff who are not superusers.

Superusers see and change everything. Other staff see in each list only what ``apps.projects.access``
lets them see, and may change or delete an object only when they hold that right on it (or on the
pipeline or run it belongs to), on top of Django's model permissions.
"""

from django.contrib import admin

from apps.projects import access
from apps.projects.models import Membership, Project, Role, ShareLink


class AccessScopedAdmin(admin.ModelAdmin):
    """Set ``scope`` to ``"pipeline"`` or ``"run"`` and ``via`` to the field that leads from the model
    to it (empty for the pipeline or run itself)."""

    scope = "pipeline"
    via = ""
    change_action = {"pipeline": "edit", "run": "cancel"}
    delete_action = "delete"

    def _visible(self, user):
        if self.scope == "pipeline":
            return access.pipelines_visible_to(user=user)
        return access.runs_visible_to(user=user)

    def _target(self, obj):
        return getattr(obj, self.via) if self.via else obj

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        field = f"{self.via}_id__in" if self.via else "pk__in"
        return queryset.filter(**{field: self._visible(request.user).values("pk")})

    def _may(self, request, action: str, obj) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        target = self._target(obj)
        return target is not None and access.can(request.user, action, target)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and self._may(request, self.change_action[self.scope], obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may(request, self.delete_action, obj)


class ProjectScopedAdmin(admin.ModelAdmin):
    """Staff who are not superusers see the projects they belong to; only their owners change them."""

    project_field = "pk"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        mine = access.projects_of(user=request.user).values("pk")
        return queryset.filter(**{f"{self.project_field}__in": mine})

    def _owns(self, request, obj) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        project = obj if isinstance(obj, Project) else obj.project
        return Membership.objects.filter(project=project, user=request.user, role=Role.OWNER).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._owns(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._owns(request, obj)


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdmin):
    list_display = ("slug", "name", "created_at")
    search_fields = ("slug", "name")


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdmin):
    project_field = "project"
    list_display = ("project", "user", "role", "source", "created_at")
    list_filter = ("role", "source")


@admin.register(ShareLink)
class ShareLinkAdmin(AccessScopedAdmin):
    via = "pipeline"
    change_action = {"pipeline": "edit", "run": "edit"}
    delete_action = "edit"
    list_display = ("prefix", "pipeline", "created_by", "created_at", "expires_at", "revoked_at")
    readonly_fields = ("prefix", "digest", "created_at")
