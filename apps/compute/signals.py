"""Worker start-up: when steps are isolated, each worker process starts its step launcher at once
(it imports the block library, seconds) instead of on its first step."""

from __future__ import annotations

import logging

from celery.signals import worker_process_init
from django.conf import settings

logger = logging.getLogger(__name__)


@worker_process_init.connect(dispatch_uid="compute-warm-launcher")
def warm_launcher(**_kwargs) -> None:
    if not getattr(settings, "ILIAD_ISOLATE_STEPS", False):
        return
    from apps.compute.isolation import default_launcher

    try:
        default_launcher().warm()
    except Exception:  # the first isolated step tries again and fails with the reason
        logger.exception("could not start the step launcher at worker start-up")
