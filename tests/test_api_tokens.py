"""Personal API tokens: hashed at rest, with an expiry, a read-only or read-write scope and an optional
project restriction; revocable; last use shown — through the API, the tokens page and the command."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create
from apps.projects.services import membership_add, project_create
from tests.support.access import valid_document


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def new_pipeline(client, **extra):
    return client.post(
        "/api/pipelines/", {"name": "SST", "document": valid_document(), **extra}, format="json"
    )


# --- expiry and revocation ------------------------------------------------------------------------


def test_a_new_token_expires_after_the_default_lifetime_and_only_its_digest_is_stored(user, settings):
    settings.ILIAD_API_TOKEN_DAYS = 30
    token, key = api_token_create(user=user)
    assert timedelta(days=30) - timedelta(minutes=1) < token.expires_at - timezone.now() <= timedelta(days=30)
    assert key not in (token.digest, token.prefix) and key.startswith(token.prefix)
    assert not ApiToken.objects.filter(digest=key).exists()


def test_a_lifetime_above_the_configured_maximum_is_refused(user, settings):
    settings.ILIAD_API_TOKEN_MAX_DAYS = 60
    with pytest.raises(ValueError, match="days: a token lives between 1 and 60 days, not 61"):
        api_token_create(user=user, days=61)
    with pytest.raises(ValueError, match="scope: one of read, write, not 'admin'"):
        api_token_create(user=user, scope="admin")


def test_an_expired_token_is_refused_with_401_saying_so(user, catalog):
    token, key = api_token_create(user=user)
    client = token_client(key)
    assert client.get("/api/pipelines/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/pipelines/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This token expired on ")
    assert "make a new one on the API tokens page" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Token"


def test_a_revoked_token_is_refused_with_401_saying_so(user, client):
    from django.http import HttpRequest

    token, key = api_token_create(user=user)
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    page = client.post("/account/tokens/", {"revoke": token.pk}, follow=True)
    assert "Token revoked." in page.content.decode()
    response = token_client(key).get("/api/pipelines/")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("This token was revoked on ")


def test_another_users_token_cannot_be_revoked(user, other_user, client):
    from django.http import HttpRequest

    token, key = api_token_create(user=other_user)
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    page = client.post("/account/tokens/", {"revoke": token.pk}, follow=True)
    assert "You have no such active token." in page.content.decode()
    assert token_client(key).get("/api/pipelines/").status_code == 200


# --- scope ----------------------------------------------------------------------------------------


def test_a_read_only_token_reads_and_every_write_is_refused_with_403(user, catalog):
    write_key = api_token_create(user=user, scope="write")[1]
    pipeline = new_pipeline(token_client(write_key)).json()
    read = token_client(api_token_create(user=user, scope="read")[1])

    assert read.get("/api/pipelines/").status_code == 200
    assert read.get(f"/api/pipelines/{pipeline['id']}/").status_code == 200
    for method, url in (
        ("post", "/api/pipelines/"),
        ("patch", f"/api/pipelines/{pipeline['id']}/"),
        ("put", f"/api/pipelines/{pipeline['id']}/"),
        ("delete", f"/api/pipelines/{pipeline['id']}/"),
        ("post", f"/api/pipelines/{pipeline['id']}/runs/"),
        ("post", "/api/pipelines/validate/"),
    ):
        response = getattr(read, method)(url, {"name": "changed"}, format="json")
        assert response.status_code == 403, (method, url)
        assert response.json()["detail"].startswith("This token is read-only"), (method, url)
    assert read.get(f"/api/pipelines/{pipeline['id']}/").json()["name"] == "SST"


# --- project restriction --------------------------------------------------------------------------


@pytest.fixture
def two_projects(user, other_user, catalog):
    """``user`` is an owner of ``ocean`` and an editor of ``coast`` (owned by ``other_user``); each
    project has a pipeline, and ``user`` has a private pipeline in no project."""
    ocean = project_create(user=user, slug="ocean", name="Ocean")
    coast = project_create(user=other_user, slug="coast", name="Coast")
    membership_add(project=coast, by=other_user, username=user.username, role="editor")
    session = APIClient()
    session.force_authenticate(user)
    pipelines = {
        "ocean": new_pipeline(session, project="ocean", visibility="project").json(),
        "mine": new_pipeline(session).json(),
    }
    owner_of_coast = APIClient()
    owner_of_coast.force_authenticate(other_user)
    pipelines["coast"] = new_pipeline(owner_of_coast, project="coast", visibility="project").json()
    return {"ocean": ocean, "coast": coast, "pipelines": pipelines}


def test_a_token_restricted_to_a_project_sees_and_changes_only_that_projects_pipelines(user, two_projects):
    pipelines = two_projects["pipelines"]
    everything = token_client(api_token_create(user=user)[1])
    assert {p["id"] for p in everything.get("/api/pipelines/").json()["results"]} == {
        p["id"] for p in pipelines.values()
    }

    ocean_only = token_client(api_token_create(user=user, project=two_projects["ocean"])[1])
    assert [p["id"] for p in ocean_only.get("/api/pipelines/").json()["results"]] == [
        pipelines["ocean"]["id"]
    ]
    assert [p["slug"] for p in ocean_only.get("/api/projects/").json()["results"]] == ["ocean"]
    for outside in ("coast", "mine"):
        pipeline_id = pipelines[outside]["id"]
        assert ocean_only.get(f"/api/pipelines/{pipeline_id}/").status_code == 404
        assert (
            ocean_only.patch(f"/api/pipelines/{pipeline_id}/", {"name": "x"}, format="json").status_code
            == 404
        )
    renamed = ocean_only.patch(
        f"/api/pipelines/{pipelines['ocean']['id']}/", {"name": "renamed"}, format="json"
    )
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "renamed"


def test_a_token_restricted_to_a_project_puts_pipelines_into_no_other(user, two_projects):
    ocean_only = token_client(api_token_create(user=user, project=two_projects["ocean"])[1])
    refused = new_pipeline(ocean_only, project="coast", visibility="project")
    assert refused.status_code == 400
    assert refused.json()["fields"]["project"] == [
        "no project 'coast' where you are an owner or editor (slug or id)"
    ]
    assert new_pipeline(ocean_only, project="ocean", visibility="project").status_code == 201


def test_a_token_can_only_be_restricted_to_a_project_of_its_user(user, other_user, catalog):
    coast = project_create(user=other_user, slug="coast", name="Coast")
    with pytest.raises(ValueError, match="project: alice is not a member of project 'coast'"):
        api_token_create(user=user, project=coast)


# --- last use -------------------------------------------------------------------------------------


def test_last_use_is_recorded_at_most_once_a_minute(user, catalog):
    token, key = api_token_create(user=user)
    client = token_client(key)
    assert token.last_used_at is None
    client.get("/api/blocks/")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get("/api/blocks/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # no write within the minute
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("/api/blocks/")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


# --- the tokens page ------------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, user):
    from django.http import HttpRequest

    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    return client


def test_the_tokens_page_creates_a_scoped_expiring_project_token_and_lists_it(signed_in, user, catalog):
    ocean = project_create(user=user, slug="ocean", name="Ocean")
    page = signed_in.get("/account/tokens/")
    html = page.content.decode()
    assert page.status_code == 200
    assert re.search(r'<input type="radio" name="scope" value="read"[^>]* checked>', html)  # least privilege
    assert 'max="365"' in html and 'value="90"' in html
    assert "Ocean" in html  # a project it may be restricted to

    created = signed_in.post(
        "/account/tokens/", {"name": "notebook", "scope": "read", "days": "7", "project": ocean.pk}
    )
    html = created.content.decode()
    assert created.status_code == 200
    key = html.split('<code id="new-token">')[1].split("</code>")[0]
    token = user.api_tokens.get()
    assert (token.name, token.scope, token.project) == ("notebook", "read", ocean)
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    row = html.split(f"<code>{token.prefix}…</code>")[1].split("</tr>")[0]
    for shown in ("notebook", "read only", "Ocean", token.expires_at.strftime("%Y-%m-%d"), "never", "Revoke"):
        assert shown in row, shown
    assert token_client(key).get("/api/pipelines/").status_code == 200


@override_settings(ILIAD_API_TOKEN_MAX_DAYS=30)
def test_the_tokens_page_refuses_a_lifetime_above_the_maximum(signed_in, user):
    response = signed_in.post("/account/tokens/", {"name": "long", "scope": "write", "days": "31"})
    assert response.status_code == 400
    assert "Ensure this value is less than or equal to 30." in response.content.decode()
    assert not user.api_tokens.exists()


def test_the_tokens_page_shows_expired_and_revoked_tokens_without_a_revoke_button(signed_in, user):
    expired, _ = api_token_create(user=user, name="old")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked, _ = api_token_create(user=user, name="gone")
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    html = signed_in.get("/account/tokens/").content.decode()
    assert "<td>expired</td>" in html and "<td>revoked</td>" in html
    assert f'value="{expired.pk}"' not in html and f'value="{revoked.pk}"' not in html


# --- the command ----------------------------------------------------------------------------------


def test_create_api_token_takes_scope_lifetime_and_project(user, capsys, catalog):
    ocean = project_create(user=user, slug="ocean", name="Ocean")
    call_command("create_api_token", "alice", "--scope", "read", "--days", "3", "--project", "ocean")
    key = capsys.readouterr().out.strip()
    token = user.api_tokens.get()
    assert (token.scope, token.project) == ("read", ocean)
    assert token.expires_at - timezone.now() <= timedelta(days=3)
    assert token_client(key).post("/api/pipelines/", {}, format="json").status_code == 403


def test_create_api_token_names_a_bad_lifetime_and_an_unknown_project(user, settings):
    settings.ILIAD_API_TOKEN_MAX_DAYS = 10
    with pytest.raises(CommandError, match="days: a token lives between 1 and 10 days, not 11"):
        call_command("create_api_token", "alice", "--days", "11")
    with pytest.raises(
        CommandError, match="--project: alice is not a member of a project with id or slug 'nope'"
    ):
        call_command("create_api_token", "alice", "--project", "nope")
