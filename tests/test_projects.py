"""Projects and their members, read-only share links, live run events and the admin, as their users
meet them. (The role-by-operation matrix is in test_access.py.)"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from apps.pipelines.models import Pipeline
from apps.projects.models import Membership, MembershipSource, Project, ShareLink
from tests.support.access import build_access_world


@pytest.fixture
def world(db, catalog):
    return build_access_world()


def members(project_slug: str) -> dict[str, str]:
    return dict(Membership.objects.filter(project__slug=project_slug).values_list("user__username", "role"))


# --- projects and members over the API ---------------------------------------------------------------


def test_whoever_creates_a_project_owns_it_and_lists_show_each_users_role(world):
    editor = world.client("editor")
    created = editor.post("/api/projects/", {"slug": "heatwaves", "name": "Heatwaves"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["role"] == "owner"
    assert [(item["username"], item["role"], item["source"]) for item in created.json()["members"]] == [
        ("editor-user", "owner", "manual")
    ]
    listed = {item["slug"]: item["role"] for item in editor.get("/api/projects/").json()["results"]}
    assert listed == {"heatwaves": "owner", "ocean-team": "editor"}
    assert world.client("other").get("/api/projects/").json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"slug": "ocean-team", "name": "again"}, "slug"),  # taken
        ({"slug": "Ocean Team", "name": "x"}, "slug"),
        ({"slug": "-edge-", "name": "x"}, "slug"),
        ({"slug": "ok", "name": ""}, "name"),
    ],
)
def test_a_bad_project_is_refused_naming_the_field(world, body, named):
    response = world.client("other").post("/api/projects/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{named}:"), response.json()
    assert Project.objects.count() == 1


def test_an_owner_adds_members_changes_roles_and_removes_them(world):
    owner = world.client("owner")
    added = owner.post("/api/projects/ocean-team/members/", {"username": "other-user", "role": "editor"},
                       format="json")
    assert added.status_code == 201, added.content
    assert members("ocean-team")["other-user"] == "editor"
    assert owner.put("/api/projects/ocean-team/members/other-user/", {"role": "viewer"},
                     format="json").status_code == 200
    assert members("ocean-team")["other-user"] == "viewer"
    assert owner.delete("/api/projects/ocean-team/members/other-user/").status_code == 204
    assert "other-user" not in members("ocean-team")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"username": "nobody", "role": "viewer"}, "username"),
        ({"username": "editor-user", "role": "viewer"}, "username"),  # already a member
        ({"username": "other-user", "role": "admin"}, "role"),
    ],
)
def test_adding_a_member_wrongly_is_refused_naming_the_field(world, body, named):
    response = world.client("owner").post("/api/projects/ocean-team/members/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{named}:"), response.json()
    assert len(members("ocean-team")) == 3


def test_a_project_always_keeps_an_owner(world):
    owner = world.client("owner")
    leave = owner.delete("/api/projects/ocean-team/members/owner-user/")
    assert leave.status_code == 403
    assert "keeps an owner" in leave.json()["detail"]
    demote = owner.put("/api/projects/ocean-team/members/owner-user/", {"role": "editor"}, format="json")
    assert demote.status_code == 403
    assert members("ocean-team")["owner-user"] == "owner"
    # With a second owner the first may step down and then leave.
    owner.put("/api/projects/ocean-team/members/editor-user/", {"role": "owner"}, format="json")
    assert owner.put("/api/projects/ocean-team/members/owner-user/", {"role": "editor"},
                     format="json").status_code == 200
    assert owner.delete("/api/projects/ocean-team/members/owner-user/").status_code == 204
    assert members("ocean-team") == {"editor-user": "owner", "viewer-user": "viewer"}


def test_a_member_leaves_and_then_sees_nothing_of_the_project(world):
    viewer = world.client("viewer")
    shared = world.pipelines["shared"].pk
    assert viewer.get(f"/api/pipelines/{shared}/").status_code == 200
    assert viewer.delete("/api/projects/ocean-team/members/viewer-user/").status_code == 204
    assert viewer.get(f"/api/pipelines/{shared}/").status_code == 404
    assert viewer.get("/api/projects/ocean-team/").status_code == 404


def test_rule_memberships_show_their_source(world):
    Membership.objects.create(project=world.project, user=world.users["other"], role="viewer",
                              source=MembershipSource.RULE)
    listed = world.client("owner").get("/api/projects/ocean-team/").json()["members"]
    assert {item["username"]: item["source"] for item in listed}["other-user"] == "rule"
    assert world.client("other").get(f"/api/pipelines/{world.pipelines['shared'].pk}/").status_code == 200


# --- projects on pages -------------------------------------------------------------------------------


def test_a_project_is_created_and_managed_on_its_pages(world, client):
    client.force_login(world.users["other"])
    response = client.post("/projects/", {"slug": "drift", "name": "Drift", "description": ""})
    assert response.status_code == 302 and response["Location"] == "/projects/drift/"
    page = client.get("/projects/drift/").content.decode()
    assert 'id="my-role">owner<' in page and "Add a member" in page
    client.post("/projects/drift/members/", {"username": "viewer-user", "role": "viewer"})
    assert members("drift") == {"other-user": "owner", "viewer-user": "viewer"}
    viewer_membership = Membership.objects.get(project__slug="drift", user__username="viewer-user")
    client.post(f"/projects/drift/members/{viewer_membership.pk}/role/", {"role": "editor"})
    assert members("drift")["viewer-user"] == "editor"
    client.post(f"/projects/drift/members/{viewer_membership.pk}/remove/")
    assert members("drift") == {"other-user": "owner"}


def test_project_pages_are_for_members_and_only_owners_manage(world, client):
    client.force_login(world.users["viewer"])
    page = client.get("/projects/ocean-team/").content.decode()
    assert "Add a member" not in page and "Change role" not in page and "Leave this project" in page
    add = client.post("/projects/ocean-team/members/", {"username": "other-user", "role": "owner"})
    assert add.status_code == 403
    editor_membership = Membership.objects.get(project=world.project, user=world.users["editor"])
    assert client.post(f"/projects/ocean-team/members/{editor_membership.pk}/remove/").status_code == 403
    assert members("ocean-team")["editor-user"] == "editor"
    client.force_login(world.users["other"])
    assert client.get("/projects/ocean-team/").status_code == 404
    client.logout()
    assert client.get("/projects/ocean-team/").status_code == 302  # to sign in


def test_leaving_on_the_page_and_the_last_owner_cannot(world, client):
    client.force_login(world.users["viewer"])
    mine = Membership.objects.get(project=world.project, user=world.users["viewer"])
    assert client.post(f"/projects/ocean-team/members/{mine.pk}/remove/")["Location"] == "/projects/"
    assert "viewer-user" not in members("ocean-team")
    client.force_login(world.users["owner"])
    mine = Membership.objects.get(project=world.project, user=world.users["owner"])
    response = client.post(f"/projects/ocean-team/members/{mine.pk}/remove/", follow=True)
    assert "keeps an owner" in response.content.decode()
    assert members("ocean-team")["owner-user"] == "owner"


def test_the_owner_moves_a_pipeline_into_the_project_on_its_page(world, client):
    client.force_login(world.users["owner"])
    public = world.pipelines["public"]
    client.post(f"/pipelines/{public.pk}/sharing/", {"project": "ocean-team", "visibility": "project"})
    public.refresh_from_db()
    assert (public.project, public.visibility) == (world.project, "project")
    assert world.client("other").get(f"/api/pipelines/{public.pk}/").status_code == 404


# --- read-only share links ---------------------------------------------------------------------------


def test_a_share_link_opens_the_pipeline_read_only_without_signing_in(world, client):
    made = world.client("editor").post(f"/api/pipelines/{world.pipelines['shared'].pk}/share-links/",
                                       {"days": 2}, format="json")
    assert made.status_code == 201, made.content
    url = made.json()["url"]
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert not ShareLink.objects.filter(digest=token).exists()  # only a digest is stored
    assert ShareLink.objects.filter(prefix=token[:8]).exists()
    page = client.get(f"/share/{token}/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "shared SST" in text and "ocean.area_mean" in text and "v1" in text
    assert "<form" not in text  # nothing to submit: no edit, run or sign-out
    assert page["Referrer-Policy"] == "no-referrer"
    assert client.post(f"/share/{token}/").status_code == 405


def test_a_share_link_is_no_credential_for_anything_else(world, client):
    shared = world.pipelines["shared"].pk
    token = world.share_token
    anonymous = world.client("anonymous")
    for method, url, body in (
        ("get", f"/api/pipelines/{shared}/", None),
        ("patch", f"/api/pipelines/{shared}/", {"name": "vandal"}),
        ("delete", f"/api/pipelines/{shared}/", None),
        ("post", f"/api/pipelines/{shared}/runs/", {}),
        ("post", f"/api/pipelines/{shared}/share-links/", {}),
    ):
        send = getattr(anonymous, method)
        with_header = send(url, body, format="json", HTTP_AUTHORIZATION=f"Token {token}")
        assert with_header.status_code == 401, (method, url)
        with_query = send(f"{url}?token={token}&share={token}", body, format="json")
        assert with_query.status_code == 401, (method, url)
    assert client.get(f"/pipelines/{shared}/?share={token}").status_code == 302  # to sign in
    assert client.get(f"/pipelines/{shared}/edit/?share={token}").status_code == 302
    assert Pipeline.objects.get(pk=shared).name == "shared SST"


def test_expired_revoked_and_unknown_links_say_so(world, client):
    token = world.share_token
    ShareLink.objects.filter(pk=world.share_link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = client.get(f"/share/{token}/")
    assert expired.status_code == 410
    assert "This link expired on" in expired.content.decode()
    assert "shared SST" not in expired.content.decode()
    ShareLink.objects.filter(pk=world.share_link.pk).update(expires_at=timezone.now() + timedelta(days=1))
    assert client.get(f"/share/{token}/").status_code == 200
    revoked = world.client("owner").delete(
        f"/api/pipelines/{world.pipelines['shared'].pk}/share-links/{world.share_link.pk}/"
    )
    assert revoked.status_code == 204
    gone = client.get(f"/share/{token}/")
    assert gone.status_code == 410 and "This link was revoked on" in gone.content.decode()
    assert client.get("/share/not-a-real-token/").status_code == 404
    assert client.get("/share/" + "x" * 500 + "/").status_code == 404


def test_links_are_listed_without_their_tokens_and_die_with_their_pipeline(world, client):
    listed = world.client("editor").get(f"/api/pipelines/{world.pipelines['shared'].pk}/share-links/").json()
    assert [item["prefix"] for item in listed] == [world.share_token[:8]]
    assert world.share_token not in str(listed)
    assert listed[0]["active"] is True
    world.pipelines["shared"].delete()
    assert client.get(f"/share/{world.share_token}/").status_code == 404


@pytest.mark.parametrize("days", [0, 366])
def test_a_link_lives_between_a_day_and_a_year(world, days):
    response = world.client("owner").post(
        f"/api/pipelines/{world.pipelines['shared'].pk}/share-links/", {"days": days}, format="json"
    )
    assert response.status_code == 400 and response.json()["detail"].startswith("days:")


def test_share_links_are_made_and_revoked_on_the_pipeline_page(world, client):
    client.force_login(world.users["editor"])
    shared = world.pipelines["shared"].pk
    page = client.post(f"/pipelines/{shared}/share-links/", {"days": "3"}, follow=True).content.decode()
    assert "Read-only link" in page and "/share/" in page
    token = page.split("/share/")[1].split("/")[0]
    assert client.get(f"/share/{token}/").status_code == 200
    link = ShareLink.objects.get(prefix=token[:8])
    client.post(f"/pipelines/{shared}/share-links/{link.pk}/revoke/")
    assert client.get(f"/share/{token}/").status_code == 410


# --- live run events over WebSocket ------------------------------------------------------------------


def run_async(scenario) -> None:
    """A fresh event loop in its own thread (see test_live_events.run_async)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, scenario()).result()


