"""One error shape for the whole API: ``{"detail": ..., "errors": [...]}``, never an HTML 500 page."""

import logging

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus a JSON 500 (logged with its traceback) for anything unexpected."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(
        {"detail": "internal error; it has been logged"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )
