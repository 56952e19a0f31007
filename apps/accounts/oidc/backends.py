"""Authentication backends: OpenID Connect sign-in per provider, and the switchable local passwords."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from apps.accounts.oidc.config import ProviderConfig
from apps.accounts.oidc.discovery import ProviderUnavailable, provider_metadata
from apps.accounts.oidc.services import SignInRefused, identity_sign_in
from apps.accounts.oidc.tokens import TokenRefused, validate_id_token, validate_jwt

logger = logging.getLogger(__name__)


class LocalPasswordBackend(ModelBackend):
    """Django's username/password backend, off when ``ILIAD_LOCAL_LOGIN`` is false (sessions it opened
    earlier stay valid)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not settings.ILIAD_LOCAL_LOGIN:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class SignInFailed(Exception):
    """The code flow with a provider failed; ``str(error)`` says why (logged, and shown in short)."""


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend for several providers: everything it reads from ``OIDC_*`` settings
    comes from the provider's configuration and discovery document instead, and the ID token is checked
    by ``tokens.validate_id_token`` (keys from the JWKS, exact ``iss``, ``aud``, ``exp``, ``sub``, nonce).

    Only answers ``authenticate(request, oidc_provider=..., nonce=..., code_verifier=...)``, called by
    the callback view after it checked the state; raises SignInFailed with the reason. The verified ID
    token is left in ``id_token`` (the sign-out sends it back to the provider)."""

    def __init__(self, *args, **kwargs):
        # The parent reads single-provider settings here; this backend learns its provider per sign-in.
        self.UserModel = get_user_model()
        self.provider: ProviderConfig | None = None
        self._use_basic_auth = False
        self.id_token: str | None = None

    def get_settings(self, attr, *args):
        per_provider = {
            "OIDC_TIMEOUT": settings.ILIAD_OIDC_TIMEOUT_S,
            "OIDC_VERIFY_SSL": True,
            "OIDC_PROXY": None,
            "OIDC_TOKEN_USE_BASIC_AUTH": self._use_basic_auth,
        }
        if attr in per_provider:
            return per_provider[attr]
        return super().get_settings(attr, *args)

    def authenticate(
        self, request, oidc_provider: ProviderConfig | None = None, nonce=None, code_verifier=None, **kwargs
    ):
        if oidc_provider is None or request is None:
            return None
        self.request = request
        self.provider = oidc_provider
        try:
            metadata = provider_metadata(oidc_provider)
        except ProviderUnavailable as error:
            raise SignInFailed(str(error)) from None
        methods = metadata.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
        self._use_basic_auth = "client_secret_post" not in methods
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_USER_ENDPOINT = metadata.get("userinfo_endpoint")
        self.OIDC_RP_CLIENT_ID = oidc_provider.client_id
        self.OIDC_RP_CLIENT_SECRET = oidc_provider.client_secret
        try:
            token_info = self.get_token(
                {
                    "client_id": oidc_provider.client_id,
                    "client_secret": oidc_provider.client_secret,
                    "grant_type": "authorization_code",
                    "code": request.GET.get("code", ""),
                    "redirect_uri": request.build_absolute_uri(
                        reverse("oidc-callback", kwargs={"provider": oidc_provider.name})
                    ),
                    "code_verifier": code_verifier,
                }
            )
        except requests.RequestException as error:
            raise SignInFailed(f"the token endpoint refused the authorization code: {error}") from None
        id_token = token_info.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the token response has no ID token")
        try:
            id_claims = self.verify_token(id_token, nonce=nonce)
        except TokenRefused as error:
            raise SignInFailed(f"ID token refused: {error}") from None
        claims = {**self.get_userinfo(token_info.get("access_token"), id_token, id_claims), **id_claims}
        try:
            user = identity_sign_in(provider=oidc_provider, claims=claims)
        except SignInRefused as error:
            raise SignInFailed(str(error)) from None
        self.id_token = id_token
        return user

    def get_user(self, user_id):
        """The session's user, unless disabled since (the parent does not check ``is_active``)."""
        user = super().get_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    def verify_token(self, token, **kwargs):
        """The ID token's claims; raises TokenRefused (the parent checks neither ``iss`` nor ``aud``)."""
        return validate_id_token(token, provider=self.provider, nonce=kwargs.get("nonce"))

    def get_userinfo(self, access_token, id_token, payload):
        """The userinfo endpoint's claims (none when the provider has no such endpoint); its ``sub`` must
        be the ID token's, as OpenID Connect Core 5.3.2 requires."""
        if not self.OIDC_OP_USER_ENDPOINT or not access_token:
            return {}
        try:
            response = requests.get(
                self.OIDC_OP_USER_ENDPOINT,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=settings.ILIAD_OIDC_TIMEOUT_S,
            )
            response.raise_for_status()
            if response.headers.get("content-type", "").lower().startswith("application/jwt"):
                userinfo = validate_jwt(
                    response.text, provider=self.provider, audience=self.provider.client_id
                )
            else:
                userinfo = response.json()
        except (requests.RequestException, ValueError, TokenRefused) as error:
            raise SignInFailed(f"the userinfo endpoint failed: {error}") from None
        if not isinstance(userinfo, dict) or userinfo.get("sub") != payload["sub"]:
            raise SignInFailed("the userinfo response is about another subject than the ID token")
        return userinfo
