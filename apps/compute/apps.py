from django.apps import AppConfig


class ComputeConfig(AppConfig):
    name = "apps.compute"
    label = "compute"
    verbose_name = "Compute targets"

    def ready(self) -> None:
        from apps.compute import signals  # noqa: F401  (connects the worker start-up handler)
