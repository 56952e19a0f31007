"""Data spaces per user and per project role (``apps.dataspaces.selectors``), through the real API:
a project's members use its spaces by their role (viewers read, editors and owners also deliver into
them), project owners manage them, and a personal API token restricted to a project reaches the spaces
of that project only. The world is ``tests.support.access`` (project ``ocean-team``)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from apps.dataspaces.models import DataSpace
from apps.pipelines.services import pipeline_create
from apps.projects.services import project_create
from tests.support.access import valid_document


@pytest.fixture
def team_space(access_world, db, tmp_path):
    return DataSpace.objects.create(
        name="team-folder", title="Team folder", kind="local", access="project",
        project=access_world.project, owner=access_world.users["owner"],
        config={"root": str(tmp_path / "team")},
    )


@pytest.fixture
def owners_private_space(access_world, db, tmp_path):
    return DataSpace.objects.create(
        name="owner-folder", title="Owner's folder", kind="local", access="private",
        owner=access_world.users["owner"], config={"root": str(tmp_path / "mine")},
    )


def token_client(user, **options) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=user, name='t', **options)[1]}")
    return client


def listed(client) -> set[str]:
    answer = client.get("/api/data-spaces/")
    assert answer.status_code == 200, answer.content
    return {space["name"] for space in answer.json()}


def test_members_see_the_project_space_by_role_and_others_do_not(access_world, team_space, db):
    for role in ("owner", "editor", "viewer"):
        client = access_world.client(role)
        assert "team-folder" in listed(client), role
        assert client.get(f"/api/data-spaces/{team_space.pk}/browse/").status_code == 200, role
    other = access_world.client("other")
    assert "team-folder" not in listed(other)
    assert other.get(f"/api/data-spaces/{team_space.pk}/browse/").status_code == 404


def test_editors_and_owners_deliver_into_the_project_space_viewers_do_not(access_world, team_space, db):
    shared = access_world.pipelines["shared"]
    for role in ("owner", "editor"):
        options = access_world.client(role).get(f"/api/pipelines/{shared.pk}/delivery-choice/").json()
        assert "team-folder" in {space["name"] for space in options["spaces"]}, role
        answer = access_world.client(role).post(
            f"/api/runs/{access_world.runs['run'].pk}/delivery/", {"space": "team-folder", "folder": "out"},
            format="json",
        )
        assert answer.status_code == 201, (role, answer.content)
    # The viewer reads the space but may not write to it, even for a pipeline of their own.
    viewer = access_world.users["viewer"]
    own = pipeline_create(owner=viewer, name="viewer's", document=valid_document())
    client = access_world.client("viewer")
    options = client.get(f"/api/pipelines/{own.pk}/delivery-choice/").json()
    assert "team-folder" not in {space["name"] for space in options["spaces"]}
    answer = client.put(f"/api/pipelines/{own.pk}/delivery-choice/", {"space": "team-folder"}, format="json")
    assert answer.status_code == 400, answer.content
    assert "team-folder" in answer.json()["fields"]["space"][0]


def test_a_token_restricted_to_a_project_reaches_only_that_projects_spaces(
    access_world, team_space, owners_private_space, db
):
    owner = access_world.users["owner"]
    unrestricted = token_client(owner)
    assert {"team-folder", "owner-folder", "data"} <= listed(unrestricted)
    restricted = token_client(owner, project=access_world.project)
    assert listed(restricted) == {"team-folder"}  # not the owner's private folder, not the public one
    assert restricted.get(f"/api/data-spaces/{owners_private_space.pk}/").status_code == 404
    assert restricted.get(f"/api/data-spaces/{team_space.pk}/browse/").status_code == 200

    elsewhere = project_create(user=owner, slug="elsewhere-team", name="Elsewhere")
    outside = token_client(owner, project=elsewhere)
    assert "team-folder" not in listed(outside)
    for suffix in ("", "browse/", "describe/?path=x.nc"):
        assert outside.get(f"/api/data-spaces/{team_space.pk}/{suffix}").status_code == 404, suffix
    assert outside.patch(
        f"/api/data-spaces/{team_space.pk}/", {"title": "mine now"}, format="json"
    ).status_code == 404
    # Nor may it deliver there (the run is ocean-team's too: unseen), nor choose it for a pipeline.
    own = pipeline_create(owner=owner, name="elsewhere's", document=valid_document(), project=elsewhere)
    answer = outside.put(f"/api/pipelines/{own.pk}/delivery-choice/", {"space": "team-folder"}, format="json")
    assert answer.status_code == 400


def test_a_space_registered_with_a_restricted_token_belongs_to_its_project(access_world, db):
    owner = access_world.users["owner"]
    restricted = token_client(owner, project=access_world.project)
    body = {"name": "team-bucket", "title": "Team bucket", "kind": "s3", "config": {"bucket": "b"}}
    answer = restricted.post("/api/data-spaces/", body, format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["project"] == "ocean-team"
    assert "team-bucket" in listed(restricted)
    elsewhere = project_create(user=owner, slug="elsewhere-team", name="Elsewhere")
    answer = restricted.post(
        "/api/data-spaces/", {**body, "name": "other-bucket", "project": elsewhere.slug}, format="json"
    )
    assert answer.status_code == 400 and "project" in answer.json()["fields"]


def test_project_spaces_are_registered_by_the_projects_owners_and_editors(access_world, db):
    body = {"title": "Team bucket", "kind": "s3", "config": {"bucket": "b"}, "access": "project"}
    answer = access_world.client("editor").post(
        "/api/data-spaces/", {**body, "name": "editors-bucket", "project": "ocean-team"}, format="json"
    )
    assert answer.status_code == 201, answer.content
    assert (answer.json()["access"], answer.json()["project"]) == ("project", "ocean-team")
    for role in ("viewer", "other"):
        answer = access_world.client(role).post(
            "/api/data-spaces/", {**body, "name": f"{role}-bucket", "project": "ocean-team"}, format="json"
        )
        assert answer.status_code == 400, role
        assert "owner or editor" in answer.json()["fields"]["project"][0]
    answer = access_world.client("editor").post(
        "/api/data-spaces/", {**body, "name": "no-project"}, format="json"
    )
    assert answer.status_code == 400 and "project" in answer.json()["fields"]["access"][0]
    # Every member reads it; the project's owner manages it, the viewer may not.
    space = DataSpace.objects.get(name="editors-bucket")
    assert "editors-bucket" in listed(access_world.client("viewer"))
    assert access_world.client("viewer").patch(
        f"/api/data-spaces/{space.pk}/", {"title": "x"}, format="json"
    ).status_code == 403
    answer = access_world.client("owner").patch(
        f"/api/data-spaces/{space.pk}/", {"title": "Managed by the owner"}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["title"] == "Managed by the owner"
    # Taking it out of the project while it is still a project space is refused, naming the field.
    owner = access_world.client("owner")
    answer = owner.patch(f"/api/data-spaces/{space.pk}/", {"project": ""}, format="json")
    assert answer.status_code == 400 and "access" in answer.json()["fields"]


def test_a_run_submitted_with_a_restricted_token_may_not_name_spaces_outside_its_project(
    access_world, team_space, owners_private_space, db
):
    """The worker reads with the rights of the run's owner, not of the token: the submission is where
    the token's restriction is applied to the spaces the parameters name."""
    from tests.conftest import document, node

    def reading(source: str) -> dict:
        return document([node("src", "data.open_gridded", "1.1.0", source=source)], [])

    owner = access_world.users["owner"]
    outside = pipeline_create(
        owner=owner, name="reads the owner's folder", project=access_world.project, visibility="project",
        document=reading("space:owner-folder/sst.nc"),
    )
    inside = pipeline_create(
        owner=owner, name="reads the team folder", project=access_world.project, visibility="project",
        document=reading("space:team-folder/sst.nc"),
    )
    restricted = token_client(owner, project=access_world.project)
    answer = restricted.post(f"/api/pipelines/{outside.pk}/runs/", {}, format="json")
    assert answer.status_code == 400, answer.content
    [issue] = answer.json()["errors"]
    assert (issue["code"], issue["node"], issue["pointer"]) == (
        "param.space_forbidden", "src", "/nodes/0/params/source")
    assert "owner-folder" in issue["message"] and "token" in issue["message"]
    assert not outside.runs.exists()
    # The same user signed in (no token) may, as may the token for the project's own space.
    assert access_world.client("owner").post(f"/api/pipelines/{outside.pk}/runs/", {}, format="json"
                                             ).status_code == 201
    assert restricted.post(f"/api/pipelines/{inside.pk}/runs/", {}, format="json").status_code == 201
    # A token of the viewer's restricted to the project: the project's space is readable, not the
    # owner's private one (without a token the worker refuses it when the step runs,
    # tests/test_dataspaces_e2e.py).
    viewer = access_world.users["viewer"]
    mine = pipeline_create(owner=viewer, name="viewer's", project=access_world.project, visibility="project",
                           document=reading("space:owner-folder/sst.nc"))
    viewer_token = token_client(viewer, project=access_world.project)
    assert viewer_token.post(f"/api/pipelines/{mine.pk}/runs/", {}, format="json").status_code == 400
