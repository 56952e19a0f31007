"""The OpenAPI schema's error answers: every operation lists each error status it can answer with, in the
API's one error shape (``iliad_portal.api_errors``), so that clients and the schemathesis run in the
suite see what really happens.

The statuses that follow from how the API is built are added here, by the rule that produces them; an
operation's own conditions (409 for a conflict, a 400 with the pipeline document's issues) stay in its
``@extend_schema``. A status an operation already declares is kept, its body widened to also allow the
error shape where the generic rule can answer it too.
"""

from __future__ import annotations

ERROR_COMPONENT = "ErrorResponse"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Every error answer of the API. `detail` says what is wrong in words; a refused request body or "
        "query also names each field under `fields`; a refused pipeline document lists its issues under "
        "`errors`."
    ),
    "properties": {
        "detail": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {},
            "description": "Messages per field of the request body or query that was refused.",
        },
        "errors": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": {}},
            "description": "The pipeline document's issues: code, where (node id / JSON pointer), message.",
        },
    },
    "required": ["detail"],
}

DESCRIPTIONS = {
    "400": "The request's query or body is refused; `detail` (and `fields`) say what and where.",
    "401": (
        "No credentials where the operation needs them, or a token that is unknown, revoked or expired "
        "(`detail` says which)."
    ),
    "403": (
        "The credentials are not allowed to do this: a read-only token on a write, a project role that "
        "does not allow the change, or a session request without its CSRF token."
    ),
    "404": "No such object, or one the credentials may not see (the API does not tell them apart).",
    "413": "The request body is larger than the portal accepts (`DATA_UPLOAD_MAX_MEMORY_SIZE`).",
    "415": "The request body's media type is not JSON, form or multipart data.",
    "429": (
        "Too many requests (a rate limit, or too many failed token attempts from this address), or a "
        "per-user limit that frees itself as runs finish; `Retry-After` says when to try again when known."
    ),
}

HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "schema": {"type": "string"},
            "description": "The scheme to authenticate with (`Token`, or `Session` for the browser).",
        }
    },
    "429": {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 0},
            "description": "Seconds to wait before the next request, for rate limits.",
        }
    },
}

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
UNSAFE_METHODS = ("put", "post", "delete", "patch")


def error_statuses(method: str, operation: dict) -> list[str]:
    """The error statuses that ``operation`` can answer with because of how every API view is built:
    authentication (a bad token is refused even where none is needed) and throttling everywhere; 403
    on writes (read-only tokens, project roles, CSRF); 404 where a path names an object or a ``format``
    can be unknown; 400 where a body or a constrained query parameter is validated; 413 and 415 where a
    body is read."""
    parameters = operation.get("parameters", [])
    statuses = {"401", "429"}
    if method in UNSAFE_METHODS:
        statuses.add("403")
    if any(parameter["in"] == "path" for parameter in parameters) or any(
        parameter["in"] == "query" and parameter["name"] == "format" for parameter in parameters
    ):
        statuses.add("404")
    if "requestBody" in operation or any(
        parameter["in"] == "query" and _constrained(parameter.get("schema", {})) for parameter in parameters
    ):
        statuses.add("400")
    if "requestBody" in operation:
        statuses.update({"413", "415"})
    return sorted(statuses)


def _constrained(schema: dict) -> bool:
    """Whether a query parameter's value can be refused: anything but a free-form string."""
    keys = {"enum", "minimum", "maximum", "pattern", "minLength", "maxLength", "format"}
    return schema.get("type", "string") != "string" or bool(keys & set(schema))


def _error_response(status: str) -> dict:
    response = {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": ERROR_REF}}}
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _allow_error_shape(response: dict) -> None:
    """Widen a declared JSON error body so that the generic error shape is valid too."""
    content = response.setdefault("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        content["application/json"] = {"schema": ERROR_REF}
    elif schema != ERROR_REF and not any(option == ERROR_REF for option in schema.get("anyOf", [])):
        content["application/json"]["schema"] = {"anyOf": [schema, ERROR_REF]}


def add_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``): the
    ``ErrorResponse`` component, and on every operation each status of ``error_statuses``."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in error_statuses(method, operation):
                if status in responses:
                    _allow_error_shape(responses[status])
                else:
                    responses[status] = _error_response(status)
            for status, response in responses.items():
                # An error an operation declares itself (e.g. 409) is in the same shape, unless it says
                # otherwise.
                if status.startswith(("4", "5")) and not response.get("content"):
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
    return result
