"""Per-user limits (active runs, waiting steps, pipelines, storage) and the fair sharing of workers
between users: one account cannot take the whole machine."""

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.limits import LimitExceeded
from apps.pipelines.models import Pipeline
from apps.pipelines.services import pipeline_create
from apps.runs import orchestration
from apps.runs.models import Artifact, Run, StepRun
from apps.runs.services import (
    RunRejected,
    run_cancel,
    run_submit,
    step_execute,
    steps_dispatch_held,
    steps_requeue_lost,
)
from tests.conftest import REPO_ROOT, document, edge, node, wait_for_idle_worker, wait_for_run

MB = 1024 * 1024


@pytest.fixture
def dispatched(monkeypatch):
    """Records the step ids handed to the broker instead of sending them (no worker here)."""
    sent: list[int] = []
    monkeypatch.setattr(orchestration, "dispatch_steps", lambda step_ids, target: sent.extend(step_ids))
    return sent


@pytest.fixture
def bob_api(other_user):
    client = APIClient()
    client.force_authenticate(other_user)
    return client


def chain_document(steps: int = 3) -> dict:
    names = [f"s{index}" for index in range(steps)]
    return document(
        [node(name, "utility.noop") for name in names],
        [edge(first, "result", second, "trigger") for first, second in zip(names, names[1:], strict=False)],
    )


def fanout_document(steps: int) -> dict:
    return document([node(f"f{index}", "utility.noop") for index in range(steps)], [])


def make_pipeline(api, doc: dict | None = None, name: str = "p") -> int:
    response = api.post("/api/pipelines/", {"name": name, "document": doc or chain_document()}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def post_run(api, pipeline_id: int):
    return api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json")


# --- limits ---------------------------------------------------------------------------------------


def test_active_runs_limit(api, user, catalog, settings, dispatched):
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 2
    pipeline_id = make_pipeline(api)
    first, second = (post_run(api, pipeline_id) for _ in range(2))
    assert (first.status_code, second.status_code) == (201, 201)
    steps_before = StepRun.objects.count()
    refused = post_run(api, pipeline_id)
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": "You have 2 active runs, the limit is 2 (ILIAD_LIMIT_ACTIVE_RUNS). "
        "Wait for one to finish or cancel one."
    }
    assert Run.objects.filter(owner=user).count() == 2 and StepRun.objects.count() == steps_before
    assert api.post(f"/api/runs/{first.json()['id']}/cancel/").status_code == 200
    assert post_run(api, pipeline_id).status_code == 201  # below the limit again
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 0  # no limit
    assert post_run(api, pipeline_id).status_code == 201


def test_the_limits_are_per_user(api, bob_api, catalog, settings, dispatched):
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 1
    assert post_run(api, make_pipeline(api)).status_code == 201
    assert post_run(bob_api, make_pipeline(bob_api)).status_code == 201


def test_waiting_steps_limit(api, user, catalog, settings, dispatched):
    settings.ILIAD_LIMIT_QUEUED_STEPS = 5
    pipeline_id = make_pipeline(api, chain_document(3))
    assert post_run(api, pipeline_id).status_code == 201
    refused = post_run(api, pipeline_id)
    assert refused.status_code == 429
    assert refused.json()["detail"] == (
        "You have 3 steps waiting to run and this run adds 3; the limit is 5 (ILIAD_LIMIT_QUEUED_STEPS). "
        "Wait for runs to finish or cancel some."
    )
    assert Run.objects.filter(owner=user).count() == 1
    too_big = post_run(api, make_pipeline(api, chain_document(6)))
    assert too_big.status_code == 429
    assert too_big.json()["detail"].startswith(
        "This run has 6 steps, more than the 5 steps one may have waiting at once (ILIAD_LIMIT_QUEUED_STEPS)."
    )
    settings.ILIAD_LIMIT_QUEUED_STEPS = 6
    assert post_run(api, pipeline_id).status_code == 201


def test_pipelines_limit_on_create_and_from_a_template(api, client, user, catalog, settings):
    settings.ILIAD_LIMIT_PIPELINES = 2
    make_pipeline(api, name="one")
    make_pipeline(api, name="two")
    sentence = (
        "You have 2 pipelines, the limit is 2 (ILIAD_LIMIT_PIPELINES). Delete pipelines you no longer need."
    )
    refused = api.post("/api/pipelines/", {"name": "three", "document": chain_document()}, format="json")
    assert (refused.status_code, refused.json()) == (429, {"detail": sentence})
    from_template = api.post("/api/templates/sst-site-forecast/use/", {}, format="json")
    assert (from_template.status_code, from_template.json()) == (429, {"detail": sentence})
    client.force_login(user)
    page = client.post("/templates/sst-site-forecast/use/", follow=True)
    assert page.status_code == 200 and sentence in page.content.decode()
    assert Pipeline.objects.filter(owner=user).count() == 2
    one = Pipeline.objects.get(owner=user, name="one")
    assert api.delete(f"/api/pipelines/{one.pk}/").status_code == 204
    assert api.post("/api/templates/sst-site-forecast/use/", {}, format="json").status_code == 201


