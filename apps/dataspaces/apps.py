from django.apps import AppConfig


class DataspacesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.dataspaces"
    verbose_name = "Data spaces"

    def ready(self) -> None:
        from apps.dataspaces import resolve

        resolve.install()
