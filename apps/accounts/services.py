"""Writes for accounts: API tokens and the embedded demo account."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, TokenScope
from apps.projects.access import projects_of

LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class TokenRefused(Exception):
    """A presented token cannot be used; the message says why, in a sentence for the client."""


def token_lifetime_bounds() -> tuple[int, int]:
    """(default, maximum) lifetime of a new token in days (``ILIAD_API_TOKEN_DAYS``, never above
    ``ILIAD_API_TOKEN_MAX_DAYS``)."""
    maximum = settings.ILIAD_API_TOKEN_MAX_DAYS
    return min(settings.ILIAD_API_TOKEN_DAYS, maximum), maximum


@transaction.atomic
def api_token_create(
    *,
    user,
    name: str = "",
    scope: str = TokenScope.WRITE,
    days: int | None = None,
    project=None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user`` that expires after ``days`` (default ``ILIAD_API_TOKEN_DAYS``, at most
    ``ILIAD_API_TOKEN_MAX_DAYS``), with ``scope`` ``read`` or ``write`` and, if ``project`` is given,
    restricted to that project. Returns the row and the key, which is not stored anywhere.

    Raises ValueError naming the bad argument."""
    default_days, max_days = token_lifetime_bounds()
    days = default_days if days is None else days
    if not 1 <= days <= max_days:
        raise ValueError(f"days: a token lives between 1 and {max_days} days, not {days}")
    if scope not in TokenScope.values:
        raise ValueError(f"scope: one of {', '.join(TokenScope.values)}, not {scope!r}")
    if len(name) > 100:
        raise ValueError("name: at most 100 characters")
    if project is not None and not projects_of(user=user).filter(pk=project.pk).exists():
        raise ValueError(f"project: {user} is not a member of project {project.slug!r}")
    key = "ilp_" + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=key[:8],
        digest=token_digest(key),
        scope=scope,
        expires_at=timezone.now() + timedelta(days=days),
        project=project,
    )
    return token, key


def api_token_authenticate(*, key: str) -> ApiToken:
    """The usable token with this key, its user loaded. Records use at most once per
    ``LAST_USED_RESOLUTION``, so that a busy script does not write on every request.

    Raises TokenRefused, saying why, for an unknown, revoked or expired key or an inactive user."""
    token = ApiToken.objects.select_related("user").filter(digest=token_digest(key)).first()
    if token is None or not token.user.is_active:
        raise TokenRefused("Invalid or revoked token.")
    if token.revoked_at is not None:
        raise TokenRefused(f"This token was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    now = timezone.now()
    if token.is_expired(now):
        raise TokenRefused(
            f"This token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC; "
            "make a new one on the API tokens page."
        )
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_revoke(*, user, token_id: int) -> bool:
    """Revoke ``user``'s token ``token_id``; False if the user has no such unrevoked token."""
    active = ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True)
    return bool(active.update(revoked_at=timezone.now()))


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
