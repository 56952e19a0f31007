"""Writes of compute targets (admin and API go through here): validation per kind, the overflow
chain, write-only secrets, one default target."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils.module_loading import import_string

from apps.compute.models import ComputeTarget
from apps.compute.registry import kinds
from apps.compute.secrets import decrypt_json, encrypt_json

WRITABLE = (
    "name", "title", "kind", "description", "config", "enabled", "is_default", "public",
    "max_concurrent_steps", "overflow", "burst_threshold",
)


class TargetInvalid(Exception):
    """A target's fields do not fit together; ``errors`` maps field name → message."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


def kind_config_errors(kind: str, config: Mapping[str, Any]) -> dict[str, str]:
    """Problems of ``config`` (secrets merged in) for an executor of ``kind``, by option; the
    executor's module may define ``config_errors(config) -> {option: message}``."""
    path = kinds().get(kind)
    if path is None:
        return {"kind": f"unknown kind {kind!r}"}
    try:
        executor_class = import_string(path)
    except ImportError:
        return {"kind": f"the {kind} executor is not installed here ({path})"}
    check = getattr(sys.modules[executor_class.__module__], "config_errors", None)
    return dict(check(config)) if check is not None else {}


def _overflow_errors(
    target: ComputeTarget, overflow: ComputeTarget | None, threshold: int | None
) -> dict[str, str]:
    if overflow is None:
        return {}
    if target.pk is not None and overflow.pk == target.pk:
        return {"overflow": "a target cannot overflow into itself"}
    seen = {target.pk} if target.pk is not None else set()
    chain = [target.name]
    hop: ComputeTarget | None = overflow
    while hop is not None:
        chain.append(hop.name)
        if hop.pk in seen:
            return {"overflow": f"overflow targets would go round in a circle: {' → '.join(chain)}"}
        seen.add(hop.pk)
        hop = hop.overflow
    if threshold is None:
        return {"burst_threshold": "set the queue depth above which steps go to the overflow target"}
    return {}


def target_errors(target: ComputeTarget, secret_values: Mapping[str, Any]) -> dict[str, str]:
    """What is wrong with ``target`` (unsaved changes included) if its secret options were
    ``secret_values``: field name ("kind", "config", "secrets", "overflow", "burst_threshold") → message."""
    if not isinstance(target.config, dict):
        return {"config": "must be a JSON object"}
    errors: dict[str, str] = {}
    for key, message in kind_config_errors(target.kind, {**target.config, **secret_values}).items():
        if key == "kind":
            errors["kind"] = message
        else:
            errors.setdefault("secrets" if key in secret_values else "config", f"{key}: {message}")
    errors.update(_overflow_errors(target, target.overflow, target.burst_threshold))
    if target.burst_threshold is not None and target.overflow is None:
        errors.setdefault("overflow", "a burst threshold needs an overflow target to send steps to")
    return errors


def merge_secrets(token: str, changes: Mapping[str, Any] | None) -> str:
    """The token of the secrets in ``token`` with ``changes`` applied: a key set to None (or "") is
    removed, others replace or add; None changes nothing."""
    if changes is None:
        return token
    values = decrypt_json(token)
    for key, value in changes.items():
        if value is None or value == "":
            values.pop(key, None)
        else:
            values[key] = value
    return encrypt_json(values)


@transaction.atomic
def target_save(
    *,
    target: ComputeTarget | None = None,
    fields: Mapping[str, Any],
    secrets: Mapping[str, Any] | None = None,
) -> ComputeTarget:
    """Create (``target`` None) or update a target from ``fields`` (any of ``WRITABLE``; ``overflow``
    a ComputeTarget or None) and ``secrets`` changes (see ``merge_secrets``). Marking it default
    unmarks the others. Raises TargetInvalid naming each field at fault; changes nothing then."""
    creating = target is None
    target = target or ComputeTarget()
    unknown = set(fields) - set(WRITABLE)
    if unknown:
        raise TargetInvalid({name: "not a writable field" for name in sorted(unknown)})
    if not creating and "name" in fields and fields["name"] != target.name:
        raise TargetInvalid({"name": "cannot be changed: runs and pipeline documents refer to it"})
    if creating and ComputeTarget.objects.filter(name=fields.get("name")).exists():
        raise TargetInvalid({"name": f"a target called {fields.get('name')!r} already exists"})
    for name, value in fields.items():
        setattr(target, name, value)
    if secrets is not None and not isinstance(secrets, dict):
        raise TargetInvalid({"secrets": "must be a JSON object"})
    token = merge_secrets(target.secrets_encrypted, secrets)
    errors = target_errors(target, decrypt_json(token))
    if errors:
        raise TargetInvalid(errors)
    target.secrets_encrypted = token
    target.save()
    if target.is_default:
        ComputeTarget.objects.filter(is_default=True).exclude(pk=target.pk).update(is_default=False)
    return target


class TargetBusy(Exception):
    """The target still has steps waiting or running."""


@transaction.atomic
def target_delete(*, target: ComputeTarget) -> None:
    """Delete a target that has no step waiting or running on it (raises TargetBusy otherwise).
    Targets overflowing into it stop bursting."""
    from apps.compute.selectors import step_counts_by_target

    counts = step_counts_by_target([target.name])[target.name]
    if counts["queued"] or counts["running"]:
        raise TargetBusy(
            f"compute target {target.name!r} has {counts['queued']} waiting and {counts['running']} running "
            "steps; disable it and delete it once they have ended"
        )
    target.delete()


def secret_keys(target: ComputeTarget) -> list[str]:
    """Which secret options are set (never their values)."""
    return sorted(decrypt_json(target.secrets_encrypted))
