"""What an RQ worker of the portal runs: the job function and a worker class that loads Django once.

    rq worker --url redis://… --worker-class apps.compute.rq_jobs.PortalWorker <target name>

``PortalWorker`` sets Django up in the worker's main process before it forks its first work horse,
so each job starts with the portal (settings, apps, the block library) already imported instead of
loading it per job. The environment must hold the portal's settings (``DATABASE_URL``, ``ILIAD_HOME``
or the artifact store, …) like a Celery worker's.
"""

from __future__ import annotations

import os

from rq.worker import Worker


def _setup_django() -> None:
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
        import django

        django.setup()


def _agent_step_execute():
    """The in-process agent's entry point (``apps.runs.agent`` once the orchestration is cut in
    modules, ``apps.runs.services`` before)."""
    try:
        from apps.runs.agent import step_execute
    except ImportError:
        from apps.runs.services import step_execute
    return step_execute


def execute_step(step_id: int) -> bool:
    """Run one step through the agent (claim, heartbeats, cancel checks, result). Safe to run twice:
    only the delivery that claims the step runs it. Returns whether this job ran it."""
    _setup_django()
    from django.db import connections
    from rq import get_current_job

    job = get_current_job()
    worker = f"rq:{job.worker_name}" if job is not None and job.worker_name else "rq"
    try:
        return _agent_step_execute()(step_id=step_id, worker=worker)
    finally:
        connections.close_all()  # the work horse exits next; say goodbye to the database properly


WARM_MODULES = ("services", "selectors", "receivers", "signals", "tasks")
"""Modules of each installed app imported in the parent: step code imports many of them lazily, and
a work horse would otherwise import (and compile) them again for every job."""


def _import_service_modules() -> None:
    from importlib import import_module
    from importlib.util import find_spec

    from django.apps import apps

    for config in apps.get_app_configs():
        for name in WARM_MODULES:
            module = f"{config.name}.{name}"
            try:
                if find_spec(module) is not None:
                    import_module(module)
            except ImportError:
                continue


class PortalWorker(Worker):
    """An RQ worker with Django loaded before the first fork (see the module's docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        _setup_django()
        _agent_step_execute()  # import the agent once, in the parent
        from blocks.registry import default_registry

        default_registry()  # and load the block library (seconds), which each work horse inherits
        _import_service_modules()
        from django.db import connections

        connections.close_all()  # no connection may be shared with forked work horses
        super().__init__(*args, **kwargs)
