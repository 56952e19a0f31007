"""Federated sign-in with OpenID Connect against a real provider (node oidc-provider on 127.0.0.1).

The portal's side runs in Django's test client; the browser's side of the provider (its login, consent
and sign-out forms) is driven over plain HTTP by tests/support/oidc. tests/browser/test_oidc_login.py
does the same in Chromium.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from apps.accounts.models import Identity
from apps.accounts.oidc import discovery
from apps.accounts.oidc.config import providers_from_env, role_rules_from_json
from apps.accounts.oidc.discovery import ProviderUnavailable, provider_metadata
from apps.accounts.oidc.roles import desired_memberships
from apps.accounts.oidc.tokens import TokenRefused, validate_id_token, validate_jwt
from apps.projects.models import Membership, Project
from tests.support.oidc import API_AUDIENCE, public_jwk, rsa_key

CALLBACK = "http://testserver/oidc/test/callback/"
SCRIPT_CALLBACK = "http://127.0.0.1/script-callback"
RULES = [
    {"claim": "groups", "match": "ocean-team", "project": "ocean", "role": "editor"},
    {"claim": "groups", "match": "ocean-admins", "project": "ocean", "role": "owner"},
    {
        "claim": "eduperson_entitlement",
        "regex": r"urn:mace:egi\.eu:group:(?P<project>[a-z-]+):role=(?:owner|manager)#aai\.egi\.eu",
        "project": r"\g<project>",
        "role": "owner",
    },
]


@pytest.fixture(scope="session")
def oidc_client(oidc_provider):
    """The portal's registration at the provider (plus a redirect URI for scripts' own sign-ins)."""
    return oidc_provider.register_client(
        redirect_uris=[CALLBACK, SCRIPT_CALLBACK], post_logout_redirect_uris=["http://testserver/login/"]
    )


@pytest.fixture
def idp(oidc_provider, oidc_client, settings, db):
    """The portal configured from the environment for the provider as "test", password sign-in off."""
    settings.ILIAD_OIDC_PROVIDERS = providers_from_env(oidc_provider.env("test", oidc_client))
    settings.ILIAD_OIDC_ROLE_RULES = role_rules_from_json(json.dumps(RULES))
    settings.ILIAD_LOCAL_LOGIN = False
    provider = settings.ILIAD_OIDC_PROVIDERS["test"]
    oidc_provider.set_account(
        "ann", preferred_username="ann", email="ann@example.org", given_name="Ann", groups=["ocean-team"]
    )
    oidc_provider.set_account("bob", preferred_username="bob", email="bob@example.org")
    for slug in ("ocean", "waves", "coast"):
        Project.objects.create(slug=slug, name=slug.title())
    yield provider
    discovery.forget(provider)


def local_path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}"


def sign_in(client: Client, oidc_provider, *, login: str = "ann", next_url: str = "", http=None):
    """Click "Sign in with Test IdP", sign in at the provider; returns the callback's response and URL."""
    start = client.get("/oidc/test/login/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content[:500]
    callback = oidc_provider.sign_in(start["Location"], login=login, session=http)
    return client.get(local_path(callback)), callback


def signed_in_user(client: Client):
    from django.contrib.auth import get_user_model

    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def memberships(user) -> dict[str, tuple[str, str]]:
    return {m.project.slug: (m.role, m.source) for m in Membership.objects.filter(user=user)}


# --- configuration ---------------------------------------------------------------------------------


def test_providers_come_from_the_environment_with_defaults_and_secret_files(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n")
    providers = providers_from_env(
        {
            "ILIAD_OIDC_PROVIDERS": "egi, keycloak",
            "ILIAD_OIDC_EGI_ISSUER": "https://aai.egi.eu/auth/realms/egi",
            "ILIAD_OIDC_EGI_CLIENT_ID": "portal",
            "ILIAD_OIDC_EGI_CLIENT_SECRET": "s",
            "ILIAD_OIDC_EGI_TITLE": "EGI Check-in",
            "ILIAD_OIDC_KEYCLOAK_ISSUER": "https://id.example.org/realms/ocean",
            "ILIAD_OIDC_KEYCLOAK_CLIENT_ID": "iliad",
            "ILIAD_OIDC_KEYCLOAK_CLIENT_SECRET_FILE": str(secret_file),
            "ILIAD_OIDC_KEYCLOAK_SCOPES": "openid,email",
            "ILIAD_OIDC_KEYCLOAK_GROUP_CLAIMS": "roles",
            "ILIAD_OIDC_KEYCLOAK_API_AUDIENCE": "iliad-api",
        }
    )
    assert list(providers) == ["egi", "keycloak"]
    egi, keycloak = providers["egi"], providers["keycloak"]
    assert (egi.title, egi.scopes, egi.group_claims) == (
        "EGI Check-in",
        "openid profile email",
        ("groups", "eduperson_entitlement"),
    )
    assert egi.expected_api_audience == "portal" and egi.algorithms == ("RS256",)
    assert egi.discovery_url == "https://aai.egi.eu/auth/realms/egi/.well-known/openid-configuration"
    assert (keycloak.title, keycloak.client_secret, keycloak.scopes) == (
        "Keycloak",
        "from-a-file",
        "openid email",
    )
    assert keycloak.group_claims == ("roles",) and keycloak.expected_api_audience == "iliad-api"
    assert "from-a-file" not in repr(keycloak)
    assert providers_from_env({}) == {}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ILIAD_OIDC_PROVIDERS": "Egi"}, "'Egi' is not a provider name"),
        ({"ILIAD_OIDC_PROVIDERS": "egi"}, "ILIAD_OIDC_EGI_ISSUER is not set"),
        (
            {"ILIAD_OIDC_PROVIDERS": "egi", "ILIAD_OIDC_EGI_ISSUER": "http://idp.example.org"},
            "must use https://",
        ),
        ({"ILIAD_OIDC_PROVIDERS": "egi", "ILIAD_OIDC_EGI_ISSUER": "https://idp"}, "ILIAD_OIDC_EGI_CLIENT_ID"),
        (
            {
                "ILIAD_OIDC_PROVIDERS": "egi",
                "ILIAD_OIDC_EGI_ISSUER": "https://idp",
                "ILIAD_OIDC_EGI_CLIENT_ID": "c",
            },
            "ILIAD_OIDC_EGI_CLIENT_SECRET (or ILIAD_OIDC_EGI_CLIENT_SECRET_FILE) is not set",
        ),
        (
            {
                "ILIAD_OIDC_PROVIDERS": "egi",
                "ILIAD_OIDC_EGI_ISSUER": "https://idp",
                "ILIAD_OIDC_EGI_CLIENT_ID": "c",
                "ILIAD_OIDC_EGI_CLIENT_SECRET": "s",
                "ILIAD_OIDC_EGI_ALGORITHMS": "HS256",
            },
            "ILIAD_OIDC_EGI_ALGORITHMS",
        ),
        (
            {
                "ILIAD_OIDC_PROVIDERS": "egi",
                "ILIAD_OIDC_EGI_ISSUER": "https://idp",
                "ILIAD_OIDC_EGI_CLIENT_ID": "c",
                "ILIAD_OIDC_EGI_CLIENT_SECRET": "s",
                "ILIAD_OIDC_EGI_SCOPES": "email",
            },
            "must include 'openid'",
        ),
    ],
)
def test_bad_provider_configuration_is_refused_naming_the_variable(env, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        providers_from_env(env)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"claim": "groups"}', "must be a JSON list"),
        ('[{"claim": "groups", "match": "a", "project": "p"}]', r"\[0\]: 'role' must be a non-empty string"),
        (
            '[{"claim": "groups", "match": "a", "regex": "a", "project": "p", "role": "editor"}]',
            "exactly one of",
        ),
        (
            '[{"claim": "groups", "match": "a", "project": "p", "role": "admin"}]',
            "must be one of owner, editor",
        ),
        ('[{"claim": "groups", "regex": "(", "project": "p", "role": "viewer"}]', "does not compile"),
        (
            '[{"claim": "groups", "match": "a", "project": "p", "role": "viewer", "when": 1}]',
            "unknown keys: when",
        ),
    ],
)
def test_bad_role_rules_are_refused_naming_the_rule(rules, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        role_rules_from_json(rules)


def test_desired_memberships_from_claims():
    rules = role_rules_from_json(
        json.dumps(
            [
                *RULES,
                {
                    "claim": "groups",
                    "match": "reviewers",
                    "project": "ocean",
                    "role": "viewer",
                    "provider": "egi",
                },
            ]
        )
    )
    entitlement = "urn:mace:egi.eu:group:{}:role=owner#aai.egi.eu"
    assert desired_memberships({"groups": ["ocean-team"]}, rules) == {"ocean": "editor"}
    assert desired_memberships({"groups": "ocean-team"}, rules) == {"ocean": "editor"}
    # the strongest role wins; only full regex matches count; the regex names the project
    assert desired_memberships(
        {
            "groups": ["ocean-team", "ocean-admins"],
            "eduperson_entitlement": [entitlement.format("waves"), entitlement.format("coast") + "x", 7],
        },
        rules,
    ) == {"ocean": "owner", "waves": "owner"}
    assert desired_memberships({"groups": ["reviewers"]}, rules, provider="keycloak") == {}
    assert desired_memberships({"groups": ["reviewers"]}, rules, provider="egi") == {"ocean": "viewer"}
    assert desired_memberships({"groups": ["ocean-team"]}, rules, group_claims=["roles"]) == {}
    assert desired_memberships({"email": "ocean-team"}, rules) == {}


# --- discovery and token validation ---------------------------------------------------------------


def test_discovery_must_name_the_configured_issuer_exactly(idp, oidc_provider, oidc_client, settings):
    provider = providers_from_env(oidc_provider.env("test", oidc_client, ISSUER=oidc_provider.issuer + "/"))[
        "test"
    ]
    settings.ILIAD_OIDC_PROVIDERS = {"test": provider}
    with pytest.raises(ProviderUnavailable, match="names the issuer"):
        provider_metadata(provider)
    response = Client().get("/oidc/test/login/", follow=True)
    assert response.redirect_chain[0][0] == "/login/"
    assert "Sign-in with Test IdP is not available right now" in response.content.decode()
    assert provider_metadata(idp)["issuer"] == oidc_provider.issuer


def negative_tokens(oidc_provider, *, audience: str) -> dict[str, tuple[str, str]]:
    """name → (token, reason that must be logged): each fails exactly one check."""
    now = int(time.time())
    claims = oidc_provider.id_token_claims(aud=audience)
    other_key, _ = rsa_key("provider-key-1")
    rotated_key, _ = rsa_key("not-published")
    without_sub = {name: value for name, value in claims.items() if name != "sub"}
    return {
        "wrong issuer": (oidc_provider.mint({**claims, "iss": "https://idp.example.org"}), "issuer"),
        "wrong audience": (oidc_provider.mint({**claims, "aud": ["someone-else"]}), "wrong audience"),
        "bad signature": (oidc_provider.mint(claims, key=other_key), "bad signature"),
        "expired": (oidc_provider.mint({**claims, "iat": now - 7200, "exp": now - 3600}), "expired"),
        "missing sub": (oidc_provider.mint(without_sub), "no 'sub' claim"),
        "empty sub": (oidc_provider.mint({**claims, "sub": ""}), "'sub'"),
        "unknown key id": (oidc_provider.mint(claims, key=rotated_key, kid="not-published"), "unknown key"),
        "HMAC with the client secret": (
            jwt.encode(claims, "a-secret-the-portal-knows-too-long-enough", algorithm="HS256"),
            "'HS256' is not accepted",
        ),
        "unsigned": (jwt.encode(claims, None, algorithm="none"), "'none' is not accepted"),
    }


NEGATIVE = [
    "wrong issuer",
    "wrong audience",
    "bad signature",
    "expired",
    "missing sub",
    "empty sub",
    "unknown key id",
    "HMAC with the client secret",
    "unsigned",
]


def test_a_valid_token_from_the_providers_key_is_accepted(idp, oidc_provider):
    token = oidc_provider.mint(oidc_provider.id_token_claims(aud=[idp.client_id, "other"], nonce="n1"))
    assert validate_id_token(token, provider=idp, nonce="n1")["sub"] == "ann"


@pytest.mark.parametrize("case", NEGATIVE)
def test_id_token_refused(idp, oidc_provider, case):
    token, reason = negative_tokens(oidc_provider, audience=idp.client_id)[case]
    with pytest.raises(TokenRefused, match=reason):
        validate_id_token(token, provider=idp, nonce=None)


def test_id_token_with_another_sign_ins_nonce_or_party_is_refused(idp, oidc_provider):
    token = oidc_provider.mint(oidc_provider.id_token_claims(aud=idp.client_id, nonce="first-sign-in"))
    with pytest.raises(TokenRefused, match="nonce does not match"):
        validate_id_token(token, provider=idp, nonce="second-sign-in")
    token = oidc_provider.mint(oidc_provider.id_token_claims(aud=[idp.client_id, "x"], azp="x", nonce="n"))
    with pytest.raises(TokenRefused, match="authorized party"):
        validate_id_token(token, provider=idp, nonce="n")


def test_an_unknown_key_id_refetches_the_key_set_once(idp, oidc_provider):
    """The provider rotated its key: the cached set (fetched long ago) lacks it, one fetch finds it."""
    _, old_jwk = rsa_key("old-key")
    key = discovery._cache_key("jwks", idp)
    cache.set(key, {"keys": [public_jwk(old_jwk)], "fetched_at": time.time() - 3600}, 600)
    token = oidc_provider.mint(oidc_provider.id_token_claims(aud=idp.client_id))
    assert validate_jwt(token, provider=idp, audience=idp.client_id)["sub"] == "ann"
    assert [k["kid"] for k in cache.get(key)["keys"]] == [oidc_provider.kid]

    # Fetched moments ago: made-up key ids do not make the portal fetch again, the token is refused.
    cache.set(key, {"keys": [public_jwk(old_jwk)], "fetched_at": time.time()}, 600)
    with pytest.raises(TokenRefused, match="unknown key"):
        validate_jwt(token, provider=idp, audience=idp.client_id)


# --- the sign-in flow ------------------------------------------------------------------------------


def test_sign_in_page_offers_the_providers_and_hides_passwords(idp, user):
    user.is_staff = True  # the admin's sign-in refuses passwords too
    user.save()
    page = Client().get("/login/?next=/runs/").content.decode()
    assert 'href="/oidc/test/login/?next=/runs/"' in page and "Sign in with Test IdP" in page
    assert 'name="password"' not in page
    client = Client()
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 403
    assert "switched off" in response.content.decode()
    assert signed_in_user(client) is None
    client.post("/admin/login/", {"username": "alice", "password": "alice-password-1"})
    assert signed_in_user(client) is None


def test_passwords_work_while_local_login_is_on(idp, user, settings):
    settings.ILIAD_LOCAL_LOGIN = True
    client = Client()
    page = client.get("/login/").content.decode()
    assert 'name="password"' in page and "Sign in with Test IdP" in page
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 302
    assert signed_in_user(client) == user
    user.is_staff = True
    user.save()
    admin = Client()
    admin.post("/admin/login/", {"username": "alice", "password": "alice-password-1"})
    assert signed_in_user(admin) == user


def test_authorization_code_flow_with_pkce_creates_the_user_and_its_roles(idp, oidc_provider, user):
    user.email = "ann@example.org"  # a local account with the same address is never taken over
    user.save()
    client = Client()
    start = client.get("/oidc/test/login/?next=/runs/")
    request = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith(f"{oidc_provider.issuer}/auth?")
    assert request["code_challenge_method"] == ["S256"] and len(request["code_challenge"][0]) == 43
    assert request["scope"] == ["openid profile email groups"] and request["redirect_uri"] == [CALLBACK]
    assert request["nonce"][0] and request["state"][0]

    callback = oidc_provider.sign_in(start["Location"], login="ann")
    assert parse_qs(urlsplit(callback).query)["iss"] == [oidc_provider.issuer]
    response = client.get(local_path(callback))
    assert response.status_code == 302 and response["Location"] == "/runs/"
    ann = signed_in_user(client)
    assert ann is not None and ann != user
    assert (ann.username, ann.email, ann.first_name) == ("ann", "ann@example.org", "Ann")
    assert not ann.has_usable_password()
    identity = Identity.objects.get(user=ann)
    assert (identity.issuer, identity.subject, identity.provider) == (oidc_provider.issuer, "ann", "test")
    assert identity.claims["groups"] == ["ocean-team"]
    assert memberships(ann) == {"ocean": ("editor", "rule")}
    assert client.get("/").status_code == 200


def test_users_are_told_apart_by_subject_never_by_email(idp, oidc_provider, django_user_model):
    django_user_model.objects.create_user(username="ann", email="someone@example.org")
    first, second = Client(), Client()
    sign_in(first, oidc_provider, login="ann")
    oidc_provider.set_account("ann-twin", preferred_username="ann", email="ann@example.org")
    sign_in(second, oidc_provider, login="ann-twin")
    ann, twin = signed_in_user(first), signed_in_user(second)
    assert ann.email == twin.email == "ann@example.org" and ann != twin
    assert {ann.username, twin.username} == {"ann-2", "ann-3"}
    # signing in again finds the same user by (issuer, sub)
    again = Client()
    sign_in(again, oidc_provider, login="ann")
    assert signed_in_user(again) == ann and Identity.objects.count() == 2


def test_rules_are_reapplied_at_each_sign_in_and_manual_memberships_kept(idp, oidc_provider, caplog):
    sign_in(Client(), oidc_provider)
    ann = Identity.objects.get(subject="ann").user
    Membership.objects.create(
        user=ann, project=Project.objects.get(slug="coast"), role="viewer", source="manual"
    )
    assert memberships(ann) == {"ocean": ("editor", "rule"), "coast": ("viewer", "manual")}

    entitlement = "urn:mace:egi.eu:group:{}:role=owner#aai.egi.eu"
    oidc_provider.set_account(
        "ann",
        preferred_username="ann",
        groups=[],
        eduperson_entitlement=[
            entitlement.format("waves"),
            entitlement.format("coast"),
            entitlement.format("nowhere"),
        ],
    )
    caplog.set_level(logging.WARNING)
    client = Client()
    sign_in(client, oidc_provider)
    assert signed_in_user(client) == ann
    assert memberships(ann) == {"waves": ("owner", "rule"), "coast": ("viewer", "manual")}
    assert "project 'nowhere', which does not exist" in caplog.text
    assert Identity.objects.get(user=ann).claims["eduperson_entitlement"][0] == entitlement.format("waves")


def test_a_replayed_callback_is_refused(idp, oidc_provider, caplog):
    caplog.set_level(logging.WARNING)
    client = Client()
    response, callback = sign_in(client, oidc_provider)
    assert response.status_code == 302 and signed_in_user(client) is not None
    client.logout()
    replay = client.get(local_path(callback), follow=True)
    assert signed_in_user(client) is None
    assert "Sign-in with Test IdP failed: unknown or already used state" in replay.content.decode()
    assert "unknown or already used state (a replayed or forged callback)" in caplog.text
    # ... and from another browser, which never started a sign-in
    stranger = Client()
    stranger.get(local_path(callback))
    assert signed_in_user(stranger) is None


def test_a_callback_cannot_complete_another_providers_sign_in(
    oidc_provider, oidc_client, settings, db, caplog
):
    env = {
        **oidc_provider.env("test", oidc_client),
        "ILIAD_OIDC_PROVIDERS": "test,other",
        "ILIAD_OIDC_OTHER_ISSUER": "http://127.0.0.1:9/realms/other",  # nothing listens there
        "ILIAD_OIDC_OTHER_CLIENT_ID": "portal",
        "ILIAD_OIDC_OTHER_CLIENT_SECRET": "other-secret",
    }
    settings.ILIAD_OIDC_PROVIDERS = providers_from_env(env)
    settings.ILIAD_LOCAL_LOGIN = False
    page = Client().get("/login/").content.decode()
    assert page.index("Sign in with Test IdP") < page.index("Sign in with Other")

    caplog.set_level(logging.WARNING)
    client = Client()
    start = client.get("/oidc/test/login/")
    callback = oidc_provider.sign_in(start["Location"], login="ann")
    response = client.get(local_path(callback).replace("/oidc/test/", "/oidc/other/"), follow=True)
    assert signed_in_user(client) is None
    assert "the sign-in was started with another provider" in response.content.decode()
    # the state was spent by the refused attempt
    client.get(local_path(callback))
    assert signed_in_user(client) is None

    unavailable = client.get("/oidc/other/login/", follow=True)
    assert "Sign-in with Other is not available right now" in unavailable.content.decode()
    assert client.get("/oidc/nobody/login/").status_code == 404
    discovery.forget(settings.ILIAD_OIDC_PROVIDERS["test"])


def test_an_error_from_the_provider_or_a_bad_code_signs_nobody_in(idp, oidc_provider):
    client = Client()
    start = client.get("/oidc/test/login/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = client.get("/oidc/test/callback/", {"state": state, "code": "made-up"}, follow=True)
    assert "the token endpoint refused the authorization code" in response.content.decode()
    start = client.get("/oidc/test/login/")
    state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
    response = client.get("/oidc/test/callback/", {"state": state, "error": "access_denied"}, follow=True)
    assert "the provider answered &#x27;access_denied&#x27;" in response.content.decode()
    assert signed_in_user(client) is None


def test_a_sign_in_left_too_long_or_answered_by_another_issuer_is_refused(idp, oidc_provider, settings):
    client = Client()
    start = client.get("/oidc/test/login/")
    callback = local_path(oidc_provider.sign_in(start["Location"], login="ann"))
    mixed_up = client.get(callback.replace("iss=", "iss=https%3A%2F%2Fevil.example.org&was="), follow=True)
    assert "the answer names the issuer &#x27;https://evil.example.org&#x27;" in mixed_up.content.decode()
    settings.ILIAD_OIDC_STATE_MAX_AGE_S = 0
    start = client.get("/oidc/test/login/")
    late = client.get(local_path(oidc_provider.sign_in(start["Location"], login="ann")), follow=True)
    assert "the sign-in took too long" in late.content.decode()
    assert signed_in_user(client) is None


def test_a_disabled_account_cannot_sign_in_or_use_tokens(idp, oidc_provider, oidc_client):
    earlier = Client()
    sign_in(earlier, oidc_provider)
    assert earlier.get("/runs/").status_code == 200
    token = oidc_provider.api_access_token(oidc_client, login="ann")
    ann = Identity.objects.get(subject="ann").user
    ann.is_active = False
    ann.save()
    assert earlier.get("/runs/")["Location"] == "/login/?next=/runs/"
    client = Client()
    response, _ = sign_in(client, oidc_provider)
    assert signed_in_user(client) is None
    assert "is disabled" in client.get(response["Location"]).content.decode()
    response = Client().get("/api/pipelines/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and "disabled" in response.json()["detail"]


def test_sign_out_ends_the_portal_and_the_provider_session(idp, oidc_provider):
    http = requests.Session()  # the browser's cookies at the provider
    client = Client()
    sign_in(client, oidc_provider, http=http)
    id_token = client.session["oidc_id_token"]
    response = client.post("/logout/")
    assert signed_in_user(client) is None
    end_session = response["Location"]
    metadata = provider_metadata(idp)
    assert end_session.startswith(metadata["end_session_endpoint"] + "?")
    query = parse_qs(urlsplit(end_session).query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver/login/"]

    assert oidc_provider.end_session(end_session, http) == "http://testserver/login/"
    # After it, the provider asks for the login again (its session ended too).
    start = client.get("/oidc/test/login/")
    page = http.get(start["Location"])
    assert 'name="login"' in page.text


def test_sign_out_of_a_password_session_stays_in_the_portal(idp, user, settings):
    settings.ILIAD_LOCAL_LOGIN = True
    client = Client()
    client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    response = client.post("/logout/")
    assert response["Location"] == "/login/" and signed_in_user(client) is None


# --- bearer access tokens for scripts --------------------------------------------------------------


def test_scripts_use_the_providers_access_tokens(idp, oidc_provider, oidc_client):
    sign_in(Client(), oidc_provider, login="ann")  # links ann's identity to a portal user
    token = oidc_provider.api_access_token(oidc_client, login="ann")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == API_AUDIENCE
    response = Client().get("/api/pipelines/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content

    bob_token = oidc_provider.api_access_token(oidc_client, login="bob")
    response = Client().get("/api/pipelines/", HTTP_AUTHORIZATION=f"Bearer {bob_token}")
    assert response.status_code == 401
    assert "no portal account is linked to this Test IdP account" in response.json()["detail"]


def test_an_id_token_is_no_api_access_token(idp, oidc_provider):
    client = Client()
    sign_in(client, oidc_provider)
    response = Client().get("/api/pipelines/", HTTP_AUTHORIZATION=f"Bearer {client.session['oidc_id_token']}")
    assert response.status_code == 401 and "wrong audience" in response.json()["detail"]


@pytest.mark.parametrize("case", NEGATIVE)
def test_bearer_token_refused(idp, oidc_provider, case, caplog):
    sign_in(Client(), oidc_provider)  # the subject exists: only the failed check stands in the way
    token, reason = negative_tokens(oidc_provider, audience=API_AUDIENCE)[case]
    if case == "wrong issuer":
        reason = "is not a configured identity provider"
    caplog.set_level(logging.WARNING)
    response = Client().get("/api/pipelines/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert "Bearer token refused" in caplog.text and reason in caplog.text
