"""The authorization matrix, generated so that a new endpoint cannot be forgotten: every operation of the
OpenAPI schema (and every API route of the URL configuration must be one of them), every page route and
the run-events WebSocket, for each principal — a project's owner, editor and viewer, another signed-in
user, the anonymous, and the owner's personal API tokens (read-only, read-write, expired, and one
restricted to another project) — answers the status the tables below state. The WebSocket's table is
in ``tests/test_authorization_matrix_websocket.py`` (it needs committed data, this module a rolled-back
world).

The world is ``tests.support.access``: the project ``ocean-team`` with a shared pipeline, a run of it
with a CSV artifact, a share link. Session principals sign in for real (``force_login``: the session
cookie goes through the portal's session authentication); token principals send ``Authorization:
Token <key>``. Operations are "read" (GET) or "write" (everything else); a read-only token may do the
reads its user may do and no write (403), an expired one nothing (401).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from apps.accounts.services import api_token_create
from tests.conftest import openapi_operations, openapi_schema
from tests.support.access import valid_document

SESSION_ROLES = ("owner", "editor", "viewer", "other")
TOKENS = ("read_token", "write_token", "expired_token", "elsewhere_token")
PRINCIPALS = (*SESSION_ROLES, "anonymous", *TOKENS)

# --- the API --------------------------------------------------------------------------------------

#: How each path parameter of the schema is filled from the world. A new parameter name fails
#: ``test_every_path_parameter_has_a_value`` until it is added here.
PATH_VALUES = {
    "pipeline_id": lambda world: world.pipelines["shared"].pk,
    "run_id": lambda world: world.runs["run"].pk,
    "artifact_id": lambda world: world.artifact.pk,
    "number": lambda world: 1,
    "link_id": lambda world: world.share_link.pk,
    "project_slug": lambda world: world.project.slug,
    "username": lambda world: "viewer-user",
    "block_id": lambda world: "ocean.area_mean",
    "target_name": lambda world: "celery",  # the default compute target: public
    "slug": lambda world: _template_slug(),
    "feedback_id": lambda world: _world_feedback(world).pk,
    "space_id": lambda world: _world_space(world).pk,
    "comment_id": lambda world: _world_comment(world).pk,
    "workshop_id": lambda world: _world_workshop(world).pk,  # also the workshop pages' (below)
    "workshop_token": lambda world: _world_join_token(world),
}

#: Path parameters that name something of the project: a token restricted to another project does not
#: see it (404). Blocks and templates belong to no project. The world's data space is ocean-team's.
PROJECT_OBJECTS = {
    "pipeline_id", "run_id", "artifact_id", "link_id", "project_slug", "feedback_id", "space_id",
    "workshop_id",
}

PUBLIC = {"anonymous": 200}  # operations that need no credentials
SIGNED_IN = {"anonymous": 401}

#: operationId → (request body or None, {session role: status}, statuses for the anonymous).
#: The body is what a client that may do it would send; "full" is a whole pipeline.
API = {
    "blocks_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    # Compute targets: every signed-in user reads the ones they may use; only staff write them.
    "compute_targets_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "compute_targets_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "compute_targets_create": (
        {"name": "matrix", "title": "Matrix", "kind": "celery"},
        {"owner": 403, "editor": 403, "viewer": 403, "other": 403},
        SIGNED_IN,
    ),
    "compute_targets_partial_update": (
        {"title": "renamed"}, {"owner": 403, "editor": 403, "viewer": 403, "other": 403}, SIGNED_IN
    ),
    "compute_targets_destroy": (None, {"owner": 403, "editor": 403, "viewer": 403, "other": 403}, SIGNED_IN),
    "blocks_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    # Feedback (apps/feedback): counted over the runs each may see, so everybody gets an answer.
    "blocks_validation_retrieve": (
        None,
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
        SIGNED_IN,
    ),
    "feedback_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "feedback_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    # The feedback is the owner's: those who see the run read it, nobody else changes it.
    "feedback_update": (
        {"rating": 3, "verdict": "needs_changes"},
        {"owner": 200, "editor": 403, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "runs_feedback_create": (
        {"rating": 4, "verdict": "fit"},
        {"owner": 201, "editor": 201, "viewer": 201, "other": 404},
        SIGNED_IN,
    ),
    "notifications_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "notifications_read_create": ({}, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "pipelines_validation_retrieve": (
        None,
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "pipelines_create": ("full", {"owner": 201, "editor": 201, "viewer": 201, "other": 201}, SIGNED_IN),
    "pipelines_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "pipelines_update": ("full", {"owner": 200, "editor": 200, "viewer": 403, "other": 404}, SIGNED_IN),
    "pipelines_partial_update": (
        {"name": "renamed"},
        {"owner": 200, "editor": 200, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_destroy": (None, {"owner": 204, "editor": 403, "viewer": 403, "other": 404}, SIGNED_IN),
    "pipelines_runs_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "pipelines_runs_create": ({}, {"owner": 201, "editor": 201, "viewer": 403, "other": 404}, SIGNED_IN),
    "pipelines_share_links_list": (
        None,
        {"owner": 200, "editor": 200, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_share_links_create": (
        {"days": 3},
        {"owner": 201, "editor": 201, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_share_links_destroy": (
        None,
        {"owner": 204, "editor": 204, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_versions_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "pipelines_versions_retrieve": (
        None,
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
        SIGNED_IN,
    ),
    "pipelines_validate_create": (
        "document",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
        SIGNED_IN,
    ),
    "projects_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "projects_create": (
        {"slug": "new-team", "name": "New team"},
        {"owner": 201, "editor": 201, "viewer": 201, "other": 201},
        SIGNED_IN,
    ),
    "projects_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "projects_members_create": (
        {"username": "other-user", "role": "viewer"},
        {"owner": 201, "editor": 403, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    "projects_members_update": (
        {"role": "editor"},
        {"owner": 200, "editor": 403, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    # The viewer may remove themself: that is leaving the project.
    "projects_members_destroy": (None, {"owner": 204, "editor": 403, "viewer": 204, "other": 404}, SIGNED_IN),
    "runs_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "runs_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "runs_artifacts_download_retrieve": (
        None,
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
        SIGNED_IN,
    ),
    "runs_artifacts_rows_retrieve": (
        None,
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
        SIGNED_IN,
    ),
    "runs_cancel_create": (None, {"owner": 200, "editor": 200, "viewer": 403, "other": 404}, SIGNED_IN),
    "runs_events_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "runs_rerun_create": (
        {"from": "mean"},
        {"owner": 201, "editor": 201, "viewer": 403, "other": 404},
        SIGNED_IN,
    ),
    # The run is queued, not failed: those who may run its pipeline learn that it cannot be retried.
    "runs_retry_create": (None, {"owner": 409, "editor": 409, "viewer": 403, "other": 404}, SIGNED_IN),
    "schema_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, PUBLIC),
    # Delivery (apps/delivery). The world has no data space anyone may write to, so those who may
    # deliver the run get past the access checks and are then refused for the space they named (400).
    "runs_delivery_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "runs_delivery_create": (
        {"space": "nowhere"}, {"owner": 400, "editor": 400, "viewer": 403, "other": 404}, SIGNED_IN
    ),
    # Nothing was delivered yet: those who may deliver learn there is nothing to deliver again.
    "runs_delivery_again_create": (
        None, {"owner": 409, "editor": 409, "viewer": 403, "other": 404}, SIGNED_IN
    ),
    "pipelines_delivery_choice_retrieve": (
        None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN
    ),
    "pipelines_delivery_choice_update": (
        {"space": "nowhere"}, {"owner": 400, "editor": 400, "viewer": 403, "other": 404}, SIGNED_IN
    ),
    # Data spaces (apps/dataspaces): the project's space, owned by the project's owner; members use it,
    # only its owner (or the project's owners) changes it; another user does not learn it exists.
    # Anyone may register their own (a token restricted to a project registers it in that project).
    "data_spaces_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "data_spaces_create": (
        {"name": "matrix-space", "title": "Matrix", "kind": "s3", "config": {"bucket": "b"}},
        {"owner": 201, "editor": 201, "viewer": 201, "other": 201},
        SIGNED_IN,
    ),
    "data_spaces_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "data_spaces_partial_update": (
        {"title": "renamed"}, {"owner": 200, "editor": 403, "viewer": 403, "other": 404}, SIGNED_IN
    ),
    # Comments: everyone who may see the pipeline reads and writes threads; a comment's text is its
    # author's (the owner's here), others may not change it.
    "pipelines_comments_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "pipelines_comments_create": (
        {"body": "Right box?"}, {"owner": 201, "editor": 201, "viewer": 201, "other": 404}, SIGNED_IN
    ),
    "pipelines_comments_partial_update": (
        {"body": "edited"}, {"owner": 200, "editor": 403, "viewer": 403, "other": 404}, SIGNED_IN
    ),
    "data_spaces_destroy": (None, {"owner": 204, "editor": 403, "viewer": 403, "other": 404}, SIGNED_IN),
    "data_spaces_browse_retrieve": (
        None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN
    ),
    "data_spaces_search_retrieve": (
        None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN
    ),
    "data_spaces_describe_retrieve": (
        None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN
    ),
    # The root folder is no data file: members get past the access checks and are told so.
    "data_spaces_preview_retrieve": (
        None, {"owner": 400, "editor": 400, "viewer": 400, "other": 404}, SIGNED_IN
    ),
    # Workshops (read-only API): the owner facilitates one for ocean-team, whose members take part.
    "workshops_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "workshops_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 404}, SIGNED_IN),
    "templates_list": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "templates_retrieve": (None, {"owner": 200, "editor": 200, "viewer": 200, "other": 200}, SIGNED_IN),
    "templates_use_create": (
        {"name": "from a template"},
        {"owner": 201, "editor": 201, "viewer": 201, "other": 201},
        SIGNED_IN,
    ),
}

#: The owner's tokens: what each answers, given what the owner's session answers for an operation
#: (``as owner``) and whether it is a read or a write.
TOKEN_RULES = {
    "write_token": {"read": "as owner", "write": "as owner"},
    "read_token": {"read": "as owner", "write": 403},
    "expired_token": {"read": 401, "write": 401},
    # Restricted to a project other than ocean-team: that project's things are invisible to it.
    "elsewhere_token": {"read": "as owner, 404 for ocean-team's", "write": "as owner, 404 for ocean-team's"},
}


def _world_feedback(world):
    """The owner's feedback on the world's run (made when first asked for: the world is shared)."""
    from apps.feedback.models import Feedback
    from apps.runs.models import Run

    if not Run.objects.filter(pk=world.runs["run"].pk).exists():  # a test deleted it
        return Feedback(pk=2**31 - 1)
    return Feedback.objects.get_or_create(
        user=world.users["owner"],
        run=world.runs["run"],
        artifact=None,
        defaults={"rating": 4, "verdict": "fit"},
    )[0]


def _world_comment(world):
    """The owner's comment on the shared pipeline (made when first asked for); an id that names no
    comment once a test deleted the pipeline."""
    from apps.collab.models import Comment
    from apps.pipelines.models import Pipeline

    if not Pipeline.objects.filter(pk=world.pipelines["shared"].pk).exists():
        return Comment(pk=2**31 - 1)
    return Comment.objects.get_or_create(
        pipeline=world.pipelines["shared"], author=world.users["owner"], defaults={"body": "first"}
    )[0]


def _world_space(world):
    """The project's data space, a folder owned by the project's owner (made when first asked for)."""
    import tempfile

    from apps.dataspaces.models import DataSpace

    return DataSpace.objects.get_or_create(
        name="ocean-team-space",
        defaults={"title": "Ocean team space", "kind": "local", "owner": world.users["owner"],
                  "project": world.project, "access": "project",
                  "config": {"root": tempfile.mkdtemp(prefix="iliad-matrix-space-")}},
    )[0]


def _world_workshop(world):
    """A workshop the owner facilitates for the project ocean-team (its members take part)."""
    from apps.workshops.models import Workshop

    return Workshop.objects.get_or_create(
        title="Matrix workshop", facilitator=world.users["owner"], defaults={"project": world.project}
    )[0]


def _world_join_token(world) -> str:
    from apps.workshops.services import join_link_create

    return join_link_create(workshop=_world_workshop(world), by=world.users["owner"], hours=1)


def _template_slug() -> str:
    from apps.gallery.selectors import templates_all

    return templates_all()[0].slug


def expected_status(operation_id: str, method: str, path_parameters: list[str], principal: str) -> int:
    """The status the tables give ``principal`` for the operation."""
    _, roles, anonymous = API[operation_id]
    if principal in roles:
        return roles[principal]
    if principal == "anonymous":
        return anonymous["anonymous"]
    rule = TOKEN_RULES[principal]["read" if method == "get" else "write"]
    if isinstance(rule, int):
        return rule
    if rule.endswith("404 for ocean-team's") and PROJECT_OBJECTS.intersection(path_parameters):
        return 404
    return roles["owner"]


def _api_cases():
    for method, path, operation in openapi_operations():
        path_parameters = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        for principal in PRINCIPALS:
            yield pytest.param(
                method,
                path,
                operation["operationId"],
                path_parameters,
                principal,
                id=f"{method.upper()} {path} as {principal}",
            )


@pytest.fixture(scope="module")
def principals(access_world, django_db_blocker):
    """The owner's tokens, made in the module's world: {principal: key}."""
    from apps.projects.services import project_create

    owner = access_world.users["owner"]
    with django_db_blocker.unblock():
        elsewhere = project_create(user=owner, slug="elsewhere", name="Elsewhere")
        keys = {
            "read_token": api_token_create(user=owner, name="read", scope="read")[1],
            "write_token": api_token_create(user=owner, name="write", scope="write")[1],
            "elsewhere_token": api_token_create(user=owner, name="elsewhere", project=elsewhere)[1],
        }
        expired, keys["expired_token"] = api_token_create(user=owner, name="old")
        expired.expires_at = timezone.now() - timedelta(minutes=1)
        expired.save(update_fields=["expires_at"])
    return keys


def client_for(world, keys: dict, principal: str):
    """An API client for ``principal``: signed in with a real session, or sending its token."""
    from rest_framework.test import APIClient

    client = APIClient()
    if principal in SESSION_ROLES:
        client.force_login(world.users[principal])
    elif principal in TOKENS:
        client.credentials(HTTP_AUTHORIZATION=f"Token {keys[principal]}")
    return client


def request_body(operation_id: str):
    body = API[operation_id][0]
    if body == "full":
        return {"name": "renamed", "description": "d", "document": valid_document()}
    if body == "document":
        return {"document": valid_document()}
    return body


@pytest.mark.parametrize(
    ("method", "path", "operation_id", "path_parameters", "principal"), list(_api_cases())
)
def test_every_api_operation_answers_every_principal_as_the_table_says(
    access_world,
    principals,
    db,
    method,
    path,
    operation_id,
    path_parameters,
    principal,
):
    assert operation_id in API, f"{method.upper()} {path} ({operation_id}) is missing from the table API"
    url = path.format(**{name: PATH_VALUES[name](access_world) for name in path_parameters})
    client = client_for(access_world, principals, principal)
    response = client.generic(method, url, *_encoded(request_body(operation_id)))
    if response.streaming:
        b"".join(response.streaming_content)
    expected = expected_status(operation_id, method, path_parameters, principal)
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if expected >= 400:
        detail = response.json()["detail"]
        assert len(detail.split()) >= 2, detail  # a sentence, not a bare code
    if principal == "read_token" and expected == 403:
        assert response.json()["detail"].startswith("This token is read-only")


def _encoded(body) -> tuple:
    import json

    if body is None:
        return ()
    return (json.dumps(body), "application/json")


def test_the_table_has_exactly_the_schemas_operations():
    in_schema = {operation["operationId"] for _, _, operation in openapi_operations()}
    assert in_schema == set(API), {"not in the table": in_schema - set(API), "gone": set(API) - in_schema}


def test_every_path_parameter_has_a_value():
    names = {
        parameter["name"]
        for _, _, operation in openapi_operations()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names <= set(PATH_VALUES), f"add to PATH_VALUES: {names - set(PATH_VALUES)}"


def _routes(resolver: URLResolver | None = None, prefix: str = ""):
    """(route with OpenAPI-style ``{parameters}``, URL name, view) of every pattern of the URLconf."""
    for pattern in (resolver or get_resolver()).url_patterns:
        route = getattr(pattern.pattern, "_route", None)
        if route is None:  # a regular expression (the admin site's): not ours to list
            continue
        route = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, route)
        elif isinstance(pattern, URLPattern):
            yield "/" + route, pattern.name


#: API routes that are not operations of the schema, and why.
API_ROUTES_OUTSIDE_THE_SCHEMA = {"/api/docs/": "the schema's HTML documentation page"}


def test_every_api_route_of_the_url_configuration_is_in_the_schema():
    paths = set(openapi_schema()["paths"])
    routes = {route for route, _ in _routes() if route.startswith("/api/")}
    missing = routes - paths - set(API_ROUTES_OUTSIDE_THE_SCHEMA)
    assert not missing, f"API routes the schema does not describe (so the matrix would miss them): {missing}"


# --- pages ----------------------------------------------------------------------------------------

LOGIN = 302  # to the sign-in page
#: URL name → (method, path, {principal: status}). Pages take the session only: a token is no
#: sign-in there, so every token principal is answered as the anonymous are.
PAGES = {
    "home": ("get", "/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200, "anonymous": 200}),
    "tokens": ("get", "/account/tokens/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "catalog": ("get", "/catalog/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "block-detail": (
        "get",
        "/catalog/ocean.area_mean/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
    ),
    "gallery": ("get", "/templates/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "gallery-use": (
        "post",
        "/templates/{slug}/use/",
        {"owner": 302, "editor": 302, "viewer": 302, "other": 302},
    ),
    "pipeline-list": ("get", "/pipelines/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "pipeline-new": ("get", "/pipelines/new/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "pipeline-detail": (
        "get",
        "/pipelines/{pipeline_id}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "pipeline-edit": (
        "get",
        "/pipelines/{pipeline_id}/edit/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},  # a viewer's is read-only
    ),
    "pipeline-run": (
        "post",
        "/pipelines/{pipeline_id}/run/",
        {"owner": 302, "editor": 302, "viewer": 403, "other": 404},
    ),
    "pipeline-delete": (
        "post",
        "/pipelines/{pipeline_id}/delete/",
        {"owner": 302, "editor": 403, "viewer": 403, "other": 404},
    ),
    "run-list": ("get", "/runs/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "run-detail": ("get", "/runs/{run_id}/", {"owner": 200, "editor": 200, "viewer": 200, "other": 404}),
    "run-compare": (
        "get",
        "/runs/compare/?a={run_id}&b={run_id}",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "project-list": ("get", "/projects/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "project-detail": (
        "get",
        "/projects/{project_slug}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "project-member-add": (
        "post",
        "/projects/{project_slug}/members/",
        {"owner": 302, "editor": 403, "viewer": 403, "other": 404},
    ),
    "member-role": (
        "post",
        "/projects/{project_slug}/members/{viewer_membership}/role/",
        {"owner": 302, "editor": 403, "viewer": 403, "other": 404},
    ),
    "member-remove": (
        "post",
        "/projects/{project_slug}/members/{viewer_membership}/remove/",
        {"owner": 302, "editor": 403, "viewer": 302, "other": 404},
    ),
    "pipeline-sharing": (
        "post",
        "/pipelines/{pipeline_id}/sharing/",
        {"owner": 302, "editor": 403, "viewer": 403, "other": 404},
    ),
    "share-link-create": (
        "post",
        "/pipelines/{pipeline_id}/share-links/",
        {"owner": 302, "editor": 302, "viewer": 403, "other": 404},
    ),
    "share-link-revoke": (
        "post",
        "/pipelines/{pipeline_id}/share-links/{link_id}/revoke/",
        {"owner": 302, "editor": 302, "viewer": 403, "other": 404},
    ),
    # Feedback (apps/feedback). The page matrix posts no form: a feedback without its run is a 404.
    "feedback-give": ("post", "/feedback/give/", {"owner": 404, "editor": 404, "viewer": 404, "other": 404}),
    "notifications": ("get", "/notifications/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "notifications-read": (
        "post",
        "/notifications/read/",
        {"owner": 302, "editor": 302, "viewer": 302, "other": 302},
    ),
    "validation-block": (
        "get",
        "/validation/blocks/ocean.area_mean/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
    ),
    "validation-block-csv": (
        "get",
        "/validation/blocks/ocean.area_mean/csv/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
    ),
    "validation-pipeline": (
        "get",
        "/validation/pipelines/{pipeline_id}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "validation-pipeline-csv": (
        "get",
        "/validation/pipelines/{pipeline_id}/csv/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    # Workshops (apps/workshops): the owner facilitates one for ocean-team, whose members take part.
    "workshop-list": ("get", "/workshops/", {"owner": 200, "editor": 200, "viewer": 200, "other": 200}),
    "workshop-join": (
        "get",
        "/workshops/join/{workshop_token}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200},
    ),
    "workshop-detail": (
        "get",
        "/workshops/{workshop_id}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "workshop-follow": (
        "get",
        "/workshops/{workshop_id}/follow/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    "workshop-state": (
        "get",
        "/workshops/{workshop_id}/state/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 404},
    ),
    # An empty set-up form is refused with a message (302); only the facilitator may send one.
    "workshop-manage": (
        "post",
        "/workshops/{workshop_id}/manage/",
        {"owner": 302, "editor": 403, "viewer": 403, "other": 404},
    ),
    # No pipeline in the form: 404 for everybody.
    "workshop-run": (
        "post",
        "/workshops/{workshop_id}/run/",
        {"owner": 404, "editor": 404, "viewer": 404, "other": 404},
    ),
    "workshop-summary": (
        "get",
        "/workshops/{workshop_id}/summary/",
        {"owner": 200, "editor": 403, "viewer": 403, "other": 404},
    ),
    "workshop-export-json": (
        "get",
        "/workshops/{workshop_id}/export.json",
        {"owner": 200, "editor": 403, "viewer": 403, "other": 404},
    ),
    "workshop-export-csv": (
        "get",
        "/workshops/{workshop_id}/export.csv",
        {"owner": 200, "editor": 403, "viewer": 403, "other": 404},
    ),
    # The processing report of a run (apps/delivery), for whoever may see the run.
    "run-report": (
        "get", "/runs/{run_id}/report/", {"owner": 200, "editor": 200, "viewer": 200, "other": 404}
    ),
    "run-report-pdf": (
        "get", "/runs/{run_id}/report.pdf", {"owner": 200, "editor": 200, "viewer": 200, "other": 404}
    ),
    # Anyone with the link, signed in or not, sees the shared pipeline.
    "shared-pipeline": (
        "get",
        "/share/{share_token}/",
        {"owner": 200, "editor": 200, "viewer": 200, "other": 200, "anonymous": 200},
    ),
}

#: Named routes that are not pages of the matrix, and why.
NOT_IN_THE_PAGE_MATRIX = {
    "login": "the sign-in page, open to all (tests/test_pages.py)",
    "logout": "signs out whoever asks",
    "oidc-login": "starts a provider sign-in (helper A's tests)",
    "oidc-callback": "ends a provider sign-in (helper A's tests)",
    "schema": "an API operation (above)",
    "api-docs": "the API's documentation, open to all",
}


def _page_cases():
    for name, (method, path, statuses) in PAGES.items():
        for principal in PRINCIPALS:
            yield pytest.param(name, method, path, statuses, principal, id=f"{name} as {principal}")


@pytest.mark.parametrize(("name", "method", "path", "statuses", "principal"), list(_page_cases()))
def test_every_page_answers_every_principal_as_the_table_says(
    access_world,
    principals,
    db,
    client,
    name,
    method,
    path,
    statuses,
    principal,
):
    values = {
        **{parameter: value(access_world) for parameter, value in PATH_VALUES.items()},
        "share_token": access_world.share_token,
        "viewer_membership": access_world.project.memberships.get(user__username="viewer-user").pk,
    }
    headers = {}
    if principal in SESSION_ROLES:
        client.force_login(access_world.users[principal])
    elif principal in TOKENS:
        headers["HTTP_AUTHORIZATION"] = f"Token {principals[principal]}"
    response = getattr(client, method)(path.format(**values), **headers)
    expected = statuses.get(principal, statuses.get("anonymous", LOGIN))
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if expected == LOGIN and principal not in SESSION_ROLES and "anonymous" not in statuses:
        assert response["Location"].startswith("/login/")


def test_every_named_route_is_a_page_of_the_matrix_or_said_why_not():
    names = {name for route, name in _routes() if name and not route.startswith(("/api/", "/admin/"))}
    forgotten = names - set(PAGES) - set(NOT_IN_THE_PAGE_MATRIX)
    assert not forgotten, f"pages missing from PAGES: {forgotten}"
