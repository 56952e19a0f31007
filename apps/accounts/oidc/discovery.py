"""Each provider's discovery document and signing keys, fetched over HTTPS and kept in the cache.

The discovery document (``<issuer>/.well-known/openid-configuration``) must name the configured issuer
exactly. Signing keys come from its ``jwks_uri``; a token signed with a key id the cached set does not
know makes the set be fetched again once (the provider rotated its keys), at most every
``ILIAD_OIDC_JWKS_REFRESH_MIN_S`` seconds so that made-up key ids cannot make the portal hammer the
provider.
"""

from __future__ import annotations

import hashlib
import time

import jwt
import requests
from django.conf import settings
from django.core.cache import cache

from apps.accounts.oidc.config import ProviderConfig

REQUIRED_METADATA = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class ProviderUnavailable(Exception):
    """The provider's discovery document or keys could not be fetched or are not acceptable."""


class UnknownKey(Exception):
    """No key of the provider's current key set matches the token's key id and algorithm."""


def _cache_key(kind: str, provider: ProviderConfig) -> str:
    return f"oidc:{kind}:{hashlib.sha256(provider.issuer.encode()).hexdigest()[:32]}"


def _get_json(url: str, what: str, provider: ProviderConfig) -> dict:
    try:
        response = requests.get(
            url, timeout=settings.ILIAD_OIDC_TIMEOUT_S, headers={"Accept": "application/json"}
        )
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnavailable(f"{provider.title}: cannot fetch its {what} from {url}: {error}") from None
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{provider.title}: its {what} at {url} is not a JSON object")
    return document


def provider_metadata(provider: ProviderConfig) -> dict:
    """The provider's discovery document (cached for ``ILIAD_OIDC_DISCOVERY_CACHE_S``). Raises
    ProviderUnavailable when it cannot be fetched, names another issuer or lacks a required endpoint."""
    key = _cache_key("metadata", provider)
    metadata = cache.get(key)
    if metadata is not None:
        return metadata
    metadata = _get_json(provider.discovery_url, "discovery document", provider)
    if metadata.get("issuer") != provider.issuer:
        raise ProviderUnavailable(
            f"{provider.title}: the discovery document at {provider.discovery_url} names the issuer "
            f"{metadata.get('issuer')!r}, not the configured {provider.issuer!r}"
        )
    missing = [name for name in REQUIRED_METADATA if not isinstance(metadata.get(name), str)]
    if missing:
        raise ProviderUnavailable(f"{provider.title}: the discovery document lacks {', '.join(missing)}")
    cache.set(key, metadata, settings.ILIAD_OIDC_DISCOVERY_CACHE_S)
    return metadata


def _fetch_jwks(provider: ProviderConfig) -> dict:
    jwks = _get_json(provider_metadata(provider)["jwks_uri"], "signing keys (JWKS)", provider)
    if not isinstance(jwks.get("keys"), list):
        raise ProviderUnavailable(f"{provider.title}: its JWKS has no 'keys' list")
    entry = {"keys": jwks["keys"], "fetched_at": time.time()}
    cache.set(_cache_key("jwks", provider), entry, settings.ILIAD_OIDC_DISCOVERY_CACHE_S)
    return entry


def _matching_key(keys: list, header: dict) -> dict | None:
    candidates = [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("use", "sig") == "sig"
        and key.get("alg", header["alg"]) == header["alg"]
    ]
    if "kid" in header:
        candidates = [key for key in candidates if key.get("kid") == header["kid"]]
    # Without a key id, only a provider with a single signing key is unambiguous.
    return candidates[0] if len(candidates) == 1 else None


def signing_key(provider: ProviderConfig, header: dict) -> jwt.PyJWK:
    """The provider's public key for a token with this JOSE ``header``; re-fetches the key set once
    when the cached one has no such key. Raises UnknownKey or ProviderUnavailable."""
    entry = cache.get(_cache_key("jwks", provider)) or _fetch_jwks(provider)
    key = _matching_key(entry["keys"], header)
    if key is None and time.time() - entry["fetched_at"] >= settings.ILIAD_OIDC_JWKS_REFRESH_MIN_S:
        entry = _fetch_jwks(provider)
        key = _matching_key(entry["keys"], header)
    if key is None:
        raise UnknownKey(
            f"unknown key: no signing key of {provider.title} has key id {header.get('kid')!r} "
            f"and algorithm {header['alg']!r}"
        )
    try:
        return jwt.PyJWK(key, algorithm=header["alg"])
    except jwt.PyJWTError as error:
        raise UnknownKey(f"{provider.title}'s key {header.get('kid')!r} is not usable: {error}") from None


def forget(provider: ProviderConfig) -> None:
    """Drop the cached discovery document and keys (tests; or after changing a provider)."""
    cache.delete_many([_cache_key("metadata", provider), _cache_key("jwks", provider)])
