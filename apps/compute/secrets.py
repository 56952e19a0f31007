"""Encryption at rest of compute targets' secret options (keys, passwords, tokens).

Fernet (AES-128-CBC + HMAC-SHA256) keyed by ``ILIAD_TARGET_SECRETS_KEY`` (a Fernet key, from
``Fernet.generate_key()``), or when that is unset by a key derived with HKDF-SHA256 from
``SECRET_KEY``. Rotation: put the new key in ``ILIAD_TARGET_SECRETS_KEY`` and the old ones in
``ILIAD_TARGET_SECRETS_OLD_KEYS``; tokens made with any of them still decrypt, new ones use the new
key, and ``manage.py compute_rotate_secrets`` re-encrypts every target with it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_HKDF_INFO = b"iliad-portal compute target secrets v1"


class SecretsUnreadable(Exception):
    """A token that none of the configured keys opens (the key changed without rotation, or the
    stored text was altered)."""


def _derived_key(secret_key: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def _fernet(key: str | bytes, setting: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError) as error:
        raise ImproperlyConfigured(
            f"{setting} is not a Fernet key (32 url-safe base64-encoded bytes; make one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
        ) from error


def _keys() -> MultiFernet:
    """The current key first (it encrypts), then the old ones (they only decrypt)."""
    current = getattr(settings, "ILIAD_TARGET_SECRETS_KEY", "")
    fernets = [
        _fernet(current, "ILIAD_TARGET_SECRETS_KEY") if current else Fernet(_derived_key(settings.SECRET_KEY))
    ]
    for old in getattr(settings, "ILIAD_TARGET_SECRETS_OLD_KEYS", ()):
        fernets.append(_fernet(old, "ILIAD_TARGET_SECRETS_OLD_KEYS"))
    if current:  # switching from the derived key to a dedicated one must not lose existing secrets
        fernets.append(Fernet(_derived_key(settings.SECRET_KEY)))
    return MultiFernet(fernets)


def encrypt_json(values: dict[str, Any]) -> str:
    """The token of ``values`` (a JSON object) under the current key; "" for an empty dict."""
    if not values:
        return ""
    return _keys().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    """The dict a token of ``encrypt_json`` holds ({} for ""). Raises SecretsUnreadable when no key
    opens it."""
    if not token:
        return {}
    try:
        return json.loads(_keys().decrypt(token.encode()))
    except InvalidToken as error:
        raise SecretsUnreadable(
            "the secrets of this compute target cannot be decrypted with ILIAD_TARGET_SECRETS_KEY or "
            "ILIAD_TARGET_SECRETS_OLD_KEYS (was the key changed without keeping the old one?)"
        ) from error


def rotate(token: str) -> str:
    """The same secrets under the current key (a no-op for "")."""
    return _keys().rotate(token.encode()).decode() if token else ""
