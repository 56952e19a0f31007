"""Property-based conformance: schemathesis generates requests for every operation of the OpenAPI schema
(valid and invalid ones) and runs all its checks on the answers — no server error, every status, header,
media type and body as documented, authentication enforced as declared. In-process against the WSGI
application, bounded in examples per operation and time per example."""

from __future__ import annotations

import re
import zlib

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup

from apps.accounts.services import api_token_create
from blocks.types import PORT_TYPES
from iliad_portal.openapi import ERROR_REF
from tests.conftest import openapi_operations, openapi_schema
from tests.support.access import build_access_world
from tests.test_authorization_matrix import PATH_VALUES

EXAMPLES_PER_OPERATION = 25

#: A request body can be schema-valid and still break a rule no JSON Schema states: a pipeline document
#: that does not validate, a user or project that does not exist, ``visibility: project`` without a
#: project. Those are answered with 400 and the error shape, which the schema documents.
BODY_RULES_STATUSES = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
CONFIG = {
    "operations": [
        {
            "include-method": ["POST", "PUT", "PATCH"],
            "checks": {"positive_data_acceptance": {"expected-statuses": BODY_RULES_STATUSES}},
        },
        {
            # A data-space file may not be drawable, and a bounding box may be four numbers that are
            # no box (west > east): 400s the schema documents but cannot state.
            "include-path-regex": "^/api/data-spaces/.*/(preview|search)/$",
            "checks": {"positive_data_acceptance": {"expected-statuses": BODY_RULES_STATUSES}},
        },
    ]
}


@pytest.fixture
def api_schema(world):
    # As in Django's test client: a finished request must not close the connection that holds the
    # test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json", get_wsgi_application(), config=SchemathesisConfig.from_dict(CONFIG)
        )
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def world(catalog):
    """``tests.support.access``'s project with its pipelines, runs, an artifact and a share link."""
    return build_access_world()


@pytest.fixture
def token_key(world) -> str:
    """A read-write token of the world's owner: the operations reach real objects."""
    return api_token_create(user=world.users["owner"], name="schemathesis")[1]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=2000,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,  # no .hypothesis directory in the checkout
)
def test_every_operation_answers_as_its_schema_says(case, world, token_key):
    for name, generated in (case.path_parameters or {}).items():
        # Half of the generated path values (by a stable hash) are replaced by the world's object, so
        # that real objects are read, changed and deleted, and unknown ones answered.
        if name in PATH_VALUES and zlib.crc32(str(generated).encode()) % 2 == 0:
            case.path_parameters[name] = PATH_VALUES[name](world)
    try:
        case.call_and_validate(headers={"Authorization": f"Token {token_key}"})
    except FailureGroup as group:
        failures = [failure for failure in group.exceptions if not _is_json_type_coercion(failure)]
        if failures:
            raise FailureGroup(failures, str(group)) from None


def _is_json_type_coercion(failure) -> bool:
    """DRF fields convert between JSON numbers and strings as they do for form input (``0`` for a name
    becomes ``"0"``, ``"5"`` for a version becomes 5). That leniency is DRF's, on purpose; the schema
    states the types clients must send."""
    if not isinstance(failure, AcceptedNegativeData) or "in body" not in failure.message:
        return False
    violated = re.findall(r"violates `(\w+)`", failure.message)
    return "Incorrect type" in failure.message or (bool(violated) and set(violated) == {"type"})


# --- what the schema declares ---------------------------------------------------------------------


def test_the_schema_generates_without_a_warning_and_validates(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))


def test_the_schema_declares_the_token_bearer_and_session_schemes_on_every_operation():
    schemes = openapi_schema()["components"]["securitySchemes"]
    assert (
        schemes["tokenAuth"]["name"] == "Authorization"
        and "Token <key>" in schemes["tokenAuth"]["description"]
    )
    assert (schemes["oidcBearer"]["type"], schemes["oidcBearer"]["scheme"]) == ("http", "bearer")
    assert schemes["cookieAuth"]["in"] == "cookie" and "X-CSRFToken" in schemes["cookieAuth"]["description"]
    for method, path, operation in openapi_operations():
        declared = {name for requirement in operation["security"] for name in requirement}
        assert {"tokenAuth", "oidcBearer", "cookieAuth"} <= declared, f"{method} {path}"


def _error_body(response: dict) -> dict:
    return response["content"]["application/json"]["schema"]


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [pytest.param(m, p, o, id=f"{m.upper()} {p}") for m, p, o in openapi_operations()],
)
def test_every_operation_declares_the_errors_it_can_answer_in_the_error_shape(method, path, operation):
    responses = operation["responses"]
    expected = {"401", "429"}
    if method in ("post", "put", "patch", "delete"):
        expected.add("403")
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
        expected.add("404")
    if "requestBody" in operation:
        expected |= {"400", "413", "415"}
    assert expected <= set(responses), expected - set(responses)
    for status in (code for code in responses if code.startswith("4")):
        body = _error_body(responses[status])
        assert ERROR_REF == body or ERROR_REF in body.get("anyOf", []), status
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Retry-After" in responses["429"]["headers"]


def test_conflicts_downloads_and_bounds_are_declared():
    paths = openapi_schema()["paths"]
    assert "409" in paths["/api/runs/{run_id}/cancel/"]["post"]["responses"]
    assert "409" in paths["/api/pipelines/{pipeline_id}/runs/"]["post"]["responses"]
    download = paths["/api/runs/{run_id}/artifacts/{artifact_id}/download/"]["get"]["responses"]["200"]
    port_media_types = {port_type.media_type for port_type in PORT_TYPES.values()}
    assert set(download["content"]) == port_media_types | {"application/octet-stream"}
    limit = next(p for p in paths["/api/runs/"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    events = {p["name"]: p["schema"] for p in paths["/api/runs/{run_id}/events/"]["get"]["parameters"]}
    assert events["limit"]["maximum"] == 1000 and events["after"]["minimum"] == 0
