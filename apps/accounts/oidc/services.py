"""Writes for federated sign-in: verified claims → the portal user, its Identity and its memberships."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Identity
from apps.accounts.oidc.config import ProviderConfig
from apps.accounts.oidc.roles import desired_memberships, memberships_apply

logger = logging.getLogger(__name__)

USERNAME_MAX = 150


class SignInRefused(Exception):
    """The provider vouched for the person, but the portal does not let them in (e.g. a disabled account)."""


def unique_username(claims: Mapping) -> str:
    """A free username built from ``preferred_username``, the e-mail's local part or the name, with
    ``-2``, ``-3``… appended when taken. Only a label: accounts are matched by (issuer, sub)."""
    User = get_user_model()
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    for candidate in (claims.get("preferred_username"), email.partition("@")[0], claims.get("name")):
        if isinstance(candidate, str):
            base = re.sub(r"[^\w.+-]+", "-", candidate.strip()).strip("-.")[: USERNAME_MAX - 6]
            if base:
                break
    else:
        base = "user"
    username, number = base, 1
    while User.objects.filter(username__iexact=username).exists():
        number += 1
        username = f"{base}-{number}"
    return username


def _profile(claims: Mapping) -> dict[str, str]:
    """User fields the provider's claims fill in (only those present, cut to the model's lengths)."""
    fields = {"email": "email", "given_name": "first_name", "family_name": "last_name"}
    return {
        field: claims[claim][: 254 if field == "email" else 150]
        for claim, field in fields.items()
        if isinstance(claims.get(claim), str)
    }


@transaction.atomic
def identity_sign_in(*, provider: ProviderConfig, claims: Mapping):
    """The user signing in with ``provider`` and verified ``claims`` (``sub`` required): found through
    the Identity (issuer, sub), or created with a new unique username. Their profile and the identity's
    last claims are updated and the role rules re-applied. Raises SignInRefused for a disabled user."""
    User = get_user_model()
    identity = (
        Identity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=provider.issuer, subject=claims["sub"])
        .first()
    )
    profile = _profile(claims)
    if identity is None:
        user = User.objects.create_user(username=unique_username(claims), password=None, **profile)
        identity = Identity.objects.create(
            user=user,
            issuer=provider.issuer,
            subject=claims["sub"],
            provider=provider.name,
            claims=dict(claims),
        )
        logger.info("new user %s from %s (sub %s)", user.username, provider.name, claims["sub"])
    else:
        user = identity.user
        if not user.is_active:
            raise SignInRefused(f"the portal account {user.username!r} is disabled")
        changed = [field for field, value in profile.items() if getattr(user, field) != value]
        for field in changed:
            setattr(user, field, profile[field])
        if changed:
            user.save(update_fields=changed)
        identity.claims = dict(claims)
        identity.provider = provider.name
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["claims", "provider", "last_sign_in_at"])
    desired = desired_memberships(
        claims, settings.ILIAD_OIDC_ROLE_RULES, provider=provider.name, group_claims=provider.group_claims
    )
    changes = memberships_apply(user=user, desired=desired)
    if any(changes.values()):
        logger.info("memberships of %s from sign-in rules: %s", user.username, changes)
    return user
