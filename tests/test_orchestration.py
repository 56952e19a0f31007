"""The run state machine, in-process: steps are executed here instead of by a worker, one at a time,
so each transition can be checked exactly. (The same paths run on real workers in test_e2e_runs.)"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog.models import BlockVersion
from apps.pipelines.services import PipelineInvalid, pipeline_create
from apps.runs import agent, orchestration
from apps.runs.agent import step_execute
from apps.runs.models import Artifact, RunEvent, StepRun
from apps.runs.orchestration import RunRejected, run_cancel, run_submit, step_finish
from apps.runs.reconciler import step_fail_overdue, step_recover, steps_recover_stalled, steps_requeue_lost
from blocks.manifest import ResultManifest
from tests.conftest import document, edge, node


@pytest.fixture(autouse=True)
def writes_from_the_test_thread_only(settings, monkeypatch):
    """These tests run blocks inside the test's transaction: a heartbeat or a delayed event write
    from a thread of its own (its own connection) would wait for that transaction's SQLite lock.
    Both are tested end to end (tests/test_fast_recovery.py, tests/test_live_events*.py)."""
    settings.ILIAD_HEARTBEAT_S = 60
    monkeypatch.setattr(agent, "EVENT_FLUSH_S", 3600)


@pytest.fixture
def dispatched(monkeypatch):
    """Records the step ids handed to the broker instead of sending them (no worker here)."""
    sent: list[int] = []
    monkeypatch.setattr(orchestration, "dispatch_steps", lambda step_ids, target: sent.extend(step_ids))
    return sent


def execute_one(*, step_id: int) -> bool:
    """One step, no going on with the next: each transition can be checked on its own."""
    return step_execute(step_id=step_id, local_steps=1)


def diamond(user):
    doc = document(
        [
            node("a", "utility.noop"),
            node("b", "utility.noop"),
            node("c", "utility.noop"),
            node("d", "utility.noop"),
        ],
        [
            edge("a", "result", "b", "trigger"),
            edge("a", "result", "c", "trigger"),
            edge("b", "result", "d", "trigger"),
        ],
    )
    doc["nodes"].append(node("e", "utility.noop"))
    doc["edges"].append(edge("c", "result", "e", "trigger"))
    return pipeline_create(owner=user, name="diamond-ish", document=doc)


def states(run) -> dict[str, str]:
    return dict(StepRun.objects.filter(run=run).values_list("node_id", "state"))


def step(run, node_id) -> StepRun:
    return StepRun.objects.get(run=run, node_id=node_id)


def submit(user, pipeline, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return run_submit(pipeline=pipeline, user=user)


def test_steps_are_dispatched_in_dependency_order(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    assert states(run) == {"a": "queued", "b": "pending", "c": "pending", "d": "pending", "e": "pending"}
    assert dispatched == [step(run, "a").pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert execute_one(step_id=step(run, "a").pk) is True
    assert states(run) == {"a": "succeeded", "b": "queued", "c": "queued", "d": "pending", "e": "pending"}
    assert sorted(dispatched[1:]) == sorted([step(run, "b").pk, step(run, "c").pk])


def test_a_second_delivery_of_a_step_does_nothing(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    a = step(run, "a").pk
    with django_capture_on_commit_callbacks(execute=True):
        assert execute_one(step_id=a) is True
        assert execute_one(step_id=a) is False
    assert step(run, "a").attempts == 1
    assert RunEvent.objects.filter(run=run, node_id="a", payload__state="succeeded").count() == 1
    assert dispatched.count(step(run, "b").pk) == 1


def test_a_step_with_two_parents_is_queued_once_after_both(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    doc = document(
        [
            node("left", "utility.noop"),
            node("right", "utility.noop"),
            node("join", "plot.timeseries"),
            node("mean", "ocean.area_mean", variable="sst"),
            node("demo", "ocean.demo_dataset", days=3, resolution=1.0),
        ],
        [edge("demo", "dataset", "mean", "dataset"), edge("mean", "table", "join", "table")],
    )
    run = submit(
        user, pipeline_create(owner=user, name="join", document=doc), django_capture_on_commit_callbacks
    )
    assert states(run)["join"] == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        execute_one(step_id=step(run, "demo").pk)
        assert states(run)["join"] == "pending"
        execute_one(step_id=step(run, "mean").pk)
    assert states(run)["join"] == "queued"
    assert dispatched.count(step(run, "join").pk) == 1


def test_the_run_finishes_when_the_last_step_does(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    for node_id in "abcde":
        with django_capture_on_commit_callbacks(execute=True):
            execute_one(step_id=step(run, node_id).pk)
    run.refresh_from_db()
    assert run.state == "succeeded" and run.finished_at is not None
    events = list(RunEvent.objects.filter(run=run).order_by("seq"))
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert run.last_event_seq == len(events)
    assert (events[0].payload["state"], events[-1].payload["state"]) == ("queued", "succeeded")


def test_cancel_cancels_waiting_steps_and_a_finished_run_cannot_be_cancelled(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    run = run_cancel(run=run)
    assert run.state == "cancelled" and run.finished_at is not None
    assert set(states(run).values()) == {"cancelled"}
    assert execute_one(step_id=step(run, "a").pk) is False  # its message arrives after the cancel
    with pytest.raises(RunRejected, match="already finished"):
        run_cancel(run=run)


def test_steps_queued_too_long_are_dispatched_again(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    a = step(run, "a")
    dispatched.clear()
    assert steps_requeue_lost(older_than=timedelta(minutes=5)) == 0
    StepRun.objects.filter(pk=a.pk).update(dispatched_at=timezone.now() - timedelta(minutes=10))
    assert steps_requeue_lost(older_than=timedelta(minutes=5)) == 1
    assert dispatched == [a.pk]
    assert steps_requeue_lost(older_than=timedelta(minutes=5)) == 0  # its clock was reset


def test_a_run_is_refused_when_a_block_version_is_no_longer_provided(user, catalog, dispatched):
    pipeline = diamond(user)
    BlockVersion.objects.filter(block_id="utility.noop").update(available=False)
    with pytest.raises(PipelineInvalid) as error:
        run_submit(pipeline=pipeline, user=user)
    assert {issue["code"] for issue in error.value.issues} == {"node.unknown_block"}


def test_a_run_freezes_the_document_and_block_specs(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    pipeline = diamond(user)
    run = submit(user, pipeline, django_capture_on_commit_callbacks)
    assert run.snapshot["document"] == pipeline.versions.get().document
    assert run.snapshot["blocks"]["utility.noop@1.0.0"]["outputs"][0]["name"] == "result"


def test_a_worker_goes_on_with_one_ready_step_and_dispatches_the_others(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=step(run, "a").pk) is True
    assert states(run) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "queued",
        "d": "succeeded",
        "e": "pending",
    }
    assert dispatched == [step(run, "c").pk]
    assert all(step(run, node_id).attempts == 1 for node_id in "abd")


def test_going_on_locally_stops_after_the_budget(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        step_execute(step_id=step(run, "a").pk, local_steps=2)
    assert states(run) == {"a": "succeeded", "b": "succeeded", "c": "queued", "d": "queued", "e": "pending"}
    assert sorted(dispatched) == sorted([step(run, "c").pk, step(run, "d").pk])


def test_the_step_a_worker_goes_on_with_is_claimed_when_the_previous_one_finishes(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    real_run_step = agent.run_step

    def die_in_the_second_step(manifest, **kwargs):
        if manifest.step_id == "second":
            raise WorkerKilled
        return real_run_step(manifest, **kwargs)

    monkeypatch.setattr(agent, "run_step", die_in_the_second_step)
    dispatched.clear()
    with pytest.raises(WorkerKilled):
        step_execute(step_id=step(run, "first").pk, worker="w1@host")
    # No queued moment the requeue job could race with: "second" was claimed for w1 by the commit
    # that finished "first", and is recovered like any step of a lost worker.
    assert states(run) == {"first": "succeeded", "second": "running", "third": "pending"}
    second = step(run, "second")
    assert (second.attempts, second.worker, dispatched) == (1, "w1@host", [])
    kinds = [(event.node_id, event.payload.get("state")) for event in RunEvent.objects.filter(run=run)
             .exclude(kind="log").exclude(kind="progress").order_by("seq")]
    assert kinds[-3:] == [("first", "succeeded"), ("second", "queued"), ("second", "running")]
    silence(second.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert recover() == 1
    assert dispatched == [second.pk]


def test_the_step_a_worker_goes_on_with_is_not_run_once_the_run_is_cancelled(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    real_claimed_step = agent._claimed_step
    ran: list[str] = []
    real_run_step = agent.run_step

    def cancel_first(step_id):  # the user cancels between the two steps
        if step_id == step(run, "second").pk:
            run_cancel(run=run)
        return real_claimed_step(step_id)

    def record(manifest, **kwargs):
        ran.append(manifest.step_id)
        return real_run_step(manifest, **kwargs)

    monkeypatch.setattr(agent, "_claimed_step", cancel_first)
    monkeypatch.setattr(agent, "run_step", record)
    with django_capture_on_commit_callbacks(execute=True):
        step_execute(step_id=step(run, "first").pk, worker="w1@host")
    assert ran == ["first"]
    assert states(run) == {"first": "succeeded", "second": "cancelled", "third": "cancelled"}
    run.refresh_from_db()
    assert run.state == "cancelled" and run.finished_at is not None


class WorkerKilled(BaseException):
    """Stands for a SIGKILL: nothing after it runs in the worker that got it."""


def kill_the_worker(manifest, **kwargs):
    raise WorkerKilled


def claim_and_lose_the_worker(monkeypatch, step_id: int) -> None:
    """Worker w1@host claims the step and starts its block, then dies: the step stays running."""
    with monkeypatch.context() as patch:
        patch.setattr(agent, "run_step", kill_the_worker)
        with pytest.raises(WorkerKilled):
            step_execute(step_id=step_id, worker="w1@host", local_steps=1)
    assert StepRun.objects.get(pk=step_id).state == "running"


def silence(step_id: int, seconds: float = 600):
    """Make the step's worker last heard from ``seconds`` ago; returns that heartbeat."""
    heartbeat = timezone.now() - timedelta(seconds=seconds)
    StepRun.objects.filter(pk=step_id).update(heartbeat_at=heartbeat)
    return heartbeat


