"""DRF authentication for scripts: ``Authorization: Bearer <JWT access token from a provider>``."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions

from apps.accounts.models import Identity
from apps.accounts.oidc.tokens import TokenRefused, unverified_issuer, validate_jwt
from apps.accounts.throttling import FailureThrottledAuthentication


class OIDCBearerAuthentication(FailureThrottledAuthentication):
    """Returns ``(user, claims)`` for an access token signed by a configured provider (JWKS), with that
    provider's exact ``iss``, an ``aud`` containing its API audience (``ILIAD_OIDC_<NAME>_API_AUDIENCE``,
    default the client id), a future ``exp`` and a ``sub`` linked to a portal user by an earlier
    browser sign-in. None without a ``Bearer`` header; AuthenticationFailed (401) otherwise, and
    Throttled (429) after too many failures from the client's address (``token_failure`` rate)."""

    keyword = "Bearer"

    def _authenticate_token(self, header: list[bytes]):
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <access token>'.")
        try:
            token = header[1].decode("ascii")
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Bearer token contains invalid characters.") from None
        issuer = unverified_issuer(token)
        provider = next((p for p in settings.ILIAD_OIDC_PROVIDERS.values() if p.issuer == issuer), None)
        if provider is None:
            raise exceptions.AuthenticationFailed(
                f"Bearer token refused: its issuer {issuer!r} is not a configured identity provider."
            )
        try:
            claims = validate_jwt(token, provider=provider, audience=provider.expected_api_audience)
        except TokenRefused as error:
            raise exceptions.AuthenticationFailed(f"Bearer token refused: {error}.") from None
        identity = (
            Identity.objects.select_related("user")
            .filter(issuer=provider.issuer, subject=claims["sub"])
            .first()
        )
        if identity is None:
            raise exceptions.AuthenticationFailed(
                f"Bearer token refused: no portal account is linked to this {provider.title} account; "
                "sign in to the portal with it once."
            )
        if not identity.user.is_active:
            raise exceptions.AuthenticationFailed("Bearer token refused: the portal account is disabled.")
        return (identity.user, claims)

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class OIDCBearerScheme(OpenApiAuthenticationExtension):
    """The bearer scheme in the OpenAPI schema."""

    target_class = OIDCBearerAuthentication
    name = "oidcBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token (JWT) from one of the portal's OpenID Connect providers.",
        }
