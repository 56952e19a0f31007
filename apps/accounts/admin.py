from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import ApiToken, Identity, User

admin.site.register(User, UserAdmin)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "prefix", "user", "name", "scope", "project", "created_at", "expires_at", "last_used_at", "revoked_at"
    )
    readonly_fields = ("prefix", "digest", "created_at", "last_used_at")


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    """Deleting an identity unlinks the provider's account: its next sign-in creates a new user."""

    list_display = ("subject", "provider", "issuer", "user", "last_sign_in_at")
    list_filter = ("provider",)
    search_fields = ("subject", "user__username", "user__email")
    readonly_fields = ("issuer", "subject", "provider", "claims", "created_at", "last_sign_in_at")