STALLED_AFTER = timedelta(minutes=2)
WALLTIME_GRACE = timedelta(seconds=60)


def recover(max_attempts: int = 3) -> int:
    """What the periodic reconciler does: take back silent steps, fail overdue ones."""
    return steps_recover_stalled(
        stalled_after=STALLED_AFTER, max_attempts=max_attempts, walltime_grace=WALLTIME_GRACE
    )


def start_long_ago(step_id: int, seconds: float) -> None:
    """Make the step's current attempt have started ``seconds`` ago."""
    StepRun.objects.filter(pk=step_id).update(started_at=timezone.now() - timedelta(seconds=seconds))


def chain(user):
    doc = document(
        [node("first", "utility.noop"), node("second", "utility.noop"), node("third", "utility.noop")],
        [edge("first", "result", "second", "trigger"), edge("second", "result", "third", "trigger")],
    )
    return pipeline_create(owner=user, name="chain", document=doc)


def test_a_step_whose_worker_was_lost_runs_again_and_the_run_completes(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)
    assert recover() == 0  # not silent long enough
    silence(first)
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert recover() == 1
    assert dispatched == [first]
    assert states(run) == {"first": "queued", "second": "pending", "third": "pending"}
    warning, queued = RunEvent.objects.filter(run=run).order_by("-seq")[:2][::-1]
    assert warning.kind == "log" and warning.payload["level"] == "warning"
    assert warning.payload["message"] == (
        "worker w1@host lost (no heartbeat for 600 s); running the step again, attempt 2 of 3"
    )
    assert queued.payload == {"state": "queued", "reason": "worker w1@host lost (no heartbeat for 600 s)"}

    for node_id in ("first", "second", "third"):
        with django_capture_on_commit_callbacks(execute=True):
            assert execute_one(step_id=step(run, node_id).pk) is True
    run.refresh_from_db()
    assert run.state == "succeeded" and run.finished_at is not None
    assert [step(run, node_id).attempts for node_id in ("first", "second", "third")] == [2, 1, 1]
    retried = Artifact.objects.get(step_id=first)
    assert retried.uri.endswith(f"/runs/{run.pk}/first/attempt-2/result.json")
    seqs = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_step_whose_worker_sends_heartbeats_is_not_taken_back(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)
    stale = silence(first)
    StepRun.objects.filter(pk=first).update(heartbeat_at=timezone.now())  # the worker was only slow
    events = RunEvent.objects.filter(run=run).count()
    assert step_recover(step_id=first, last_heartbeat=stale, max_attempts=3) is False
    assert recover() == 0
    assert step(run, "first").state == "running" and step(run, "first").attempts == 1
    assert RunEvent.objects.filter(run=run).count() == events


