"""Writes for accounts: API tokens and the embedded demo account."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken

LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns the row and the key, which is not stored anywhere."""
    key = "ilp_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=key[:8], digest=token_digest(key))
    return token, key


def api_token_authenticate(*, key: str) -> ApiToken | None:
    """The active token with this key (its user loaded), or None. Records use at minute resolution."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=token_digest(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def demo_user_ensure(*, username: str, credentials_file) -> tuple[str, str, bool]:
    """Make sure the local demo account exists; returns (username, password, created).

    The password is generated once and kept in ``credentials_file`` (mode 600) under the data
    directory, so every ``make run`` prints the same working credentials.
    """
    user_model = get_user_model()
    password = credentials_file.read_text().strip() if credentials_file.exists() else ""
    if not password:
        password = secrets.token_urlsafe(12)
        credentials_file.write_text(password)
        credentials_file.chmod(0o600)
    user, created = user_model.objects.get_or_create(username=username)
    if created or not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    return username, password, created
