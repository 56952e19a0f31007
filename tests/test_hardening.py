"""Hardening: sign-in lock-outs (django-axes), API rate limits, HTTPS settings by environment, the
Content-Security-Policy header and the secret key a shared database needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from tests.conftest import REPO_ROOT

LOCKED_OUT = "Too many failed sign-in attempts for this account from your address"
PRODUCTION_ENV = {
    "ILIAD_SECRET_KEY": "k7Qw-2vZx9LpR4mT8sYb1NcHf6GjD3eUaWq0iOoVlKzXy5Sd_Pn",  # 51 random characters
    "DATABASE_URL": "postgres://iliad@db.example.org:5432/iliad",
    "ILIAD_ALLOWED_HOSTS": "portal.example.org",
    "ILIAD_DEBUG": "false",
}
DEPLOY_CHECK = ["manage.py", "check", "--deploy", "--fail-level", "WARNING"]


@pytest.fixture(autouse=True)
def own_rate_counts(settings):
    """Rate counts of this test only: the cache (Redis) is shared by the whole session."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


def rates(settings, **changed: str) -> None:
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {**rest["DEFAULT_THROTTLE_RATES"], **changed}
    settings.REST_FRAMEWORK = rest


def sign_in(client, url: str, username: str, password: str, address: str, **headers):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address, **headers)


# --- sign-in lock-outs ------------------------------------------------------------------------------


def test_repeated_failed_sign_ins_lock_the_account_for_that_address_only(client, user, other_user, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5  # ILIAD_LOGIN_FAILURE_LIMIT's default
    for _ in range(limit - 1):
        response = sign_in(client, "/login/", "alice", "wrong", "203.0.113.7")
        assert response.status_code == 200 and b"didn't match" in response.content
    response = sign_in(client, "/login/", "alice", "wrong", "203.0.113.7")
    assert response.status_code == 429
    page = response.content.decode()
    assert LOCKED_OUT in page and "try again in 15 minutes or ask an administrator to unlock it" in page
    assert '<input id="id_username"' in page  # the sign-in page, not a blank one

    # The right password does not get through from that address either...
    response = sign_in(client, "/login/", "alice", "alice-password-1", "203.0.113.7")
    assert response.status_code == 429 and LOCKED_OUT in response.content.decode()
    assert "_auth_user_id" not in client.session
    # ...but from another address it does, and another account from the same address is not locked.
    assert sign_in(client, "/login/", "bob", "bob-password-1", "203.0.113.7").status_code == 302
    client.logout()
    assert sign_in(client, "/login/", "alice", "alice-password-1", "198.51.100.2").status_code == 302


def test_the_lock_out_page_is_served_by_the_asgi_handler_too(async_client, user, settings):
    """Production serves Django over ASGI, where django-axes' middleware takes another path."""
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = async_to_sync(async_client.post)("/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429 and LOCKED_OUT in response.content.decode()


def test_the_lock_ends_after_the_cool_off_or_when_an_administrator_resets_it(client, user, settings):
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "/login/", "alice", "wrong", "203.0.113.7")
    assert sign_in(client, "/login/", "alice", "alice-password-1", "203.0.113.7").status_code == 429

    call_command("axes_reset_username", "alice")
    assert sign_in(client, "/login/", "alice", "alice-password-1", "203.0.113.7").status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "/login/", "alice", "wrong", "203.0.113.7")
    assert sign_in(client, "/login/", "alice", "alice-password-1", "203.0.113.7").status_code == 429
    # 15 minutes later (ILIAD_LOGIN_COOLOFF_MINUTES) the failures no longer count.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=15, seconds=1))
    assert sign_in(client, "/login/", "alice", "alice-password-1", "203.0.113.7").status_code == 302


def test_the_admin_sign_in_is_locked_too(client, django_user_model, settings):
    django_user_model.objects.create_superuser(username="root", password="root-password-1")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, "/admin/login/", "root", "wrong", "203.0.113.7")
    assert response.status_code == 429 and LOCKED_OUT in response.content.decode()
    assert sign_in(client, "/admin/login/", "root", "root-password-1", "203.0.113.7").status_code == 429
    # The admin lists the lock-out; deleting the row there unlocks.
    client.force_login(django_user_model.objects.get(username="root"))
    listing = client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "root" in listing.content.decode()


