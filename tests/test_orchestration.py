"""The run state machine, in-process: steps are executed here instead of by a worker, one at a time,
so each transition can be checked exactly. (The same paths run on real workers in test_e2e_runs.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog.models import BlockVersion
from apps.pipelines.services import PipelineInvalid, pipeline_create
from apps.runs import services
from apps.runs.models import RunEvent, StepRun
from apps.runs.services import RunRejected, run_cancel, run_submit, step_execute, steps_requeue_lost
from tests.conftest import document, edge, node


@pytest.fixture
def dispatched(monkeypatch):
    """Records the step ids handed to the broker instead of sending them (no worker here)."""
    sent: list[int] = []
    monkeypatch.setattr(services, "dispatch_steps", lambda step_ids, target: sent.extend(step_ids))
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
    StepRun.objects.filter(pk=a.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
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
