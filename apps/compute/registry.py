"""Executors by kind: a kind names a class by dotted path (settings may add or replace kinds), and a
target's executor is built from its kind, name and configuration once per process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from apps.compute.base import BackendError, Executor

DEFAULT_KINDS: dict[str, str] = {
    "celery": "apps.compute.backends.celery.CeleryExecutor",
    "rq": "apps.compute.backends.rq.RQExecutor",
    "local": "apps.compute.backends.local.LocalExecutor",
    "slurm": "apps.compute.backends.slurm.executor.SlurmExecutor",
}


def kinds() -> dict[str, str]:
    """Every known kind → dotted path of its executor class (``ILIAD_EXECUTOR_KINDS`` extends)."""
    return {**DEFAULT_KINDS, **getattr(settings, "ILIAD_EXECUTOR_KINDS", {})}


_built: dict[tuple[str, str, str], Executor] = {}


def executor_for(kind: str, name: str, config: Mapping[str, Any]) -> Executor:
    """The executor of target ``name`` (kind and decrypted configuration), built once per process
    for the same configuration. Raises a permanent BackendError for an unknown kind."""
    path = kinds().get(kind)
    if path is None:
        raise BackendError(f"unknown compute target kind {kind!r}", permanent=True)
    key = (kind, name, repr(sorted(config.items())))
    executor = _built.get(key)
    if executor is None:
        executor = _built[key] = import_string(path)(name=name, config=dict(config))
    return executor