@pytest.mark.django_db(transaction=True)
def test_a_viewer_listens_to_a_project_run_and_another_user_is_refused(catalog):
    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from apps.runs.events import events_append
    from iliad_portal.asgi import application

    with transaction.atomic():
        world = build_access_world()
        hello = ("log", "mean", {"level": "info", "message": "hi"})
        events_append(run_id=world.runs["run"].pk, events=[hello])

    def headers(role):
        client = Client()  # one each: signing another user in on the same client ends the first session
        client.force_login(world.users[role])
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        return [(b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode())]

    viewer, other = headers("viewer"), headers("other")
    path = f"/ws/runs/{world.runs['run'].pk}/"

    async def scenario():
        listener = WebsocketCommunicator(application, path, headers=viewer)
        connected, _ = await listener.connect()
        assert connected
        assert (await listener.receive_json_from(timeout=5))["message"] == "hi"
        await listener.disconnect()
        intruder = WebsocketCommunicator(application, path, headers=other)
        assert await intruder.connect() == (False, 4404)
        private_path = f"/ws/runs/{world.runs['private_run'].pk}/"
        private = WebsocketCommunicator(application, private_path, headers=viewer)
        assert await private.connect() == (False, 4404)

    run_async(scenario)


# --- the admin site ----------------------------------------------------------------------------------


