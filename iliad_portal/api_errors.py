"""One error shape for the whole API: ``{"detail": ..., "errors": [...]}``, never an HTML 500 page."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from iliad_portal.api_parsers import RequestTooLarge

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, a 413 for oversized bodies, and a logged JSON 500 for anything unexpected."""
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(
            f"request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
        )
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        {"detail": "internal error; it has been logged"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )
