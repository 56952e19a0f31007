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


def target_config(target: ComputeTarget) -> dict[str, Any]:
    """What the executor of ``target`` is built from: its options, its decrypted secret options, and
    for bursting ``burst_threshold`` and ``overflow`` (the overflow target's name) when both are set."""
    config = {**target.config, **target_secrets(target)}
    if target.overflow_id is not None and target.burst_threshold is not None:
        config["burst_threshold"] = target.burst_threshold
        config["overflow"] = target.overflow.name
    return config


def executor_of(target: ComputeTarget):
    """The executor of ``target`` (built once per process for the same configuration)."""
    from apps.compute.registry import executor_for

    return executor_for(target.kind, target.name, target_config(target))


MAX_OVERFLOW_HOPS = 4


def route_launches(name: str, launches) -> tuple[str, Any]:
    """Where a batch of launches for target ``name`` goes, and the executor to submit it to.

    An executor with a ``route(launches) -> target name`` method (Celery's bursting) may send the batch
    to another target; that one is asked in turn, at most ``MAX_OVERFLOW_HOPS`` times (the admin and
    the API refuse cycles). A routed-to target that is missing or disabled keeps the batch where it
    was. Raises BackendError (permanent) for an unknown target or kind."""
    from apps.compute.base import BackendError

    target = target_get(name)
    if target is None:
        raise BackendError(f"unknown compute target {name!r}", permanent=True)
    executor = executor_of(target)
    for _ in range(MAX_OVERFLOW_HOPS):
        route = getattr(executor, "route", None)
        routed = route(launches) if route is not None else target.name
        if routed == target.name:
            break
        overflow = target_get(routed)
        if overflow is None or not overflow.enabled:
            break
        target, executor = overflow, executor_of(overflow)
    return target.name, executor


def step_counts_by_target(names) -> dict[str, dict[str, int]]:
    """Queued and running steps of each named target: ``{name: {"queued": n, "running": n}}``
    (one grouped query)."""
    from django.db.models import Count

    from apps.runs.models import StepRun

    names = list(names)
    counts = {name: {"queued": 0, "running": 0} for name in names}
    rows = (
        StepRun.objects.filter(target__in=names, state__in=("queued", "submitted", "running"))
        .values("target", "state")
        .annotate(steps=Count("id"))
        .values_list("target", "state", "steps")
    )
    for name, state, steps in rows:
        counts[name]["running" if state == "running" else "queued"] += steps
    return counts
