from django.contrib import admin

from apps.delivery.models import Delivery, PipelineDeliveryChoice


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "space", "folder", "state", "attempts", "created_at", "finished_at"]
    list_filter = ["state", "space"]
    readonly_fields = ["entries", "error", "target_path"]


@admin.register(PipelineDeliveryChoice)
class PipelineDeliveryChoiceAdmin(admin.ModelAdmin):
    list_display = ["pipeline", "user", "space", "folder", "updated_at"]
