"""Request parsers with a size limit: a body larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is refused
with 413 before it is read (DRF reads the stream directly, bypassing Django's own check); JSON nested
too deeply for Python's decoder is a 400."""

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class RequestTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            raise RequestTooLarge(f"request body too large: {length} bytes, the limit is {limit} bytes")
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # A thousand "[" exhaust the decoder's recursion: far below the size limit.
            raise ParseError("JSON parse error - the body is nested too deeply") from None
