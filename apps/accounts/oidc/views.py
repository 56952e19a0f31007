"""Sign-in pages: the choice of providers, each provider's start and callback, and sign-out.

The start and callback views are mozilla-django-oidc's, made per provider (``/oidc/<name>/login/``,
``/oidc/<name>/callback/``); they keep its session layout (``oidc_states``: state → nonce and PKCE
verifier), and add the provider's name to each state so that a callback for one provider cannot
complete a sign-in begun with another.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.crypto import get_random_string
from django.views.decorators.http import require_POST
from django.views.generic import View
from mozilla_django_oidc.utils import add_state_and_verifier_and_nonce_to_session, generate_code_challenge
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
    get_next_url,
)

from apps.accounts.oidc.backends import OIDCBackend, SignInFailed
from apps.accounts.oidc.config import ProviderConfig
from apps.accounts.oidc.discovery import ProviderUnavailable, provider_metadata

logger = logging.getLogger(__name__)

BACKEND_PATH = "apps.accounts.oidc.backends.OIDCBackend"
SESSION_PROVIDER = "oidc_provider"
SESSION_ID_TOKEN = "oidc_id_token"


def _provider(name: str) -> ProviderConfig:
    try:
        return settings.ILIAD_OIDC_PROVIDERS[name]
    except KeyError:
        raise Http404(f"No identity provider named {name!r} is configured.") from None


def _with_query(url: str, params: dict) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


class SignInView(LoginView):
    """The sign-in page: a "Sign in with …" button per provider, and the username/password form while
    ``ILIAD_LOCAL_LOGIN`` is on; with it off, a posted password is refused (403)."""

    template_name = "accounts/login.html"

    def post(self, request, *args, **kwargs):
        if not settings.ILIAD_LOCAL_LOGIN:
            messages.error(
                request, "Signing in with a portal password is switched off; use your organisation's account."
            )
            return self.render_to_response(self.get_context_data(), status=403)
        return super().post(request, *args, **kwargs)


class ProviderLoginView(OIDCAuthenticationRequestView):
    """Starts the authorization-code flow with PKCE (S256), a fresh state and nonce."""

    def __init__(self, **kwargs):
        # The parent reads one provider's endpoints from the settings here.
        View.__init__(self, **kwargs)

    def get(self, request, provider):
        config = _provider(provider)
        try:
            metadata = provider_metadata(config)
        except ProviderUnavailable as error:
            logger.warning("sign-in with %s not started: %s", config.name, error)
            messages.error(
                request, f"Sign-in with {config.title} is not available right now; try again later."
            )
            return HttpResponseRedirect(reverse("login"))
        state = get_random_string(32)
        code_verifier = get_random_string(64)
        params = {
            "response_type": "code",
            "scope": config.scopes,
            "client_id": config.client_id,
            "redirect_uri": request.build_absolute_uri(
                reverse("oidc-callback", kwargs={"provider": config.name})
            ),
            "state": state,
            "nonce": get_random_string(32),
            "code_challenge": generate_code_challenge(code_verifier, "S256"),
            "code_challenge_method": "S256",
        }
        add_state_and_verifier_and_nonce_to_session(request, state, params, code_verifier)
        request.session["oidc_states"][state]["provider"] = config.name
        request.session["oidc_login_next"] = get_next_url(request, "next")
        request.session.modified = True
        return HttpResponseRedirect(_with_query(metadata["authorization_endpoint"], params))


class ProviderCallbackView(OIDCAuthenticationCallbackView):
    """Completes the flow: the state must be one this browser's session started with this provider and
    not used before (each is removed at first use, so a replayed callback is refused), then the backend
    exchanges the code and checks the ID token and its nonce."""

    @property
    def failure_url(self):
        return reverse("login")

    def refuse(self, reason: str):
        logger.warning("sign-in with %s refused: %s", self.provider.name, reason)
        messages.error(self.request, f"Sign-in with {self.provider.title} failed: {reason}.")
        return self.login_failure()

    def get(self, request, provider):
        self.provider = _provider(provider)
        state = request.GET.get("state", "")
        states = request.session.get("oidc_states")
        entry = states.pop(state, None) if isinstance(states, dict) and state else None
        if entry is None:
            return self.refuse("unknown or already used state (a replayed or forged callback)")
        request.session.modified = True
        request.session.save()  # the state is spent even if what follows fails
        if entry.get("provider") != self.provider.name:
            return self.refuse("the sign-in was started with another provider")
        if request.GET.get("error"):
            return self.refuse(
                f"the provider answered {request.GET['error'][:100]!r}: "
                f"{request.GET.get('error_description', '')[:300]}"
            )
        if "iss" in request.GET and request.GET["iss"] != self.provider.issuer:
            return self.refuse(f"the answer names the issuer {request.GET['iss'][:200]!r}")
        if time.time() - entry.get("added_on", 0) > settings.ILIAD_OIDC_STATE_MAX_AGE_S:
            return self.refuse("the sign-in took too long; start again")
        if not request.GET.get("code"):
            return self.refuse("the answer has no authorization code")
        backend = OIDCBackend()
        try:
            user = backend.authenticate(
                request,
                oidc_provider=self.provider,
                nonce=entry.get("nonce"),
                code_verifier=entry.get("code_verifier"),
            )
        except SignInFailed as error:
            return self.refuse(str(error))
        next_url = request.session.pop("oidc_login_next", None)
        user.backend = BACKEND_PATH
        auth.login(request, user)
        request.session[SESSION_PROVIDER] = self.provider.name
        request.session[SESSION_ID_TOKEN] = backend.id_token
        logger.info("%s signed in with %s", user.username, self.provider.name)
        return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))


@require_POST
def sign_out(request):
    """Ends the portal session; after a sign-in with a provider that advertises an
    ``end_session_endpoint``, continues there (with ``id_token_hint`` and ``post_logout_redirect_uri``)
    so the provider's session ends too."""
    provider = settings.ILIAD_OIDC_PROVIDERS.get(request.session.get(SESSION_PROVIDER, ""))
    id_token = request.session.get(SESSION_ID_TOKEN)
    auth.logout(request)
    target = resolve_url(settings.LOGOUT_REDIRECT_URL)
    if provider is None or not id_token:
        return HttpResponseRedirect(target)
    try:
        end_session = provider_metadata(provider).get("end_session_endpoint")
    except ProviderUnavailable as error:
        logger.warning("sign-out at %s skipped: %s", provider.name, error)
        end_session = None
    if not isinstance(end_session, str):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(
        _with_query(
            end_session,
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": request.build_absolute_uri(target),
                "client_id": provider.client_id,
            },
        )
    )