def test_storage_limit(api, bob_api, user, catalog, settings, dispatched):
    settings.ILIAD_LIMIT_STORAGE_MB = 1
    pipeline_id = make_pipeline(api)
    run = Run.objects.get(pk=post_run(api, pipeline_id).json()["id"])
    step = run.steps.first()
    Artifact.objects.create(
        run=run, step=step, port="result", uri="file:///x", type="json", media_type="application/json",
        sha256="0" * 64, size=MB - 1,
    )
    assert post_run(api, pipeline_id).status_code == 201  # just under 1 MB
    produced = Artifact.objects.get(run=run)
    reuse = Run.objects.exclude(pk=run.pk).get(owner=user)
    Artifact.objects.create(  # a cached step's artifact names the same file: not counted again
        run=reuse, step=reuse.steps.first(), port="result", uri="file:///x", type="json",
        media_type="application/json", sha256="0" * 64, size=MB - 1, cached_from=produced,
    )
    assert post_run(api, pipeline_id).status_code == 201
    Artifact.objects.filter(run=run).update(size=3 * MB // 2)
    refused = post_run(api, pipeline_id)
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "The results of your runs take 1.5 MB, the limit is 1 MB (ILIAD_LIMIT_STORAGE_MB). "
        "Delete runs whose results you no longer need, or ask an administrator to raise the limit."
    }
    assert Run.objects.filter(owner=user).count() == 3
    assert post_run(bob_api, make_pipeline(bob_api)).status_code == 201  # another user's storage


def test_the_run_button_shows_the_limit_instead_of_failing(client, user, catalog, settings, dispatched):
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 1
    pipeline = pipeline_create(owner=user, name="p", document=chain_document())
    client.force_login(user)
    assert client.post(f"/pipelines/{pipeline.pk}/run/").status_code == 302
    page = client.post(f"/pipelines/{pipeline.pk}/run/", follow=True)
    assert page.status_code == 200
    assert "You have 1 active run, the limit is 1 (ILIAD_LIMIT_ACTIVE_RUNS)." in page.content.decode()
    assert Run.objects.filter(owner=user).count() == 1


def test_two_concurrent_submissions_cannot_both_pass_the_limit(
    user, catalog, settings, dispatched, transactional_db
):
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 1
    pipeline = pipeline_create(owner=user, name="p", document=chain_document())
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def submit() -> None:
        from django.db import connection

        start.wait()
        try:
            run_submit(pipeline=pipeline, user=user)
            outcomes.append("created")
        except LimitExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["created", "refused"]
    assert Run.objects.filter(owner=user).count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "ILIAD_LIMIT_ACTIVE_RUNS=-1 must not be negative"),
        ("ten", "ILIAD_LIMIT_ACTIVE_RUNS='ten' is not an integer"),
    ],
)
def test_a_bad_limit_setting_stops_the_start(value, message):
    env = {**os.environ, "ILIAD_LIMIT_ACTIVE_RUNS": value, "DJANGO_SETTINGS_MODULE": "iliad_portal.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and message in result.stderr


# --- fair sharing, in-process ---------------------------------------------------------------------


def held(run) -> list[str]:
    return list(
        StepRun.objects.filter(run=run, state="queued", dispatched_at__isnull=True)
        .order_by("id")
        .values_list("node_id", flat=True)
    )


def submit(user, doc, capture):
    with capture(execute=True):
        return run_submit(pipeline=pipeline_create(owner=user, name="p", document=doc), user=user)


def test_steps_over_the_users_cap_are_held_and_go_out_as_steps_end(
    api, user, catalog, settings, dispatched, django_capture_on_commit_callbacks
):
    settings.ILIAD_FAIR_STEPS_PER_USER = 2
    run = submit(user, fanout_document(5), django_capture_on_commit_callbacks)
    steps = {step.node_id: step.pk for step in run.steps.all()}
    assert dispatched == [steps["f0"], steps["f1"]]
    assert held(run) == ["f2", "f3", "f4"]
    shown = {step["node"]: step for step in api.get(f"/api/runs/{run.pk}/").json()["steps"]}
    assert {node_id: step["state"] for node_id, step in shown.items()} == dict.fromkeys(steps, "queued")
    assert [node_id for node_id, step in shown.items() if step["dispatched_at"] is None] == ["f2", "f3", "f4"]
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=steps["f0"], local_steps=1) is True
    assert dispatched[2:] == [steps["f2"]]  # the oldest held step took the freed place
    assert held(run) == ["f3", "f4"]
    # A held step is neither claimed by a stray message nor re-dispatched as lost.
    assert step_execute(step_id=steps["f4"]) is False
    StepRun.objects.filter(run=run).update(queued_at=timezone.now() - timedelta(hours=1))
    dispatched.clear()
    steps_requeue_lost(older_than=timedelta(minutes=5))
    assert steps["f3"] not in dispatched and steps["f4"] not in dispatched


