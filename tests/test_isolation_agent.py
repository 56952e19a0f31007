"""The in-worker agent with ``ILIAD_ISOLATE_STEPS``: a step of a real run, executed by
``step_execute`` as a Celery or RQ job would, runs its block in an isolated child; the block finds
none of the worker's secrets, and the step is recorded as usual."""

from __future__ import annotations

import json

import pytest

from apps.catalog.services import catalog_sync
from apps.compute import isolation
from apps.compute.isolation import protections
from apps.pipelines.services import pipeline_create
from apps.runs.agent import step_execute
from apps.runs.models import Artifact, StepRun
from apps.runs.orchestration import run_submit
from blocks.manifest import path_from_uri
from blocks.registry import discover
from tests.conftest import document, node

BLOCK_MODULES = "tests.support.blocks,tests.support.isolation_blocks"


@pytest.fixture
def isolated_agent(settings, monkeypatch, db):
    """ILIAD_ISOLATE_STEPS on, the isolation test blocks in the catalog, and a launcher of this test's
    own, started while the worker's environment holds secrets."""
    settings.ILIAD_ISOLATE_STEPS = True
    monkeypatch.setenv("ILIAD_BLOCK_MODULES", BLOCK_MODULES)
    monkeypatch.setenv("DATABASE_URL", "postgres://portal:agent-db-password@db.example/iliad")
    monkeypatch.setenv("ILIAD_SECRET_KEY", "agent-secret-key-value")
    catalog_sync(registry=discover(BLOCK_MODULES.split(",")))
    monkeypatch.setattr(isolation, "_launcher", None)
    yield
    if isolation._launcher is not None:
        isolation._launcher.close()


def test_an_isolated_step_of_a_run_finds_no_secrets_and_is_recorded(
    isolated_agent, user, settings, django_capture_on_commit_callbacks
):
    secret_file = settings.ILIAD_HOME / "secret_key"
    doc = document([node("snoop", "isolation.snoop", paths=[str(secret_file)])], [])
    pipeline = pipeline_create(owner=user, name="snoop", document=doc)
    with django_capture_on_commit_callbacks(execute=False):
        run = run_submit(pipeline=pipeline, user=user, cache=False)
    step = StepRun.objects.get(run=run, node_id="snoop")

    assert step_execute(step_id=step.pk, worker="isolated@test")

    step.refresh_from_db()
    assert step.state == "succeeded", step.error if hasattr(step, "error") else step.state
    [artifact] = Artifact.objects.filter(run=run)
    found = json.loads(path_from_uri(artifact.uri, settings.ILIAD_ARTIFACT_ROOT).read_text())
    text = json.dumps(found)
    for secret in ("agent-db-password", "agent-secret-key-value", settings.SECRET_KEY):
        assert secret not in text
    assert "DATABASE_URL" not in found["environ"] and "DJANGO_SETTINGS_MODULE" not in found["environ"]
    assert found["django_loaded"] is False
    if protections()["separate_user"]:
        assert found["files"][str(secret_file)].startswith("denied")
        assert found["uid"] == 65534
