"""Pagination of the API's lists: DRF's ``?limit=&offset=``, but a malformed value is refused with a
400 naming it (DRF would silently fall back to the default) and ``limit`` is capped at ``MAX_LIMIT``
(uncapped, a huge one asks for every row at once or overflows the database's SQL LIMIT)."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 1000
MAX_DIGITS = 18  # any offset beyond is past every list; it also keeps the value within a 64-bit integer


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request) -> int:
        if self.limit_query_param not in request.query_params:
            return self.default_limit
        return min(_whole_number(request, self.limit_query_param, minimum=1), self.max_limit)

    def get_offset(self, request) -> int:
        if self.offset_query_param not in request.query_params:
            return 0
        return _whole_number(request, self.offset_query_param, minimum=0)


def _whole_number(request, name: str, *, minimum: int) -> int:
    text = request.query_params[name]
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS) or int(text) < minimum:
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}…"
        problem = f"must be a whole number of at least {minimum} (at most {MAX_DIGITS} digits), not {shown}"
        raise ValidationError({name: problem})
    return int(text)