def test_a_worker_goes_on_with_its_runs_held_steps_without_the_broker(
    user, catalog, settings, dispatched, django_capture_on_commit_callbacks
):
    settings.ILIAD_FAIR_STEPS_PER_USER = 2
    run = submit(user, fanout_document(5), django_capture_on_commit_callbacks)
    steps = {step.node_id: step.pk for step in run.steps.all()}
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=steps["f0"], worker="w1@host") is True
    states = dict(run.steps.values_list("node_id", "state"))
    assert states == {"f0": "succeeded", "f1": "queued", **{f"f{index}": "succeeded" for index in (2, 3, 4)}}
    assert dispatched == [steps["f0"], steps["f1"]]  # f1 is still at the broker, as it was
    assert set(run.steps.exclude(node_id="f1").values_list("worker", flat=True)) == {"w1@host"}


def test_cancelling_a_run_gives_its_places_to_the_users_held_steps(
    user, catalog, settings, dispatched, django_capture_on_commit_callbacks
):
    settings.ILIAD_FAIR_STEPS_PER_USER = 2
    first = submit(user, fanout_document(2), django_capture_on_commit_callbacks)
    second = submit(user, fanout_document(2), django_capture_on_commit_callbacks)
    assert held(second) == ["f0", "f1"]
    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(run=first)
    assert held(second) == [] and sorted(dispatched[2:]) == sorted(second.steps.values_list("id", flat=True))


def test_the_periodic_job_dispatches_held_steps_in_turns_across_users(
    user, other_user, catalog, settings, dispatched, django_capture_on_commit_callbacks
):
    settings.ILIAD_FAIR_STEPS_PER_USER = 1
    alice_run = submit(user, fanout_document(4), django_capture_on_commit_callbacks)
    bob_run = submit(other_user, fanout_document(3), django_capture_on_commit_callbacks)
    assert steps_dispatch_held() == 0  # everyone is at their cap
    settings.ILIAD_FAIR_STEPS_PER_USER = 3
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert steps_dispatch_held() == 4
    owners = [StepRun.objects.get(pk=step_id).run.owner_id for step_id in dispatched]
    assert owners == [user.pk, other_user.pk, user.pk, other_user.pk]
    assert held(alice_run) == ["f3"] and held(bob_run) == []


def test_a_worker_does_not_go_on_with_a_users_chain_while_another_users_step_waits(
    user, other_user, catalog, settings, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(orchestration, "FAIR_CHECK_INTERVAL_S", 0)
    alice_run = submit(user, chain_document(3), django_capture_on_commit_callbacks)
    submit(other_user, chain_document(1), django_capture_on_commit_callbacks)  # waits at the broker
    first = alice_run.steps.get(node_id="s0").pk
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=first, worker="w1@host") is True
    states = dict(alice_run.steps.values_list("node_id", "state"))
    assert states == {"s0": "succeeded", "s1": "queued", "s2": "pending"}
    assert dispatched[-1] == alice_run.steps.get(node_id="s1").pk  # through the broker, behind bob's


# --- fair sharing on a real worker ----------------------------------------------------------------


@pytest.mark.e2e
def test_one_users_backlog_does_not_starve_another_users_run(worker, api, bob_api, settings, tmp_path):
    """20 one-second runs of alice, then one of bob's, on 2 worker processes: bob's step starts once
    the few of alice's steps already at the broker (her fair share) have, long before her backlog
    (on a FIFO queue it would wait for all 20, ~10 s)."""
    settings.ILIAD_LIMIT_ACTIVE_RUNS = 0
    sleep = document([node("sleep", "testing.count_calls", marker=str(tmp_path / "alice"), sleep_s=1.0)], [])
    alice_pipeline = make_pipeline(api, sleep)
    alice_runs = [post_run(api, alice_pipeline).json()["id"] for _ in range(20)]
    bob_doc = document([node("quick", "testing.count_calls", marker=str(tmp_path / "bob"))], [])
    bob_run = post_run(bob_api, make_pipeline(bob_api, bob_doc)).json()["id"]
    try:
        wait_for_run(bob_run, timeout=30, expect="succeeded")
        unfinished = Run.objects.filter(pk__in=alice_runs, finished_at__isnull=True).count()
        assert unfinished >= 10, f"bob's run finished after {20 - unfinished} of alice's 20"
        bob_step = StepRun.objects.get(run_id=bob_run)
        # Load-independent: of alice's steps, only those already at the broker went before bob's.
        cut_in = StepRun.objects.filter(
            run_id__in=alice_runs, started_at__gt=bob_step.queued_at, started_at__lt=bob_step.started_at
        ).count()
        assert cut_in <= settings.ILIAD_FAIR_STEPS_PER_USER
    finally:
        for run in Run.objects.filter(pk__in=alice_runs, finished_at__isnull=True):
            try:
                run_cancel(run=run)
            except RunRejected:  # finished meanwhile
                pass
        wait_for_idle_worker()
