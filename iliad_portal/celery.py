"""The Celery app. Workers start with ``celery -A iliad_portal worker``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")

app = Celery("iliad_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
