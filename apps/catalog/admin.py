from django.contrib import admin

from apps.catalog.models import BlockVersion


@admin.register(BlockVersion)
class BlockVersionAdmin(admin.ModelAdmin):
    list_display = ("block_id", "version", "category", "available", "synced_at")
    list_filter = ("category", "available")
