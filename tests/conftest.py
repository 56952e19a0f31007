"""Shared fixtures: users, API clients, a synced catalog and a real Celery worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def catalog(db):
    """The catalog synced from the block registry (built-ins plus tests.support.blocks)."""
    from apps.catalog.services import catalog_sync
    from blocks.registry import default_registry

    return catalog_sync(registry=default_registry())


@pytest.fixture
def user(db, django_user_model):
    return django_user_model.objects.create_user(username="alice", password="alice-password-1")


@pytest.fixture
def other_user(db, django_user_model):
    return django_user_model.objects.create_user(username="bob", password="bob-password-1")


@pytest.fixture
def api(user):
    """A DRF client signed in as ``user``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def _database_url_for_worker() -> str:
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process (2 prefork children) on the test database and broker."""
    from iliad_portal.celery import app

    env = {**os.environ, "DATABASE_URL": _database_url_for_worker()}
    app.control.purge()
    log_path = Path(os.environ["ILIAD_HOME"]) / "worker.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iliad_portal", "worker", "--concurrency", "2",
         "--loglevel", "INFO", "--without-gossip", "--without-mingle", "-n", f"test-{os.getpid()}@%h"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"celery worker did not start; its log:\n{log_path.read_text()[-3000:]}")
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture
def worker(celery_worker_process, transactional_db, catalog):
    """Use in end-to-end tests: the worker runs, the database commits, the catalog is synced."""
    if celery_worker_process.poll() is not None:
        pytest.fail("the celery worker process died")
    return celery_worker_process


def wait_for_run(run_id: int, timeout: float = 90.0, expect: str | None = None):
    """Poll the database until the run finishes; return it. Fails the test on timeout, or when the
    run ends in another state than ``expect``, showing each step's state and error."""
    from apps.runs.models import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.state in RUN_FINISHED and run.finished_at is not None:
            if expect is not None and run.state != expect:
                pytest.fail(f"run {run_id} ended {run.state}, expected {expect}:\n{_steps_summary(run)}")
            return run
        time.sleep(0.1)
    pytest.fail(f"run {run_id} did not finish within {timeout} s:\n{_steps_summary(run)}")


def _steps_summary(run) -> str:
    return "\n".join(
        f"  {step.node_id}: {step.state} {step.error or ''}" for step in run.steps.order_by("id")
    )


def wait_for_idle_worker(timeout: float = 30.0) -> None:
    """Wait until the broker queue is empty and no worker is executing a task."""
    from iliad_portal.celery import app

    deadline = time.monotonic() + timeout
    with app.connection_for_write() as conn:
        while time.monotonic() < deadline:
            queued = conn.default_channel.client.llen("celery")
            active = app.control.inspect(timeout=0.5).active() or {}
            if queued == 0 and not any(active.values()):
                return
            time.sleep(0.1)
    pytest.fail("the worker did not become idle")


def node(node_id: str, block: str, version: str = "1.0.0", **params) -> dict:
    return {"id": node_id, "block": block, "version": version, "params": params, "position": {"x": 0, "y": 0}}


def edge(source: str, source_port: str, target: str, target_port: str) -> dict:
    return {"source": source, "source_port": source_port, "target": target, "target_port": target_port}


def document(nodes: list[dict], edges: list[dict]) -> dict:
    return {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": edges}
