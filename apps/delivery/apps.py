from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "apps.delivery"
    label = "delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.delivery import receivers  # noqa: F401  (connects to apps.runs.signals.run_finished)
