"""Who may see and who may change: every operation on a project's pipeline, runs and artifacts, for
its owner, an editor, a viewer, another signed-in user and an anonymous client.

Seeing and changing are separate: what someone may not see answers 404 (as if it did not exist),
what they may see but not change answers 403 with a sentence, and the anonymous get 401.
"""

from __future__ import annotations

import pytest

from apps.pipelines.models import Pipeline
from apps.projects.access import (
    can,
    pipelines_changeable_by,
    pipelines_visible_to,
    runs_changeable_by,
    runs_visible_to,
)
from apps.projects.models import ShareLink
from apps.runs.models import Run
from tests.support.access import ROLES

# (label, method, URL template, body, {role: status}); the URL template is filled from the world.
OPERATIONS = [
    ("read pipeline", "get", "/api/pipelines/{shared}/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("list versions", "get", "/api/pipelines/{shared}/versions/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("read version", "get", "/api/pipelines/{shared}/versions/1/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("edit pipeline (PATCH)", "patch", "/api/pipelines/{shared}/", {"name": "renamed"},
     {"owner": 200, "editor": 200, "viewer": 403, "other": 404, "anonymous": 401}),
    ("edit pipeline (PUT)", "put", "/api/pipelines/{shared}/", "full",
     {"owner": 200, "editor": 200, "viewer": 403, "other": 404, "anonymous": 401}),
    ("delete pipeline", "delete", "/api/pipelines/{shared}/", None,
     {"owner": 204, "editor": 403, "viewer": 403, "other": 404, "anonymous": 401}),
    ("list its runs", "get", "/api/pipelines/{shared}/runs/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("start a run", "post", "/api/pipelines/{shared}/runs/", {},
     {"owner": 201, "editor": 201, "viewer": 403, "other": 404, "anonymous": 401}),
    ("read run", "get", "/api/runs/{run}/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("read run events", "get", "/api/runs/{run}/events/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("download artifact", "get", "/api/runs/{run}/artifacts/{artifact}/download/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("cancel run", "post", "/api/runs/{run}/cancel/", None,
     {"owner": 200, "editor": 200, "viewer": 403, "other": 404, "anonymous": 401}),
    ("list share links", "get", "/api/pipelines/{shared}/share-links/", None,
     {"owner": 200, "editor": 200, "viewer": 403, "other": 404, "anonymous": 401}),
    ("make share link", "post", "/api/pipelines/{shared}/share-links/", {"days": 3},
     {"owner": 201, "editor": 201, "viewer": 403, "other": 404, "anonymous": 401}),
    ("revoke share link", "delete", "/api/pipelines/{shared}/share-links/{link}/", None,
     {"owner": 204, "editor": 204, "viewer": 403, "other": 404, "anonymous": 401}),
    ("read project", "get", "/api/projects/ocean-team/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 404, "anonymous": 401}),
    ("add member", "post", "/api/projects/ocean-team/members/", {"username": "other-user", "role": "viewer"},
     {"owner": 201, "editor": 403, "viewer": 403, "other": 404, "anonymous": 401}),
    ("change a role", "put", "/api/projects/ocean-team/members/viewer-user/", {"role": "editor"},
     {"owner": 200, "editor": 403, "viewer": 403, "other": 404, "anonymous": 401}),
    ("remove the viewer (or leave, for the viewer)", "delete",
     "/api/projects/ocean-team/members/viewer-user/", None,
     {"owner": 204, "editor": 403, "viewer": 204, "other": 404, "anonymous": 401}),
    # A public pipeline: everyone signed in sees it, only its owner changes it.
    ("read public pipeline", "get", "/api/pipelines/{public}/", None,
     {"owner": 200, "editor": 200, "viewer": 200, "other": 200, "anonymous": 401}),
    ("edit public pipeline", "patch", "/api/pipelines/{public}/", {"name": "mine now"},
     {"owner": 200, "editor": 403, "viewer": 403, "other": 403, "anonymous": 401}),
    ("run public pipeline", "post", "/api/pipelines/{public}/runs/", {},
     {"owner": 201, "editor": 403, "viewer": 403, "other": 403, "anonymous": 401}),
    # A private pipeline in the project: its owner's alone.
    ("read private pipeline", "get", "/api/pipelines/{private}/", None,
     {"owner": 200, "editor": 404, "viewer": 404, "other": 404, "anonymous": 401}),
    ("read private run", "get", "/api/runs/{private_run}/", None,
     {"owner": 200, "editor": 404, "viewer": 404, "other": 404, "anonymous": 401}),
]


def url_of(template: str, world) -> str:
    return template.format(
        shared=world.pipelines["shared"].pk,
        public=world.pipelines["public"].pk,
        private=world.pipelines["private"].pk,
        run=world.runs["run"].pk,
        private_run=world.runs["private_run"].pk,
        artifact=world.artifact.pk,
        link=world.share_link.pk,
    )


def body_of(body, world):
    if body == "full":
        from tests.support.access import valid_document

        return {"name": "renamed", "document": valid_document(), "description": "d"}
    return body


@pytest.mark.parametrize(
    ("method", "template", "body", "role", "expected"),
    [
        pytest.param(method, template, body, role, statuses[role], id=f"{label} as {role}")
        for label, method, template, body, statuses in OPERATIONS
        for role in ROLES
    ],
)
def test_each_operation_answers_each_role_as_the_rules_say(
    access_world, db, method, template, body, role, expected
):
    response = getattr(access_world.client(role), method)(
        url_of(template, access_world), body_of(body, access_world), format="json"
    )
    if response.streaming:
        b"".join(response.streaming_content)
    assert response.status_code == expected, response.content[:300]
    if expected in (401, 403, 404):
        detail = response.json()["detail"]
        assert len(detail.split()) >= 2, detail  # a sentence, not a bare code
    if expected == 403 and method == "patch":
        assert Pipeline.objects.get(pk=access_world.pipelines["shared"].pk).name == "shared SST"


def test_the_viewer_downloads_the_artifacts_file(access_world, db):
    response = access_world.client("viewer").get(
        url_of("/api/runs/{run}/artifacts/{artifact}/download/", access_world)
    )
    assert b"".join(response.streaming_content) == b"time,sst\n2022-06-01,18.5\n"


@pytest.mark.parametrize(
    ("role", "pipelines", "runs"),
    [
        ("owner", {"shared SST", "private SST", "public SST"}, 3),
        ("editor", {"shared SST", "public SST"}, 2),
        ("viewer", {"shared SST", "public SST"}, 2),
        ("other", {"others SST", "public SST"}, 0),
    ],
)
def test_lists_hold_exactly_what_each_role_may_see(access_world, db, role, pipelines, runs):
    client = access_world.client(role)
    listed = client.get("/api/pipelines/").json()
    assert listed["count"] == len(pipelines)
    assert {item["name"] for item in listed["results"]} == pipelines
    assert client.get("/api/runs/").json()["count"] == runs
    assert client.get(f"/api/pipelines/{access_world.pipelines['shared'].pk}/runs/").json().get("count") == (
        2 if role != "other" else None
    )


def test_the_anonymous_list_nothing(access_world, db):
    assert access_world.client("anonymous").get("/api/pipelines/").status_code == 401
    assert access_world.client("anonymous").get("/api/runs/").status_code == 401


@pytest.mark.parametrize(
    ("role", "permissions"),
    [
        ("owner", {"edit": True, "run": True, "delete": True}),
        ("editor", {"edit": True, "run": True, "delete": False}),
        ("viewer", {"edit": False, "run": False, "delete": False}),
    ],
)
def test_responses_tell_the_user_what_they_may_do(access_world, db, role, permissions):
    client = access_world.client(role)
    detail = client.get(f"/api/pipelines/{access_world.pipelines['shared'].pk}/").json()
    assert detail["permissions"] == permissions
    assert (detail["project"], detail["visibility"]) == ("ocean-team", "project")
    listed = {item["id"]: item for item in client.get("/api/pipelines/").json()["results"]}
    assert listed[access_world.pipelines["shared"].pk]["permissions"] == permissions
    assert listed[access_world.pipelines["public"].pk]["permissions"] == {
        "edit": role == "owner", "run": role == "owner", "delete": role == "owner"
    }


def test_selectors_are_query_filters_that_agree_with_can(access_world, db):
    world = access_world
    for role in ROLES:
        user = world.users.get(role)
        if user is None:
            from django.contrib.auth.models import AnonymousUser

            user = AnonymousUser()
        for pipeline in world.pipelines.values():
            visible = pipelines_visible_to(user=user).filter(pk=pipeline.pk).exists()
            assert can(user, "view", pipeline) == visible
            for action in ("edit", "run", "delete"):
                expected = pipelines_changeable_by(user=user, action=action).filter(pk=pipeline.pk).exists()
                assert can(user, action, pipeline) == expected
                if expected:  # nobody may change what they may not see
                    assert can(user, "view", pipeline)
        for run in world.runs.values():
            for action in ("cancel", "delete"):
                expected = runs_changeable_by(user=user, action=action).filter(pk=run.pk).exists()
                assert can(user, action, run) == expected
                if expected:
                    assert runs_visible_to(user=user).filter(pk=run.pk).exists()
    # The editor may cancel but not delete the owner's run; may delete the run they started.
    assert can(world.users["editor"], "cancel", world.runs["run"])
    assert not can(world.users["editor"], "delete", world.runs["run"])
    assert can(world.users["editor"], "delete", world.runs["editor_run"])
    assert can(world.users["owner"], "delete", world.runs["editor_run"])
    assert not can(world.users["viewer"], "cancel", world.runs["editor_run"])
    with pytest.raises(ValueError, match="unknown pipeline action 'approve'"):
        pipelines_changeable_by(user=world.users["owner"], action="approve")


def test_narrowing_a_pipeline_hides_it_and_its_runs_at_once(access_world, db):
    owner_api = access_world.client("owner")
    shared = access_world.pipelines["shared"]
    response = owner_api.patch(f"/api/pipelines/{shared.pk}/", {"visibility": "private"}, format="json")
    assert response.status_code == 200, response.content
    viewer = access_world.client("viewer")
    assert viewer.get(f"/api/pipelines/{shared.pk}/").status_code == 404
    assert viewer.get(f"/api/runs/{access_world.runs['run'].pk}/").status_code == 404
    # The editor still sees the run they started themselves, though not the pipeline.
    editor = access_world.client("editor")
    assert editor.get(f"/api/runs/{access_world.runs['editor_run'].pk}/").status_code == 200
    assert editor.get(f"/api/runs/{access_world.runs['run'].pk}/").status_code == 404


# --- project and visibility on create and update ---------------------------------------------------


def create(client, **fields):
    from tests.support.access import valid_document

    body = {"name": "new", "document": valid_document(), **fields}
    return client.post("/api/pipelines/", body, format="json")


def test_a_new_pipeline_is_private_and_in_no_project_by_default(access_world, db):
    body = create(access_world.client("editor")).json()
    assert (body["project"], body["visibility"], body["owner"]) == (None, "private", "editor-user")
    assert access_world.client("owner").get(f"/api/pipelines/{body['id']}/").status_code == 404


@pytest.mark.parametrize("value", ["ocean-team", "by id"])
def test_an_editor_creates_a_pipeline_in_the_project_by_slug_or_id(access_world, db, value):
    project = access_world.project.pk if value == "by id" else value
    response = create(access_world.client("editor"), project=project, visibility="project")
    assert response.status_code == 201, response.content
    assert (response.json()["project"], response.json()["visibility"]) == ("ocean-team", "project")
    viewer_sees = access_world.client("viewer").get(f"/api/pipelines/{response.json()['id']}/")
    assert viewer_sees.status_code == 200


@pytest.mark.parametrize(
    ("role", "fields", "named"),
    [
        ("viewer", {"project": "ocean-team"}, "project"),  # a viewer may not put pipelines in it
        ("other", {"project": "ocean-team"}, "project"),
        ("owner", {"project": "no-such-team"}, "project"),
        ("owner", {"visibility": "project"}, "visibility"),  # project visibility needs a project
        ("owner", {"visibility": "everyone"}, "visibility"),
    ],
)
def test_a_project_or_visibility_one_may_not_use_is_refused_naming_the_field(
    access_world, db, role, fields, named
):
    before = Pipeline.objects.count()
    response = create(access_world.client(role), **fields)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{named}:"), response.json()
    assert Pipeline.objects.count() == before


def test_only_the_owner_or_a_project_owner_changes_visibility(access_world, db):
    shared = access_world.pipelines["shared"]
    editor = access_world.client("editor")
    change = {"visibility": "public", "name": "x"}
    response = editor.patch(f"/api/pipelines/{shared.pk}/", change, format="json")
    assert response.status_code == 403
    assert "visibility" in response.json()["detail"]
    shared.refresh_from_db()
    assert (shared.visibility, shared.name) == ("project", "shared SST")  # nothing of it was saved
    # Sending the current values is no change, so an editor's full PUT goes through.
    same = editor.patch(
        f"/api/pipelines/{shared.pk}/", {"visibility": "project", "project": "ocean-team", "name": "y"},
        format="json",
    )
    assert same.status_code == 200, same.content


# --- pages --------------------------------------------------------------------------------------------


def page_client(client, world, role):
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


@pytest.mark.parametrize(
    ("role", "status", "buttons"),
    [
        ("owner", 200, {"Open in editor", "Run latest version", "Delete this pipeline", "Make a link"}),
        ("editor", 200, {"Open in editor", "Run latest version", "Make a link"}),
        ("viewer", 200, set()),
        ("other", 404, None),
        ("anonymous", 302, None),
    ],
)
def test_the_pipeline_page_shows_only_the_buttons_one_may_use(
    access_world, db, client, role, status, buttons
):
    shared = access_world.pipelines["shared"].pk
    response = page_client(client, access_world, role).get(f"/pipelines/{shared}/")
    assert response.status_code == status
    if buttons is None:
        return
    page = response.content.decode()
    every = {"Open in editor", "Run latest version", "Delete this pipeline", "Make a link"}
    assert {label for label in every if label in page} == buttons


@pytest.mark.parametrize(
    ("role", "edit", "run", "delete"),
    [
        ("owner", 200, 302, 302),
        ("editor", 200, 302, 403),
        ("viewer", 200, 403, 403),  # the editor page, read-only (test_editor_read_only_for_viewers)
        ("other", 404, 404, 404),
    ],
)
def test_pages_that_change_a_pipeline_check_the_right_to(access_world, db, client, role, edit, run, delete):
    shared = access_world.pipelines["shared"].pk
    client = page_client(client, access_world, role)
    page = client.get(f"/pipelines/{shared}/edit/")
    assert page.status_code == edit
    if edit == 200:
        assert page.context["editor_config"]["readOnly"] is (role == "viewer")
    assert client.post(f"/pipelines/{shared}/run/").status_code == run
    assert client.post(f"/pipelines/{shared}/delete/").status_code == delete
    assert Pipeline.objects.filter(pk=shared).exists() == (delete != 302)


@pytest.mark.parametrize(
    ("role", "status", "cancel_button"),
    [("owner", 200, True), ("editor", 200, True), ("viewer", 200, False), ("other", 404, False)],
)
def test_the_run_page_and_its_cancel_button(access_world, db, client, role, status, cancel_button):
    response = page_client(client, access_world, role).get(f"/runs/{access_world.runs['run'].pk}/")
    assert response.status_code == status
    assert ('id="cancel-run"' in response.content.decode()) == cancel_button


def test_the_pages_lists_are_filtered(access_world, db, client):
    page = page_client(client, access_world, "viewer").get("/pipelines/").content.decode()
    assert "shared SST" in page and "public SST" in page
    assert "private SST" not in page and "others SST" not in page
    runs_page = client.get("/runs/").content.decode()
    assert f"#{access_world.runs['run'].pk}<" in runs_page
    assert f"#{access_world.runs['private_run'].pk}<" not in runs_page


def test_a_viewer_cannot_make_or_revoke_share_links_on_the_page(access_world, db, client):
    shared = access_world.pipelines["shared"].pk
    client = page_client(client, access_world, "viewer")
    assert client.post(f"/pipelines/{shared}/share-links/", {"days": "3"}).status_code == 403
    link = access_world.share_link.pk
    assert client.post(f"/pipelines/{shared}/share-links/{link}/revoke/").status_code == 403
    assert client.post(f"/pipelines/{shared}/sharing/", {"visibility": "public"}).status_code == 403
    assert ShareLink.objects.filter(pipeline_id=shared).count() == 1
    assert Run.objects.filter(pipeline_id=shared).count() == 2


def test_a_project_owner_may_delete_members_pipelines_but_not_their_private_ones(access_world, db):
    from apps.projects.models import Membership

    Membership.objects.filter(user=access_world.users["editor"]).update(role="owner")
    editor = access_world.client("editor")
    assert editor.get(f"/api/pipelines/{access_world.pipelines['shared'].pk}/").json()["permissions"] == {
        "edit": True, "run": True, "delete": True
    }
    assert editor.delete(f"/api/pipelines/{access_world.pipelines['private'].pk}/").status_code == 404
    assert editor.delete(f"/api/pipelines/{access_world.pipelines['shared'].pk}/").status_code == 204
    assert not Pipeline.objects.filter(pk=access_world.pipelines["shared"].pk).exists()
    assert can(access_world.users["editor"], "delete", access_world.runs["private_run"]) is False
