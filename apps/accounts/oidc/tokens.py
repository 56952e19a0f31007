"""Validation of a provider's JWTs: ID tokens at sign-in, access tokens sent to the API.

Closes mozilla-django-oidc's gaps: the signature is checked with the provider's published keys (never
the client secret, never "none"), ``iss`` must equal the configured issuer exactly, ``aud`` must contain
the expected audience, ``exp`` must be present and in the future, and ``sub`` must be a non-empty string.
"""

from __future__ import annotations

import jwt
from django.conf import settings

from apps.accounts.oidc.config import ProviderConfig
from apps.accounts.oidc.discovery import ProviderUnavailable, UnknownKey, signing_key


class TokenRefused(Exception):
    """A token failed validation; ``str(error)`` says which check, for the log."""


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, read without checking anything: only to pick whose keys check it."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return issuer if isinstance(issuer, str) else None


def validate_jwt(token: str, *, provider: ProviderConfig, audience: str, nonce: str | None = None) -> dict:
    """The claims of ``token`` once every check passed; raises TokenRefused naming the failed check.
    ``nonce``, when given, must equal the token's ``nonce`` (ID tokens: the value sent with this very
    sign-in, so a token from another sign-in is refused)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise TokenRefused(f"not a signed JWT: {error}") from None
    algorithm = header.get("alg")
    if algorithm not in provider.algorithms:
        raise TokenRefused(
            f"signing algorithm {algorithm!r} is not accepted (expected {', '.join(provider.algorithms)})"
        )
    try:
        key = signing_key(provider, header)
    except (UnknownKey, ProviderUnavailable) as error:
        raise TokenRefused(str(error)) from None
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=audience,
            issuer=provider.issuer,
            leeway=settings.ILIAD_OIDC_LEEWAY_S,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.InvalidSignatureError:
        raise TokenRefused(f"bad signature (key id {header.get('kid')!r})") from None
    except jwt.ExpiredSignatureError:
        raise TokenRefused("expired (exp is in the past)") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused(
            f"wrong issuer {unverified_issuer(token)!r}, expected {provider.issuer!r}"
        ) from None
    except jwt.InvalidAudienceError:
        raise TokenRefused(
            f"wrong audience {_unverified(token).get('aud')!r}, expected to contain {audience!r}"
        ) from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenRefused(f"no {error.claim!r} claim") from None
    except jwt.PyJWTError as error:
        raise TokenRefused(f"invalid: {error}") from None
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise TokenRefused("no 'sub' claim (empty)")
    if nonce is not None and claims.get("nonce") != nonce:
        raise TokenRefused("nonce does not match this sign-in (a replayed or foreign ID token)")
    return claims


def validate_id_token(token: str, *, provider: ProviderConfig, nonce: str | None) -> dict:
    """An ID token for the portal: audience is the client id; an ``azp`` present must be the client id."""
    claims = validate_jwt(token, provider=provider, audience=provider.client_id, nonce=nonce)
    if "azp" in claims and claims["azp"] != provider.client_id:
        raise TokenRefused(
            f"authorized party (azp) {claims['azp']!r} is not this portal ({provider.client_id!r})"
        )
    return claims


def _unverified(token: str) -> dict:
    try:
        return jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