def test_a_worker_taken_for_lost_cannot_record_its_late_result(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)
    first_claim = step(run, "first")
    silence(first)
    recover()
    claim_and_lose_the_worker(monkeypatch, first)  # the retry is running elsewhere
    late = ResultManifest(
        run_id=str(run.pk), step_id="first", block_id="utility.noop", block_version="1.0.0", ok=True
    )
    assert step_finish(step=first_claim, result=late) is None
    assert step(run, "first").state == "running" and step(run, "first").attempts == 2
    assert states(run)["second"] == "pending"


def test_a_step_lost_max_attempts_times_fails_the_run_and_its_downstream_is_skipped(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, diamond(user), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        execute_one(step_id=step(run, "a").pk)
        execute_one(step_id=step(run, "c").pk)
    b = step(run, "b").pk
    for _ in range(2):
        claim_and_lose_the_worker(monkeypatch, b)
        silence(b)
        with django_capture_on_commit_callbacks(execute=True):
            assert recover(max_attempts=2) == 1
    failed = step(run, "b")
    assert (failed.state, failed.attempts, failed.error["type"]) == ("failed", 2, "WorkerLost")
    assert failed.error["message"].startswith("worker lost 2 times (the last one, w1@host, sent no heartbeat")
    assert states(run) == {"a": "succeeded", "b": "failed", "c": "succeeded", "d": "skipped", "e": "queued"}
    with django_capture_on_commit_callbacks(execute=True):
        execute_one(step_id=step(run, "e").pk)  # the other branch finishes
    run.refresh_from_db()
    assert run.state == "failed" and run.finished_at is not None
    events = list(RunEvent.objects.filter(run=run, kind="state").order_by("seq"))
    failure = next(event for event in events if event.payload["state"] == "failed" and event.node_id == "b")
    assert failure.payload["error"]["type"] == "WorkerLost"
    assert any(e.node_id == "d" and e.payload == {"state": "skipped", "reason": "b failed"} for e in events)
    assert events[-1].node_id == "" and events[-1].payload["state"] == "failed"


def test_a_lost_step_of_a_cancelled_run_is_cancelled_and_the_run_closes(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)
    run = run_cancel(run=run)
    assert run.finished_at is None  # it waits for its running step
    silence(first)
    dispatched.clear()
    assert recover() == 1
    assert dispatched == []
    run.refresh_from_db()
    assert run.state == "cancelled" and run.finished_at is not None
    assert set(states(run).values()) == {"cancelled"}


@pytest.mark.django_db(transaction=True)
def test_a_running_step_sends_heartbeats_even_when_its_block_reports_nothing(
    user, catalog, dispatched, monkeypatch, settings
):
    settings.ILIAD_HEARTBEAT_S = 0.1
    real_run_step = agent.run_step

    def busy_without_reporting(manifest, **kwargs):
        time.sleep(0.6)
        return real_run_step(manifest, **kwargs)

    monkeypatch.setattr(agent, "run_step", busy_without_reporting)
    run = run_submit(pipeline=chain(user), user=user)
    assert execute_one(step_id=step(run, "first").pk) is True
    first = step(run, "first")
    assert first.state == "succeeded"
    assert first.heartbeat_at - first.started_at >= timedelta(seconds=0.4)


NOOP_OVERDUE_S = 3600 + 61
"""Started this long ago, a ``utility.noop`` step (walltime 3600 s) is past its walltime and grace."""


def test_a_block_reporting_progress_past_its_walltime_is_stopped_and_fails_the_run(
    user, catalog, dispatched, django_capture_on_commit_callbacks
):
    doc = document(
        [node("slow", "testing.overrun"), node("next", "utility.noop")],
        [edge("slow", "result", "next", "trigger")],
    )
    pipeline = pipeline_create(owner=user, name="overrun", document=doc)
    run = submit(user, pipeline, django_capture_on_commit_callbacks)
    slow = step(run, "slow")
    assert (slow.walltime_s, step(run, "next").walltime_s) == (1, 3600)  # frozen from the block specs
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        assert execute_one(step_id=slow.pk) is True
    assert time.monotonic() - started < 3  # it would report progress for 10 s
    slow.refresh_from_db()
    assert (slow.state, slow.attempts, slow.error["type"]) == ("failed", 1, "WalltimeExceeded")
    assert slow.error["message"] == (
        "step ran longer than the 1 s walltime of testing.overrun@1.0.0; it was stopped. "
        "Give it less work, e.g. a smaller area or a shorter period."
    )
    assert states(run) == {"slow": "failed", "next": "skipped"}
    run.refresh_from_db()
    assert run.state == "failed" and run.finished_at is not None
    assert dispatched == [slow.pk]  # its first dispatch only: it is not run again
    failure = RunEvent.objects.get(run=run, node_id="slow", kind="state", payload__state="failed")
    assert failure.payload["error"] == {"type": "WalltimeExceeded", "message": slow.error["message"]}
    assert RunEvent.objects.filter(
        run=run, node_id="slow", kind="log", payload__message__startswith="WalltimeExceeded: step ran longer"
    ).exists()


def test_a_hung_step_is_failed_past_its_walltime_and_its_late_result_is_discarded(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    real_run_step = agent.run_step
    seen: dict[str, object] = {}

    def hang_while_the_reconciler_runs(manifest, **kwargs):
        # The block hangs without reporting progress while its heartbeat thread keeps the step fresh;
        # the periodic reconciler runs meanwhile, an hour and a minute after the step started.
        start_long_ago(first, NOOP_OVERDUE_S)
        seen["failed"] = recover()
        seen["events"] = RunEvent.objects.filter(run=run).count()
        return real_run_step(manifest, **kwargs)  # then the block returns after all

    monkeypatch.setattr(agent, "run_step", hang_while_the_reconciler_runs)
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert step_execute(step_id=first, worker="w1@host") is True
    assert seen["failed"] == 1
    failed = step(run, "first")
    assert (failed.state, failed.attempts, failed.error["type"]) == ("failed", 1, "WalltimeExceeded")
    overran = (
        "step ran longer than the 3600 s walltime of utility.noop@1.0.0 and had not stopped after 3661 s"
    )
    assert failed.error["message"] == (
        f"{overran}; it was given up. Give it less work, e.g. a smaller area or a shorter period."
    )
    assert states(run) == {"first": "failed", "second": "skipped", "third": "skipped"}
    run.refresh_from_db()
    assert run.state == "failed" and run.finished_at is not None
    log = RunEvent.objects.get(run=run, node_id="first", kind="log")
    assert log.payload == {
        "level": "error",
        "message": f"{overran}; the worker w1@host stays busy until the block returns, and what it "
        "returns then is discarded",
    }
    # The late result recorded nothing: no artifact, no event, no step queued, no retry.
    assert not Artifact.objects.filter(run=run).exists()
    assert RunEvent.objects.filter(run=run).count() == seen["events"]
    assert dispatched == []
    assert recover() == 0


def test_a_step_within_its_walltime_and_grace_is_left_alone(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)  # stands for a worker busy in the block
    start_long_ago(first, 3600 + 50)  # past its walltime, within the grace
    events = RunEvent.objects.filter(run=run).count()
    assert recover() == 0
    assert step_fail_overdue(step_id=first, attempts=1, grace=WALLTIME_GRACE) is False
    assert step(run, "first").state == "running"
    assert RunEvent.objects.filter(run=run).count() == events


def test_a_silent_step_past_its_walltime_is_taken_back_as_lost_not_failed(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)
    start_long_ago(first, NOOP_OVERDUE_S)
    silence(first)  # its worker died: whether it would have overrun is unknown
    with django_capture_on_commit_callbacks(execute=True):
        assert recover() == 1
    assert step(run, "first").state == "queued" and step(run, "first").error is None


def test_an_overdue_step_of_a_cancelled_run_is_cancelled_and_the_run_closes(
    user, catalog, dispatched, monkeypatch, django_capture_on_commit_callbacks
):
    run = submit(user, chain(user), django_capture_on_commit_callbacks)
    first = step(run, "first").pk
    claim_and_lose_the_worker(monkeypatch, first)  # its block ignores the cancel: it never reports
    run = run_cancel(run=run)
    start_long_ago(first, NOOP_OVERDUE_S)
    assert recover() == 1
    run.refresh_from_db()
    assert run.state == "cancelled" and run.finished_at is not None
    assert set(states(run).values()) == {"cancelled"}
