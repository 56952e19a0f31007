"""A worker frozen inside a transaction (SIGSTOP, a suspended VM) holds its step's row locked: the
reconciler must neither hang on it nor hold up other steps, and PostgreSQL ends the frozen session
after ``ILIAD_DB_IDLE_IN_TRANSACTION_S`` so that the step is taken back at a later round.

PostgreSQL only: the embedded SQLite has one write lock for the whole file, which a frozen writer
holds until SQLite's own 30 s timeout, and there are no sessions to end.
"""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from apps.pipelines.services import pipeline_create
from apps.runs import orchestration, reconciler
from apps.runs.models import StepRun
from apps.runs.orchestration import run_submit
from apps.runs.reconciler import steps_recover_stalled
from tests.conftest import document, node

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL sessions (make test-stack runs these)"
    ),
]


def recover() -> int:
    return steps_recover_stalled(
        stalled_after=timedelta(seconds=10), max_attempts=3, walltime_grace=timedelta(seconds=60)
    )


def test_every_database_session_of_the_portal_is_ended_when_idle_in_a_transaction(transactional_db):
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == f"{settings.ILIAD_DB_IDLE_IN_TRANSACTION_S}s"


def test_a_step_locked_by_a_frozen_session_is_taken_back_once_the_server_ends_that_session(
    user, catalog, transactional_db, monkeypatch
):
    monkeypatch.setattr(orchestration, "dispatch_steps", lambda step_ids, target: None)
    monkeypatch.setattr(reconciler, "LOCK_WAIT_S", 1)
    doc = document([node("a", "utility.noop")], [])
    pipeline = pipeline_create(owner=user, name="one step", document=doc)
    run = run_submit(pipeline=pipeline, user=user)
    step = StepRun.objects.get(run=run, node_id="a")
    silent_since = timezone.now() - timedelta(minutes=10)
    StepRun.objects.filter(pk=step.pk).update(
        state="running", attempts=1, worker="w1@host", started_at=silent_since, heartbeat_at=silent_since
    )

    # The frozen worker: mid-way through writing a heartbeat with its events, then nothing.
    frozen = connections.create_connection("default")
    # A copy: the wrapper shares the settings' dict, and every later connection would get 3 s.
    frozen.settings_dict = {
        **frozen.settings_dict, "OPTIONS": {"options": "-c idle_in_transaction_session_timeout=3000"}
    }
    frozen.set_autocommit(False)
    with frozen.cursor() as cursor:
        cursor.execute(f"UPDATE {StepRun._meta.db_table} SET heartbeat_at = now() WHERE id = %s", [step.pk])
    try:
        started = time.monotonic()
        assert recover() == 0  # left to the next round, not waited on
        assert time.monotonic() - started < 5
        assert StepRun.objects.get(pk=step.pk).state == "running"

        time.sleep(3.5)  # the server ends the frozen session and its lock goes with it
        assert recover() == 1
        taken_back = StepRun.objects.get(pk=step.pk)
        assert (taken_back.state, taken_back.attempts) == ("queued", 1)
        with pytest.raises(Exception, match="idle-in-transaction|terminat|closed"):
            frozen.commit()  # the frozen worker's late write is not recorded
    finally:
        frozen.close()
