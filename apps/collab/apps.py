from django.apps import AppConfig


class CollabConfig(AppConfig):
    name = "apps.collab"
    label = "collab"
    verbose_name = "Editing together"
