"""One error shape for the whole API, never an HTML page: ``{"detail": "<what is wrong, in words>"}``,
plus ``"errors": [...]`` (the pipeline document's issues) or ``"fields": {...}`` (DRF's per-field
messages of a refused request body or query)."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from apps.accounts.limits import LimitExceeded
from iliad_portal.api_parsers import RequestTooLarge
from iliad_portal.broker import BROKER_ERRORS, BrokerUnavailable

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, with field errors given a ``detail`` that names each field, JSON even when content
    negotiation fails or the view answers in another format, a 413 for oversized bodies, the status a
    per-user limit asks for (429 or 409), and a logged JSON 500 for anything unexpected."""
    if isinstance(exc, LimitExceeded):
        return Response({"detail": str(exc)}, status=exc.status)
    if isinstance(exc, BROKER_ERRORS):  # the broker / the Redis behind the cache is down: 503, not 500
        logger.warning("broker unavailable in %s: %s", context.get("view").__class__.__name__, exc)
        exc = BrokerUnavailable()
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(
            f"request body too large: the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
        )
    request, view = context.get("request"), context.get("view")
    if request is not None and getattr(request, "accepted_renderer", None) is None:
        # Content negotiation failed: answer in JSON, not in the view's first renderer (YAML for the
        # schema view), and for an unknown ?format= say so rather than DRF's bare "Not found.".
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        if isinstance(exc, Http404) and view is not None:
            requested = view.format_kwarg or request.query_params.get(api_settings.URL_FORMAT_OVERRIDE)
            formats = ", ".join(dict.fromkeys(renderer.format for renderer in view.renderer_classes))
            exc = NotFound(f"unknown format {requested!r}; this endpoint answers in {formats}")
    elif request is not None and not (request.accepted_media_type or "").startswith("application/json"):
        # An error is plain JSON even from a view whose answers are another format (the schema's YAML).
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in %s", view.__class__.__name__)
        return Response(
            {"detail": "internal error; it has been logged"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    if isinstance(exc, ValidationError):
        response.data = _validation_error_body(response.data)
    return response


def _validation_error_body(data) -> dict:
    """``{"name": ["This field is required."]}`` → the same under ``fields``, with ``detail``
    ``"name: This field is required."``; errors not about a field appear in ``detail`` alone."""
    unnamed = ("detail", api_settings.NON_FIELD_ERRORS_KEY)
    messages = [f"{where}: {message}" if where else message for where, message in _messages(data, unnamed)]
    body = {"detail": " ".join(messages)}
    if isinstance(data, dict) and any(key not in unnamed for key in data):
        body["fields"] = {key: value for key, value in data.items() if key not in unnamed}
    return body


def _messages(data, unnamed: tuple[str, ...], where: str = ""):
    """(dotted field path, message) for every message in DRF's nested error details."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key in unnamed and not where:
                yield from _messages(value, unnamed)
            else:
                yield from _messages(value, unnamed, f"{where}.{key}" if where else str(key))
    elif isinstance(data, list):
        for item in data:
            yield from _messages(item, unnamed, where)
    else:
        yield where, str(data)


def page_not_found(request, exception):
    """``handler404``: a URL that no route matches is answered in JSON under /api/, else the HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no API endpoint at {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


class RefuseNulInPath(MiddlewareMixin):
    """A path with a NUL character names nothing here, so it is a 404 (JSON under /api/) before any
    view looks it up; PostgreSQL refuses even to compare text that holds one."""

    def process_request(self, request):
        if "\x00" in request.path_info:
            raise Http404("no resource has a NUL character in its name")