def test_x_forwarded_for_counts_only_when_the_proxy_is_trusted(client, user, settings):
    limit = settings.AXES_FAILURE_LIMIT
    # Not trusted (the default): a client cannot escape the lock by writing another X-Forwarded-For.
    for attempt in range(limit):
        sign_in(client, "/login/", "alice", "wrong", "10.0.0.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{attempt}")
    response = sign_in(client, "/login/", "alice", "alice-password-1", "10.0.0.5",
                       HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429

    # Trusted (ILIAD_TRUST_X_FORWARDED_FOR=true, one proxy at 10.0.0.5): the address the proxy saw counts,
    # and what the client put in front of it does not.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for attempt in range(limit):
        sign_in(client, "/login/", "alice", "wrong", "10.0.0.5",
                HTTP_X_FORWARDED_FOR=f"198.18.0.{attempt}, 203.0.113.9")
    assert sign_in(client, "/login/", "alice", "alice-password-1", "10.0.0.5",
                   HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    assert sign_in(client, "/login/", "alice", "alice-password-1", "10.0.0.5",
                   HTTP_X_FORWARDED_FOR="203.0.113.10").status_code == 302


def test_trusting_x_forwarded_for_is_configured_by_the_environment(tmp_path):
    shown = settings_in_subprocess(tmp_path, {}, "REST_FRAMEWORK['NUM_PROXIES']")
    assert shown == [0]
    trusted = {"ILIAD_TRUST_X_FORWARDED_FOR": "true", "ILIAD_PROXY_COUNT": "2"}
    shown = settings_in_subprocess(tmp_path, trusted, "REST_FRAMEWORK['NUM_PROXIES']")
    assert shown == [2]


# --- API rate limits --------------------------------------------------------------------------------


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"detail"} and "Expected available in" in body["detail"]
    assert int(response["Retry-After"]) > 0


def test_api_requests_are_limited_per_user_in_the_shared_cache(api, user, other_user, settings):
    import redis

    rates(settings, user="3/minute")
    for _ in range(3):
        assert api.get("/api/pipelines/").status_code == 200
    assert_throttled(api.get("/api/pipelines/"))
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get("/api/pipelines/").status_code == 200  # another user has a count of their own
    # Counted on the Redis server, where every web process and replica counts.
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    assert redis.Redis.from_url(os.environ["REDIS_URL"]).keys(f"{prefix}:*throttle_user_{user.pk}")


def test_anonymous_api_requests_are_limited_per_address(client, db, settings):
    rates(settings, anon="2/minute")
    for _ in range(2):
        assert client.get("/api/schema/", {"format": "json"}, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert_throttled(client.get("/api/schema/", {"format": "json"}, REMOTE_ADDR="203.0.113.7"))
    assert client.get("/api/schema/", {"format": "json"}, REMOTE_ADDR="203.0.113.8").status_code == 200


def test_failed_token_authentications_are_limited_per_address(client, user, settings):
    rates(settings, token_failure="3/hour")
    _, key = api_token_create(user=user)
    for bad in ("Token ilp_guess1", "Token ilp_guess2", "Token two words"):
        response = client.get("/api/pipelines/", HTTP_AUTHORIZATION=bad, REMOTE_ADDR="203.0.113.7")
        assert response.status_code == 401
    response = client.get("/api/pipelines/", HTTP_AUTHORIZATION="Token ilp_guess3", REMOTE_ADDR="203.0.113.7")
    assert_throttled(response)
    assert "Too many failed token authentications from your address" in response.json()["detail"]
    assert 3500 < int(response["Retry-After"]) <= 3600
    # Even the right token is refused from there now, so guessing on learns nothing...
    response = client.get("/api/pipelines/", HTTP_AUTHORIZATION=f"Token {key}", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    # ...while its owner, elsewhere, is not affected.
    response = client.get("/api/pipelines/", HTTP_AUTHORIZATION=f"Token {key}", REMOTE_ADDR="198.51.100.2")
    assert response.status_code == 200


def test_a_bad_rate_stops_the_start_with_a_clear_message(tmp_path):
    result = run_in_subprocess(tmp_path, {"ILIAD_API_RATE_USER": "lots"}, ["manage.py", "check"])
    assert result.returncode != 0
    assert "ILIAD_API_RATE_USER='lots' is not a rate: use e.g. 120/minute or 2000/hour" in result.stderr


# --- HTTPS, headers, CSP ----------------------------------------------------------------------------


def test_every_page_carries_the_security_headers_and_a_strict_script_policy(client, user):
    response = client.get("/login/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert sign_in(client, "/login/", "alice", "alice-password-1", "127.0.0.1").status_code == 302
    cookie = client.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]


def test_only_the_editor_pages_allow_eval(client, user):
    """The editor's parameter forms compile JSON Schemas to functions (Ajv); no other page may eval."""
    client.force_login(user)

    def script_src(url: str) -> str:
        policy = client.get(url)["Content-Security-Policy"]
        return next(part for part in policy.split(";") if part.strip().startswith("script-src")).strip()

    assert script_src("/pipelines/new/") == "script-src 'self' 'unsafe-eval'"
    for url in ("/", "/catalog/", "/pipelines/", "/runs/", "/account/tokens/", "/api/docs/"):
        assert script_src(url) == "script-src 'self'", url


def test_a_response_with_its_own_policy_keeps_it():
    """Run artifacts are served with ``Content-Security-Policy: sandbox ...``: the portal's policy must not
    replace it."""
    from csp.middleware import CSPMiddleware

    def artifact(request):
        response = HttpResponse("<script>alert(1)</script>")
        response["Content-Security-Policy"] = "sandbox allow-scripts"
        return response

    request = RequestFactory().get("/api/runs/1/artifacts/2/")
    assert CSPMiddleware(artifact)(request)["Content-Security-Policy"] == "sandbox allow-scripts"


def test_the_api_docs_page_has_no_inline_script(client, db):
    import re

    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r"<script([^>]*)>", page)
    assert scripts and all("src=" in attributes for attributes in scripts), scripts
    start = client.get("/api/docs/", {"script": ""})
    assert start.status_code == 200 and "SwaggerUIBundle" in start.content.decode()


def test_the_deploy_check_passes_with_production_settings(tmp_path):
    result = run_in_subprocess(tmp_path, {**PRODUCTION_ENV, "ILIAD_HTTPS": "true"}, DEPLOY_CHECK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "W0" not in result.stdout + result.stderr


def test_the_deploy_check_fails_without_https(tmp_path):
    result = run_in_subprocess(tmp_path, PRODUCTION_ENV, DEPLOY_CHECK)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr, warning


def test_https_settings_follow_the_environment(tmp_path):
    names = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
             "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER")
    assert settings_in_subprocess(tmp_path, {"ILIAD_HTTPS": "true"}, *names) == [
        True, True, True, 31_536_000, True, ["HTTP_X_FORWARDED_PROTO", "https"]
    ]
    assert settings_in_subprocess(tmp_path, {}, *names) == [False, False, False, 0, True, None]
    changed = {"ILIAD_HTTPS": "true", "ILIAD_HSTS_SECONDS": "3600", "ILIAD_HSTS_INCLUDE_SUBDOMAINS": "false",
               "ILIAD_TRUST_X_FORWARDED_PROTO": "false"}
    assert settings_in_subprocess(tmp_path, changed, *names) == [True, True, True, 3600, False, None]


# --- the secret key ---------------------------------------------------------------------------------


def test_a_shared_database_needs_a_configured_secret_key(tmp_path):
    env = {"DATABASE_URL": "postgres://iliad@db.example.org:5432/iliad"}
    result = run_in_subprocess(tmp_path, env, ["manage.py", "check"])
    assert result.returncode != 0
    assert "ImproperlyConfigured: ILIAD_SECRET_KEY is not set, but DATABASE_URL names a shared database" in (
        result.stderr
    )
    assert not (tmp_path / "secret_key").exists()
    # On SQLite (one machine) a key is made once and kept in ILIAD_HOME.
    assert run_in_subprocess(tmp_path, {}, ["manage.py", "check"]).returncode == 0
    assert len((tmp_path / "secret_key").read_text()) >= 50


def run_in_subprocess(home, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    """``python ARGS`` in the repository with a clean Iliad environment plus ``env``, ILIAD_HOME=home."""
    clean = {
        name: value for name, value in os.environ.items()
        # DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests set it for their process (async.E001 in deployment)
        if not name.startswith(
            ("ILIAD_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")
        )
    }
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env={**clean, "ILIAD_HOME": str(home), **env},
        capture_output=True, text=True, timeout=60,
    )


def settings_in_subprocess(home, env: dict[str, str], *expressions: str) -> list:
    code = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'iliad_portal.settings';"
        "from django.conf import settings;"
        "names = {name: getattr(settings, name) for name in dir(settings) if name.isupper()};"
        f"print(json.dumps([eval(e, names) for e in {list(expressions)!r}]))"
    )
    result = run_in_subprocess(home, env, ["-c", code])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