@pytest.fixture
def staff_viewer(world):
    """The project's viewer as staff with every model permission on pipelines and runs: the access
    rules must still hold them to what they may see and change."""
    user = world.users["viewer"]
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["pipelines", "runs"]))
    return user


def test_staff_see_in_the_admin_only_what_they_may_see(world, staff_viewer, client):
    client.force_login(staff_viewer)
    listing = client.get("/admin/pipelines/pipeline/").content.decode()
    assert "shared SST" in listing and "public SST" in listing
    assert "private SST" not in listing and "others SST" not in listing
    hidden = client.get(f"/admin/pipelines/pipeline/{world.pipelines['others'].pk}/change/")
    assert hidden.status_code == 302  # "doesn't exist", back to the index
    runs = client.get("/admin/runs/run/").content.decode()
    assert f"/admin/runs/run/{world.runs['run'].pk}/change/" in runs
    assert f"/admin/runs/run/{world.runs['private_run'].pk}/change/" not in runs


def test_staff_cannot_change_in_the_admin_what_they_may_only_see(world, staff_viewer, client):
    client.force_login(staff_viewer)
    shared = world.pipelines["shared"]
    page = client.get(f"/admin/pipelines/pipeline/{shared.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()  # a view-only page
    change = {"name": "vandal", "owner": shared.owner_id, "visibility": "project"}
    client.post(f"/admin/pipelines/pipeline/{shared.pk}/change/", change)
    assert client.post(f"/admin/pipelines/pipeline/{shared.pk}/delete/", {"post": "yes"}).status_code == 403
    shared.refresh_from_db()
    assert shared.name == "shared SST"


def test_superusers_see_everything_in_the_admin(world, admin_client):
    listing = admin_client.get("/admin/pipelines/pipeline/").content.decode()
    assert all(f"{name} SST" in listing for name in ("shared", "private", "public", "others"))
