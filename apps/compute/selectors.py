"""Reads of compute targets: which a user may use, and what the orchestrator needs to dispatch."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from apps.compute.models import ComputeTarget

DEFAULT_TARGET_NAME = "celery"
"""The target of a fresh installation (a Celery queue of that name): steps go there when neither the
node nor the run names a target and no target is marked default."""


def targets_usable_by(*, user) -> QuerySet[ComputeTarget]:
    """Enabled targets ``user`` may run steps on: public ones, and those naming them or a group of theirs."""
    targets = ComputeTarget.objects.filter(enabled=True)
    if user.is_superuser:
        return targets
    return targets.filter(
        Q(public=True) | Q(allowed_users=user) | Q(allowed_groups__in=user.groups.all())
    ).distinct()


def target_get(name: str) -> ComputeTarget | None:
    """The target called ``name`` (enabled or not), or None."""
    return ComputeTarget.objects.filter(name=name).select_related("overflow").first()


def default_target_name() -> str:
    """Name of the target marked default, else ``DEFAULT_TARGET_NAME``."""
    name = ComputeTarget.objects.filter(is_default=True, enabled=True).values_list("name", flat=True).first()
    return name or DEFAULT_TARGET_NAME


def target_secrets(target: ComputeTarget) -> dict[str, Any]:
    """The decrypted secret options of ``target`` (see apps.compute.secrets); {} when none."""
    if not target.secrets_encrypted:
        return {}
    from apps.compute.secrets import decrypt_json  # written with the admin/API work

    return decrypt_json(target.secrets_encrypted)
