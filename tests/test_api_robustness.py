"""The API under hostile input, operation by operation, as its own OpenAPI schema lists them.

A signed-in user sends what a buggy or malicious client might: ids that do not exist or are another
user's, bodies that are not JSON or not an object, each documented field with a value of the wrong
kind, unknown fields, query parameters of the wrong type, the wrong Content-Type. Whatever comes in,
the answer is never a 5xx; a 4xx has the error shape of ``iliad_portal.api_errors`` (a ``detail`` in
words that names the field or parameter at fault); and a refused request changes nothing.

The cases are derived from the schema, so an endpoint is covered the day it is added. The only
inputs written by hand are one valid body per request schema (``VALID_BODIES``): each case is that
valid request with one thing made wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings
from django.db import transaction
from django.test.client import encode_multipart
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from apps.collab.models import Comment
from apps.feedback.models import Feedback, FeedbackRevision, Notification
from apps.pipelines.models import Pipeline, PipelineVersion
from apps.projects.models import Membership, Project, ShareLink
from apps.runs.models import Artifact, Run, RunEvent, StepRun
from tests.conftest import document, edge, node, openapi_operations, openapi_schema

# Some hostile input fails only on PostgreSQL (NUL characters in text): the valid requests and the cases
# whose values a database may judge differently (DATABASE_SENSITIVE) run again there.
DATABASE_SENSITIVE = ("NUL", "unicode", "long", "10k chars", "2**63", "deep", "nested")
"""Words of a case's label whose value reaches the database in a form SQLite and PostgreSQL treat
differently (NUL and non-BMP text, lengths past a column's size, integers past 64 bits, deep JSON)."""


def valid_document() -> dict:
    demo = node("demo", "ocean.demo_dataset", days=5, resolution=1.0)
    mean = node("mean", "ocean.area_mean", variable="sst")
    valid = document([demo, mean], [edge("demo", "dataset", "mean", "dataset")])
    return {**valid, "metadata": {"notes": "first look"}}


PIPELINE_WRITE = {"name": "SST", "description": "Biscay", "document": valid_document(), "message": "first"}
VALID_BODIES = {
    "PipelineWriteRequest": PIPELINE_WRITE,
    "PatchedPipelineWriteRequest": PIPELINE_WRITE,
    "DocumentRequest": {"document": valid_document()},
    "RunCreateRequest": {"version": 1, "target": "celery"},
    "RunRerunRequest": {"from": "mean"},
    "TemplateUseRequest": {"name": "My heatwaves"},
    "ShareLinkCreateRequest": {"days": 7},
    "ProjectWriteRequest": {"slug": "ocean-team", "name": "Ocean team", "description": "Biscay"},
    "MemberAddRequest": {"username": "carol", "role": "editor"},
    "MemberRoleRequest": {"role": "editor"},
    "ComputeTargetWriteRequest": {"name": "cloud-eu", "title": "EU cloud", "kind": "celery"},
    "PatchedComputeTargetWriteRequest": {"title": "Cloud workers (EU)"},
    "CommentCreateRequest": {"body": "Is this the right box?", "node_id": "mean"},
    "PatchedCommentUpdateRequest": {"body": "edited", "resolved": True},
    "FeedbackGiveRequest": {"rating": 4, "verdict": "fit", "comment": "looks right", "tags": ["units"]},
    "FeedbackChangeRequest": {"rating": 3, "verdict": "needs_changes", "comment": "better", "tags": []},
    "NotificationsReadRequest": {"ids": []},
    "DeliveryRequestRequest": {"space": "alice-results", "folder": "runs/2026", "remember": True},
    "DeliveryChoiceRequest": {"space": "alice-results", "folder": "runs/2026"},
    "DataSpaceWriteRequest": {"name": "alice-bucket", "title": "Alice's bucket", "kind": "s3",
                              "config": {"bucket": "ocean"}, "credentials": {"secret_access_key": "s"}},
    "PatchedDataSpaceWriteRequest": {"title": "Alice's results (2026)"},
}
"""A request body that succeeds, for each request schema of the API (keyed by component name)."""
FREE_TEXT = {"document": ("metadata", "notes")}
"""Where a JSON field's valid value holds free text, which validation does not judge: a hostile value
put there reaches the database."""

BASELINE_REFUSED = {
    "POST /api/runs/{run_id}/retry/": 409,
    # Nothing of the queued run was delivered yet, so there is nothing to deliver again.
    "POST /api/runs/{run_id}/delivery/again/": 409,
    # Only staff write compute targets (tests/test_compute_targets.py); Alice is told so, after her
    # request's shape was checked.
    "POST /api/compute-targets/": 403,
    "PATCH /api/compute-targets/{target_name}/": 403,
    "DELETE /api/compute-targets/{target_name}/": 403,
    # A quick look needs a data file; the world's data space is empty.
    "GET /api/data-spaces/{space_id}/preview/": 400,
}
"""Operations whose valid request cannot succeed on this module's world: its runs stay queued, and only
a failed run can be retried (tests/test_step_cache.py retries real failed runs)."""

NOT_OPERATIONS = {"/api/docs/"}  # the Swagger UI page that shows the schema

UNKNOWN_FIELD = "unexpected"
UNICODE = "Océan Ἀτλαντικός 🌊 \u202eevil\u202c 日本"
NUL = "nul\x00char"


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


# --- the schema, read as operations ----------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"

    def parameters(self, where: str) -> list[dict]:
        return [parameter for parameter in self.spec.get("parameters", []) if parameter["in"] == where]

    @property
    def content_types(self) -> list[str]:
        return list(self.spec.get("requestBody", {}).get("content", {}))

    @property
    def body_schema_name(self) -> str | None:
        reference = self.spec.get("requestBody", {}).get("content", {}).get("application/json", {})
        return reference.get("schema", {}).get("$ref", "").rpartition("/")[2] or None

    @property
    def body_schema(self) -> dict:
        return openapi_schema()["components"]["schemas"][self.body_schema_name]

    @property
    def valid_body(self) -> dict | None:
        return VALID_BODIES.get(self.body_schema_name) if self.body_schema_name else None


OPERATIONS = [Operation(*operation) for operation in openapi_operations()]

OWNED = ("pipeline_id", "run_id", "artifact_id", "link_id", "project_slug", "feedback_id")
"""Path parameters naming something a user owns: another user's must be as unknown as a made-up id."""


@dataclass(frozen=True)
class Case:
    """The valid request of ``operation`` with one thing made wrong, and what the answer must be."""

    operation: Operation
    label: str
    path: dict[str, str] = field(default_factory=dict)  # path parameters other than Alice's own
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # None: the operation's valid body, if it takes one
    content_type: str = "application/json"
    status: int | None = None  # the answer must have this status
    refused: bool = False  # the answer must be a 4xx
    names: str | None = None  # a 4xx must name this field or parameter in its detail
    echoed: tuple[str, object] | None = None  # (field, value): when accepted, it must come back intact

    @property
    def id(self) -> str:
        return f"{self.operation} {self.label}"

    @property
    def marks(self) -> tuple:
        return (pytest.mark.stack,) if any(word in self.label for word in DATABASE_SENSITIVE) else ()


ANOTHER_USERS = "<another user's>"


def path_cases(operation: Operation) -> list[Case]:
    cases = []
    for parameter in operation.parameters("path"):
        name = parameter["name"]
        if parameter["schema"].get("type") == "integer":
            wrong = {"0": "0", "2**63": str(2**63), "not a number": "abc", "negative": "-1"}
        else:
            wrong = {"unknown": "no-such-thing", "with NUL": NUL, "unicode": UNICODE, "long": "x" * 1000}
        if name in OWNED:
            wrong["another user's"] = ANOTHER_USERS
        cases += [
            Case(operation, f"path {name}={label}", path={name: value}, status=404)
            for label, value in wrong.items()
        ]
    return cases


def wrong_values(schema: dict) -> list[tuple[str, object, bool]]:
    """(label, value, whether the schema rules it out) for one documented body field."""
    kind = schema.get("type")  # None: any JSON value
    typed = kind is not None
    values: list[tuple[str, object, bool]] = [
        ("null", None, not schema.get("nullable", False)),
        ("true", True, typed and kind != "boolean"),
        ("an object", {"nested": {"object": [1, 2]}}, typed),
        # a list of two texts is right for an array of texts (feedback tags), wrong for anything else
        ("a list", ["a", "list"],
         typed and (kind != "array" or schema.get("items", {}).get("type") != "string")),
        ("nested 200 deep", nested(200), typed),
        ("100k chars", "x" * 100_000, kind == "integer" or schema.get("maxLength", 10**9) < 100_000),
        ("with NUL", NUL, typed),
        ("unicode", UNICODE, kind in ("integer", "boolean")),
    ]
    if kind == "boolean":
        values.append(("text", "abc", True))
    if kind == "string":
        values.append(("a number", 12345, False))
    if kind == "integer":
        values += [("text", "abc", True), ("a fraction", 1.5, True), ("2**63", 2**63, False)]
        if "minimum" in schema:
            values.append(("below its minimum", schema["minimum"] - 1, True))
    return values


def text_ruled_out(schema: dict, text: str) -> bool:
    """Whether the schema rules out ``text`` as the value of a field (sent as a form field, say)."""
    if schema.get("type") == "integer":
        return True
    too_long = len(text) > schema.get("maxLength", len(text))
    return schema.get("type") == "string" and ("\x00" in text or too_long)


def placed(value: dict, path: tuple[str, ...], inner: object) -> dict:
    """A copy of ``value`` with ``inner`` at ``path``."""
    copy = json.loads(json.dumps(value))
    *parents, last = path
    target = copy
    for key in parents:
        target = target[key]
    target[last] = inner
    return copy


def form_fields(body: dict) -> dict[str, str]:
    """A JSON body as form fields: what is not text is sent as JSON text, which DRF's JSONField reads."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in body.items()}


def body_cases(operation: Operation) -> list[Case]:
    valid = operation.valid_body
    if valid is None:
        return []
    schema = operation.body_schema
    has_required = bool(schema.get("required"))
    raw = {
        "not JSON": b"{not json",
        "invalid UTF-8": b'{"name": "\xff\xfe"}',
        "NaN": b'{"name": NaN}',
        "nested 100k deep": b"[" * 100_000 + b"]" * 100_000,
        "a list": b"[]",
        "a string": b'"text"',
        "null": b"null",
        "a number": b"42",
        "true": b"true",
    }
    cases = [Case(operation, f"body {label}", body=body, refused=True) for label, body in raw.items()]
    cases.append(Case(operation, "body empty", body=b"", refused=has_required))
    for name, field_schema in schema["properties"].items():
        for label, value, ruled_out in wrong_values(field_schema):
            cases.append(Case(
                operation, f"field {name}={label}", body=json.dumps({**valid, name: value}).encode(),
                refused=ruled_out, names=name, echoed=(name, value) if isinstance(value, str) else None,
            ))
        if name in FREE_TEXT:
            for label, value in (("NUL", NUL), ("nested 200 deep", nested(200)), ("unicode", UNICODE)):
                inner = placed(valid[name], FREE_TEXT[name], value)
                cases.append(Case(
                    operation, f"field {name} with {label} at /{'/'.join(FREE_TEXT[name])}",
                    body=json.dumps({**valid, name: inner}).encode(), names=name, echoed=(name, inner),
                ))
        if "application/x-www-form-urlencoded" in operation.content_types:
            for label, text in (("deep JSON text", "[" * 5000 + "]" * 5000), ("with NUL", NUL)):
                form = urlencode(form_fields({**valid, name: text})).encode()
                cases.append(Case(
                    operation, f"form field {name}={label}", body=form,
                    content_type="application/x-www-form-urlencoded", names=name,
                    refused=text_ruled_out(field_schema, text),
                ))
    # FINDING, for a design decision: an unknown field is ignored today, so a misspelt optional
    # field ("descripton") is lost without a word. Refusing unknown fields would break clients that
    # send more than they must. Until that is decided the case only checks that the field does not
    # come back.
    cases.append(Case(operation, "unknown field", body=json.dumps({**valid, UNKNOWN_FIELD: 1}).encode(),
                      names=UNKNOWN_FIELD))
    json_body = json.dumps(valid).encode()
    for content_type in ("text/plain", "application/xml", ""):
        cases.append(Case(operation, f"content-type {content_type!r}", body=json_body,
                          content_type=content_type, status=415))
    for label, content_type, refused in (
        ("JSON sent as UTF-16", "application/json; charset=utf-16", True),
        ("multipart without boundary", "multipart/form-data", True),
        ("JSON sent as a form", "application/x-www-form-urlencoded", has_required),
    ):
        cases.append(Case(operation, label, body=json_body, content_type=content_type, refused=refused))
    return cases


def wrong_query_values(schema: dict) -> list[tuple[str, str, bool]]:
    """(label, value, whether the schema rules it out) for one documented query parameter."""
    if schema.get("type") == "integer":
        return [
            ("text", "abc", True),
            ("a fraction", "1.5", True),
            ("empty", "", True),
            ("negative", "-1", False),
            ("zero", "0", False),
            ("huge", "9" * 30, False),
            ("5000 digits", "9" * 5000, False),
        ]
    values = [("with NUL", NUL, False), ("unicode", UNICODE, False), ("10k chars", "x" * 10_000, False)]
    if "enum" in schema:
        values.append(("not a choice", "not-a-choice", False))
    return values


def query_cases(operation: Operation) -> list[Case]:
    cases = [
        Case(operation, f"query {name}={label}", query={name: value}, refused=ruled_out, names=name)
        for name, schema in ((p["name"], p["schema"]) for p in operation.parameters("query"))
        for label, value, ruled_out in wrong_query_values(schema)
    ]
    if operation.method == "get":
        cases.append(Case(operation, "query unknown", query={"unexpected": "1"}))
    return cases


CASES = [
    case
    for operation in OPERATIONS
    for case in path_cases(operation) + body_cases(operation) + query_cases(operation)
]


# --- the world the requests are sent into ----------------------------------------------------------


@dataclass(frozen=True)
class World:
    alice: object
    ids: dict[str, str]  # path parameter -> what Alice may use: her own things, a block, a template
    another_users: dict[str, str]  # path parameter -> Bob's thing of the same kind


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> World:
    """Alice's and Bob's pipelines, runs and artifacts, made once for the module: each test runs in a
    savepoint of this transaction (pytest-django's ``db``), so a test's changes are gone before the
    next one, and at the end all is rolled back."""
    from django.contrib.auth import get_user_model

    from apps.catalog.services import catalog_sync
    from apps.feedback.services import feedback_give
    from apps.gallery.selectors import templates_all
    from apps.pipelines.services import pipeline_create
    from apps.projects.services import membership_add, project_create, share_link_create
    from apps.runs.services import run_submit
    from apps.workshops.services import workshop_create
    from blocks.manifest import uri_from_path
    from blocks.registry import default_registry

    with django_db_blocker.unblock(), transaction.atomic():
        catalog_sync(registry=default_registry())
        ids = {}
        get_user_model().objects.create_user(username="carol")  # to be added to a project
        for name in ("alice", "bob"):
            user = get_user_model().objects.create_user(username=name)
            project = project_create(user=user, slug=f"{name}-team", name=f"{name}'s team")
            pipeline = pipeline_create(owner=user, name=f"{name}'s SST", document=valid_document())
            run = run_submit(pipeline=pipeline, user=user)  # stays queued: dispatch waits for a commit
            content = b"time,sst\n2022-06-01,18.5\n"
            path = settings.ILIAD_ARTIFACT_ROOT / "robustness" / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            artifact = Artifact.objects.create(
                run=run, step=run.steps.get(node_id="mean"), port="table", uri=uri_from_path(path),
                type="table", media_type="text/csv", sha256=hashlib.sha256(content).hexdigest(),
                size=len(content),
            )
            ids[name] = {
                "pipeline_id": pipeline.pk, "number": 1,
                "run_id": run.pk, "artifact_id": artifact.pk,
                "link_id": share_link_create(pipeline=pipeline, by=user)[0].pk, "project_slug": project.slug,
                "feedback_id": feedback_give(user=user, run=run, rating=4, verdict="fit")[0].pk,
                "comment_id": Comment.objects.create(pipeline=pipeline, author=user, body="first").pk,
                "workshop_id": workshop_create(user=user, title=f"{name}'s workshop").pk,
            }
        alice = get_user_model().objects.get(username="alice")
        alice_team = Project.objects.get(slug="alice-team")
        from apps.dataspaces.models import DataSpace

        DataSpace.objects.create(name="alice-results", title="Alice's results", kind="local", owner=alice,
                                 config={"root": str(settings.ILIAD_HOME / "robustness-space")})
        bob_space = DataSpace.objects.create(name="bob-drive", title="Bob's drive", kind="webdav",
                                             owner=get_user_model().objects.get(username="bob"),
                                             config={"url": "https://dav.example.org/"})
        membership_add(project=alice_team, by=alice, username="bob", role="viewer")
        yield World(
            alice=alice,
            ids={**ids["alice"], "block_id": "ocean.subset", "slug": templates_all()[0].slug,
                 "username": "bob", "target_name": "celery",
                 "space_id": DataSpace.objects.get(name="alice-results").pk},
            another_users={**ids["bob"], "space_id": bob_space.pk},
        )
        transaction.set_rollback(True)


def database_state() -> dict:
    """What a refused request must leave as it was."""
    return {
        "pipelines": list(
            Pipeline.objects.order_by("pk").values_list(
                "pk", "name", "description", "latest_version", "updated_at", "project_id", "visibility"
            )
        ),
        "projects": list(Project.objects.order_by("pk").values_list("pk", "slug", "name", "description")),
        "members": list(Membership.objects.order_by("pk").values_list("pk", "project_id", "user_id", "role")),
        "share_links": list(ShareLink.objects.order_by("pk").values_list("pk", "expires_at", "revoked_at")),
        "versions": list(PipelineVersion.objects.order_by("pk").values_list("pk", "number", "message")),
        "runs": list(Run.objects.order_by("pk").values_list("pk", "state", "finished_at")),
        "steps": list(StepRun.objects.order_by("pk").values_list("pk", "state")),
        "artifacts": Artifact.objects.count(),
        "events": RunEvent.objects.count(),
        "feedback": list(
            Feedback.objects.order_by("pk").values_list(
                "pk", "rating", "verdict", "comment", "tags", "updated_at"
            )
        ),
        "feedback_revisions": FeedbackRevision.objects.count(),
        "notifications": list(Notification.objects.order_by("pk").values_list("pk", "read_at")),
    }


def send(case: Case, world: World):
    client = APIClient()
    client.force_authenticate(world.alice)
    values = {name: world.ids[name] for name in (p["name"] for p in case.operation.parameters("path"))}
    for name, value in case.path.items():
        values[name] = world.another_users[name] if value == ANOTHER_USERS else value
    url = case.operation.path.format(**{name: quote(str(value), safe="") for name, value in values.items()})
    if case.query:
        url += "?" + urlencode(case.query)
    body = case.body
    if body is None and case.operation.valid_body is not None:
        body = json.dumps(case.operation.valid_body).encode()
    response = client.generic(case.operation.method.upper(), url, body or b"", content_type=case.content_type)
    if response.streaming:
        b"".join(response.streaming_content)  # reading it to the end closes the file, as a server would
    return response


def shown(response) -> str:
    content = b"<file>" if response.streaming else response.content[:500]
    return f"{response.status_code} {response.get('Content-Type')} {content!r}"


def assert_error_shape(response) -> dict:
    """The body ``iliad_portal.api_errors`` promises for every error: JSON with a ``detail`` in words,
    plus the document's ``errors`` or the request's ``fields`` when there is more to point at."""
    assert response.get("Content-Type") == "application/json", shown(response)
    body = response.json()
    assert isinstance(body, dict) and "detail" in body and set(body) <= {"detail", "errors", "fields"}, body
    assert isinstance(body["detail"], str) and re.search(r"[A-Za-z]{3}", body["detail"]), body
    for issue in body.get("errors", []):
        assert issue["code"] and isinstance(issue["message"], str) and issue["message"], issue
    assert isinstance(body.get("fields", {}), dict), body
    return body


# --- the specification -----------------------------------------------------------------------------


def test_the_schema_lists_every_api_route():
    def routes(resolver: URLResolver, prefix: str = ""):
        for pattern in resolver.url_patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from routes(pattern, route)
            else:
                yield "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)

    api_routes = {route for route in routes(get_resolver()) if route.startswith("/api/")}
    assert api_routes - NOT_OPERATIONS == set(openapi_schema()["paths"])


def test_every_request_body_of_the_schema_has_a_valid_example():
    requests = {operation.body_schema_name for operation in OPERATIONS} - {None}
    assert requests == set(VALID_BODIES)


@pytest.mark.parametrize(
    ("operation", "content_type"),
    [
        pytest.param(operation, content_type, id=f"{operation} {content_type}")
        for operation in OPERATIONS
        for content_type in operation.content_types or ["application/json"]
    ],
)
@pytest.mark.stack
def test_the_valid_request_succeeds_in_each_documented_content_type(world, db, operation, content_type):
    """The baseline: each hostile case below differs from this request in one thing only."""
    body = None
    if content_type == "application/x-www-form-urlencoded":
        body = urlencode(form_fields(operation.valid_body)).encode()
    elif content_type == "multipart/form-data":
        body = encode_multipart("BoUnDaRy", form_fields(operation.valid_body))
        content_type = "multipart/form-data; boundary=BoUnDaRy"
    response = send(Case(operation, "valid", body=body, content_type=content_type), world)
    if str(operation) in BASELINE_REFUSED:
        assert response.status_code == BASELINE_REFUSED[str(operation)], shown(response)
        return
    assert 200 <= response.status_code < 300, shown(response)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=case.marks) for case in CASES])
def test_hostile_input_is_refused_clearly_and_changes_nothing(world, db, case):
    before = database_state()
    response = send(case, world)
    assert response.status_code < 500, shown(response)
    if case.status is not None:
        assert response.status_code == case.status, shown(response)
    if case.refused:
        assert 400 <= response.status_code < 500, shown(response)
    if response.status_code >= 400:
        body = assert_error_shape(response)
        # An operation refused even its valid request (BASELINE_REFUSED) may refuse a hostile one the
        # same way, without naming the field.
        if case.names and response.status_code != BASELINE_REFUSED.get(str(case.operation)):
            assert case.names in body["detail"], body
        assert database_state() == before, "a refused request changed the database"
    elif response.get("Content-Type") == "application/json":
        body = response.json()
        if case.names == UNKNOWN_FIELD:
            assert UNKNOWN_FIELD not in json.dumps(body), "an unknown field was stored"
        if case.echoed and isinstance(body, dict) and case.echoed[0] in body:
            assert body[case.echoed[0]] == case.echoed[1], "an accepted value came back changed"


def test_the_cases_cover_every_operation_and_stay_bounded():
    assert {str(case.operation) for case in CASES} == {str(operation) for operation in OPERATIONS}
    assert len(CASES) < 2000  # 679 with the projects and share-link operations; ~1640 with data spaces,
    # delivery, feedback, comments and compute targets
