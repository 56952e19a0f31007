"""Shared fixtures: users, API clients, a synced catalog and a real Celery worker process."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
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


def _start_worker(
    name: str, *, concurrency: int, env: dict[str, str] | None = None, own_group: bool = False
) -> subprocess.Popen:
    """Start a real ``celery worker`` process named ``name`` on the test database and broker and wait
    until it answers; its log goes to ``$ILIAD_HOME/<name>.log``. With ``own_group`` it leads a new
    process group (itself and its prefork children), so that a test can kill all of it at once."""
    from iliad_portal.celery import app

    log_path = Path(os.environ["ILIAD_HOME"]) / f"{name.split('@')[0]}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "iliad_portal", "worker", "-n", name,
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=REPO_ROOT, env={**os.environ, "DATABASE_URL": _database_url_for_worker(), **(env or {})},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=own_group,
        )
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[name], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"celery worker {name} did not start; its log:\n{log_path.read_text()[-3000:]}")
    return process


SESSION_WORKER = f"test-{os.getpid()}@{socket.gethostname()}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real ``celery worker`` process (2 prefork children) on the test database and broker."""
    from iliad_portal.celery import app

    app.control.purge()
    process = _start_worker(SESSION_WORKER, concurrency=2)
    yield process
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def worker(celery_worker_process, transactional_db, catalog):
    """Use in end-to-end tests: the worker runs, the database commits, the catalog is synced."""
    if celery_worker_process.poll() is not None:
        pytest.fail("the celery worker process died")
    return celery_worker_process


@pytest.fixture
def killable_worker(worker) -> Callable[..., subprocess.Popen]:
    """Starts worker processes of the test's own, ``killable_worker(name, **env)``: each leads its own
    process group (``os.killpg(process.pid, SIGKILL)`` kills it with its children) and gets ``env``
    on top of the test environment. Meanwhile the session worker takes no new tasks, so these get
    every step; what is still alive at the end is stopped."""
    from iliad_portal.celery import app

    started: list[subprocess.Popen] = []

    def start(name: str, **env: str) -> subprocess.Popen:
        process = _start_worker(f"{name}-{os.getpid()}@{socket.gethostname()}", concurrency=1, env=env,
                                own_group=True)
        started.append(process)
        return process

    assert app.control.cancel_consumer("celery", destination=[SESSION_WORKER], reply=True, timeout=5)
    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert app.control.add_consumer("celery", destination=[SESSION_WORKER], reply=True, timeout=5)


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


@functools.cache
def openapi_schema() -> dict:
    """The API's OpenAPI schema as GET /api/schema/?format=json serves it. Generating it needs no
    database, so tests can be parametrized by its operations when they are collected."""
    from django.test import Client

    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:1000]
    return response.json()


def openapi_operations() -> list[tuple[str, str, dict]]:
    """``(method, path template, operation object)`` for every operation of the schema."""
    return [
        (method, path, operation)
        for path, item in openapi_schema()["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    ]


# Owner / editor / viewer / other user / anonymous around one project (see tests/support/access.py).
from tests.support.access import access_world  # noqa: E402, F401


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """A real OpenID Connect provider (node oidc-provider, tests/support/oidc) on 127.0.0.1, started once
    per session; fails when it cannot start."""
    from tests.support.oidc import running_provider

    with running_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider
