"""Pagination of the API's lists: DRF's ``?limit=&offset=``, but a malformed value is refused with a
400 naming it (DRF would silently fall back to the default), and so is a ``limit`` above ``MAX_LIMIT``
(a huge one asks for every row at once or overflows the database's SQL LIMIT); the schema states both
bounds."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAX_LIMIT = 1000
MAX_DIGITS = 18  # any offset beyond is past every list; it also keeps the value within a 64-bit integer


class StrictLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request) -> int:
        if self.limit_query_param not in request.query_params:
            return self.default_limit
        return _whole_number(request, self.limit_query_param, minimum=1, maximum=self.max_limit)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        """DRF's ``limit`` and ``offset`` parameters with the bounds enforced here."""
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": 10**MAX_DIGITS - 1},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters

    def get_offset(self, request) -> int:
        if self.offset_query_param not in request.query_params:
            return 0
        return _whole_number(request, self.offset_query_param, minimum=0)


def _whole_number(request, name: str, *, minimum: int, maximum: int | None = None) -> int:
    text = request.query_params[name]
    valid = text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS
    if not valid or int(text) < minimum or (maximum is not None and int(text) > maximum):
        shown = repr(text) if len(text) <= 40 else f"{text[:40]!r}…"
        bounds = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        problem = f"must be a whole number {bounds} (at most {MAX_DIGITS} digits), not {shown}"
        raise ValidationError({name: problem})
    return int(text)
