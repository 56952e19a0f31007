"""Credentials encrypted at rest (Fernet, keyed by ``ILIAD_SECRETS_KEY`` or, when unset, derived
from ``SECRET_KEY``): changing the key makes stored credentials unreadable, and they must be
entered again."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    key = getattr(settings, "ILIAD_SECRETS_KEY", "") or ""
    if key:
        return Fernet(key.encode() if isinstance(key, str) else key)
    digest = hashlib.sha256(f"iliad-dataspaces:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_json(value: dict[str, Any]) -> str:
    """``value`` as an encrypted token ("" for an empty dictionary)."""
    if not value:
        return ""
    return _fernet().encrypt(json.dumps(value).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    """The dictionary ``token`` holds ({} for ""); ValueError when the key changed or it was altered."""
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except (InvalidToken, ValueError):
        raise ValueError(
            "the stored credentials cannot be decrypted (the secrets key changed?); enter them again"
        ) from None
