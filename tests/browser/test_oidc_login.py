"""Federated sign-in in headless Chromium: the portal (live server) and a real OpenID Connect provider
(node oidc-provider with its development login form), authorization code + PKCE end to end."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Identity
from apps.accounts.oidc import discovery
from apps.accounts.oidc.config import providers_from_env, role_rules_from_json
from apps.projects.models import Membership, Project
from tests.browser.conftest import run_axe


@pytest.fixture
def portal_with_idp(live_server, oidc_provider, settings, transactional_db):
    """The live portal configured for the provider as "test" (password sign-in off); carla's account at
    the provider is in the group "ocean-team", which a rule makes an editor of the project "ocean"."""
    client = oidc_provider.register_client(
        redirect_uris=[f"{live_server.url}/oidc/test/callback/"],
        post_logout_redirect_uris=[f"{live_server.url}/login/"],
    )
    settings.ILIAD_OIDC_PROVIDERS = providers_from_env(oidc_provider.env("test", client))
    settings.ILIAD_OIDC_ROLE_RULES = role_rules_from_json(
        json.dumps([{"claim": "groups", "match": "ocean-team", "project": "ocean", "role": "editor"}])
    )
    settings.ILIAD_LOCAL_LOGIN = False
    oidc_provider.set_account(
        "carla", preferred_username="carla", email="carla@example.org", groups=["ocean-team"]
    )
    Project.objects.create(slug="ocean", name="Ocean")
    yield live_server.url
    discovery.forget(settings.ILIAD_OIDC_PROVIDERS["test"])


def test_sign_in_with_the_provider_then_sign_out_of_both(page, portal_with_idp, oidc_provider, page_errors):
    portal = portal_with_idp
    page.set_default_timeout(15_000)
    page.goto(f"{portal}/login/")
    expect(page.locator("input[name=password]")).to_have_count(0)
    assert run_axe(page) == []
    page.get_by_role("link", name="Sign in with Test IdP").click()

    # The provider's own login form, then its consent page.
    expect(page).to_have_url(re.compile(re.escape(f"{oidc_provider.issuer}/interaction/") + r"[\w-]+$"))
    page.fill("input[name=login]", "carla")
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(f"{portal}/")  # the home page, as the new user
    expect(page.locator(".logout span")).to_have_text("carla")
    identity = Identity.objects.select_related("user").get(issuer=oidc_provider.issuer, subject="carla")
    assert identity.user.username == "carla" and identity.user.email == "carla@example.org"
    membership = Membership.objects.get(user=identity.user, project__slug="ocean")
    assert (membership.role, membership.source) == ("editor", "rule")

    # Signing out ends the portal session, then the provider's (after its confirmation page).
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(f"{portal}/login/")
    page.goto(f"{portal}/runs/")
    expect(page).to_have_url(f"{portal}/login/?next=/runs/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    expect(page.locator("input[name=login]")).to_be_visible()  # the provider asks again: no SSO left
    assert page_errors == []
