"""Live run events reach every listener exactly once and in order: batches pushed by several worker
processes arrive out of order and with holes, the consumer fills holes from the database; the run's
own "running" state is an event; a block's progress is written without waiting for its next event."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from apps.runs.consumers import batch_plan
from apps.runs.events import StepEventSink, events_append
from apps.runs.models import Run, RunEvent, StepRun
from tests.conftest import REPO_ROOT, _database_url_for_worker
from tests.test_live_events import run_async


def events(*seqs: int) -> list[dict]:
    return [{"seq": seq, "kind": "log", "message": f"event {seq}"} for seq in seqs]


# --- which events of a pushed batch to send --------------------------------------------------------


@pytest.mark.parametrize(
    ("last_seq", "batch", "sent", "replay"),
    [
        (40, [41, 42, 43, 44, 47, 48, 49], [41, 42, 43, 44], True),  # a hole: send up to it, then replay
        (44, [45, 46], [45, 46], False),
        (49, [45, 46], [], False),  # stragglers after a replay: not sent again
        (40, [43, 41, 42], [41, 42, 43], False),  # out of order within the batch
        (40, [41, 41, 42, 40, 39], [41, 42], False),  # duplicates and old events
        (40, [42, 43], [], True),  # the first one missing
        (40, [], [], False),
        (0, [1], [1], False),
    ],
)
def test_batch_plan_cases(last_seq, batch, sent, replay):
    assert batch_plan(last_seq, events(*batch)) == (events(*sent), replay)


@given(last_seq=st.integers(0, 20), seqs=st.lists(st.integers(1, 40), max_size=30))
def test_batch_plan_sends_the_consecutive_run_and_replays_exactly_when_something_newer_is_left(
    last_seq, seqs
):
    sent, replay = batch_plan(last_seq, events(*seqs))
    sent_seqs = [event["seq"] for event in sent]
    assert sent_seqs == list(range(last_seq + 1, last_seq + 1 + len(sent_seqs)))
    assert set(sent_seqs) <= set(seqs)
    assert last_seq + len(sent_seqs) + 1 not in seqs  # nothing sendable held back
    assert replay == any(seq > last_seq + len(sent_seqs) for seq in seqs)


@st.composite
def pushed_batches(draw):
    """A run's events 1..N committed in order by several processes, each pushing its own events in
    batches of its own; the batches reach a listener in any order, some not at all (dropped), but
    each only after its events were committed (so everything before them is in the database)."""
    total = draw(st.integers(1, 40))
    writers = draw(st.integers(1, 3))
    owner = [draw(st.integers(0, writers - 1)) for _ in range(total)]
    batches = []
    for writer in range(writers):
        mine = [seq for seq in range(1, total + 1) if owner[seq - 1] == writer]
        while mine:
            size = draw(st.integers(1, len(mine)))
            batches.append(mine[:size])
            mine = mine[size:]
    order = draw(st.permutations(batches))
    dropped = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    # The batch holding the last event is delivered (the run's final push); the others may be lost.
    delivered = [batch for batch, lost in zip(order, dropped, strict=True) if not lost or total in batch]
    return total, delivered


@given(pushed_batches(), st.integers(0, 5))
def test_a_listener_following_the_plan_ends_with_the_whole_log_once_and_in_order(scenario, after):
    total, delivered = scenario
    received: list[int] = []
    last_seq = min(after, total)
    committed = 0  # the database has every event up to the newest one pushed so far
    for batch in delivered:
        committed = max(committed, *batch)
        sent, replay = batch_plan(last_seq, events(*batch))
        received += [event["seq"] for event in sent]
        last_seq += len(sent)
        if replay:
            received += list(range(last_seq + 1, committed + 1))
            last_seq = committed
    assert received == list(range(min(after, total) + 1, total + 1))


@pytest.mark.django_db(transaction=True)
def test_a_batch_with_a_hole_then_the_missing_events_gives_every_event_once_in_order(
    user, client, monkeypatch
):
    """The delivery seen with two workers: ``[41-44, 47-49]`` arrives before ``[45, 46]``. Sent through
    the real channel layer to a real consumer, as the two workers' pushes would be."""
    from channels.layers import get_channel_layer

    from apps.runs import events as run_events_module
    from apps.runs.events import run_group
    from iliad_portal.asgi import application
    from tests.test_live_events import session_headers

    run, _ = queued_run(user, 0)
    pushed: list[list[dict]] = []
    monkeypatch.setattr(run_events_module, "_push", lambda run_id, batch: pushed.append(batch))
    with transaction.atomic():
        events_append(run_id=run.pk, events=[("log", "n", {"message": f"line {i}"}) for i in range(1, 41)])
    headers = session_headers(client, user)

    def commit_41_to_49() -> dict[int, dict]:
        for seq in range(41, 50):  # one commit each, as the workers made them
            with transaction.atomic():
                events_append(run_id=run.pk, events=[("log", "n", {"message": f"line {seq}"})])
        return {batch[0]["seq"]: batch[0] for batch in pushed[1:]}

    async def scenario():
        from channels.testing import WebsocketCommunicator

        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?after=40", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        assert await communicator.receive_nothing(timeout=0.2)
        late = await sync_to_async(commit_41_to_49)()
        layer = get_channel_layer()
        first = [late[seq] for seq in (41, 42, 43, 44, 47, 48, 49)]
        await layer.group_send(run_group(run.pk), {"type": "run.events", "events": first})
        await layer.group_send(run_group(run.pk), {"type": "run.events", "events": [late[45], late[46]]})
        got = [(await communicator.receive_json_from(timeout=5))["seq"] for _ in range(9)]
        assert got == list(range(41, 50))
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    run_async(scenario)


# --- the run's "running" state is an event ----------------------------------------------------------


def queued_run(owner, steps: int) -> tuple[Run, list[StepRun]]:
    run = Run.objects.create(
        owner=owner, pipeline_version=1, pipeline_name="p", state="queued",
        snapshot={"document": {"nodes": [], "edges": []}, "blocks": {}},
    )  # fmt: skip
    now = timezone.now()
    made = [
        StepRun.objects.create(
            run=run,
            node_id=f"n{i}",
            block_id="utility.noop",
            block_version="1.0.0",
            walltime_s=60,
            state="queued",
            queued_at=now,
            dispatched_at=now,
        )  # fmt: skip
        for i in range(steps)
    ]
    return run, made


@pytest.mark.django_db(transaction=True)
def test_the_first_claim_moves_the_run_to_running_with_an_event_once(user):
    from apps.runs.agent import _claim

    run, (first, second) = queued_run(user, 2)
    _claim(first.pk, "worker-1")
    _claim(second.pk, "worker-2")
    log = [(event.kind, event.node_id, event.payload.get("state")) for event in run.events.order_by("seq")]
    assert log == [("state", "", "running"), ("state", "n0", "running"), ("state", "n1", "running")]
    run.refresh_from_db()
    assert (run.state, run.last_event_seq) == ("running", 3)


# --- a block's events are written without waiting for its next one ----------------------------------


def written(run: Run) -> list[tuple[str, str]]:
    return [
        (event.kind, event.payload.get("message"))
        for event in RunEvent.objects.filter(run=run).order_by("seq")
    ]


@pytest.mark.django_db(transaction=True)
def test_progress_is_written_within_half_a_second_even_when_the_block_then_stays_silent(user):
    run, _ = queued_run(user, 1)
    sink = StepEventSink(run_id=run.pk, node_id="n0")
    reported = time.monotonic()
    sink({"kind": "progress", "fraction": 0.1, "message": "10 %"})
    while not written(run) and time.monotonic() - reported < 3:
        time.sleep(0.02)
    delay = time.monotonic() - reported
    assert written(run) == [("progress", "10 %")]
    assert delay <= 0.7, f"the progress report took {delay:.2f} s to be written"
    assert sink.drain() == []


@pytest.mark.django_db(transaction=True)
def test_chatty_progress_costs_a_write_per_interval_not_per_report(user):
    run, _ = queued_run(user, 1)
    sink = StepEventSink(run_id=run.pk, node_id="n0")
    started = time.monotonic()
    reports = 0
    while time.monotonic() - started < 1.2:
        sink({"kind": "progress", "fraction": reports / 1000, "message": f"report {reports}"})
        reports += 1
        time.sleep(0.002)
    sink({"kind": "log", "message": "last line"})
    pending = sink.drain()
    writes = len(written(run))
    assert reports > 100
    assert 1 <= writes <= 4, f"{writes} progress events written for {reports} reports in 1.2 s"
    assert pending[-1] == ("log", "n0", {"level": "info", "message": "last line"})
    time.sleep(0.7)  # drained: nothing is written behind the step's back any more
    assert len(written(run)) == writes


@pytest.mark.django_db(transaction=True)
def test_a_step_that_ends_quickly_writes_its_events_only_with_its_end(user):
    """The hot path: a block that reports and ends within the interval costs no extra write."""
    run, _ = queued_run(user, 1)
    sink = StepEventSink(run_id=run.pk, node_id="n0")
    sink({"kind": "progress", "fraction": 1.0, "message": "done"})
    assert sink.drain() == [("progress", "n0", {"fraction": 1.0, "message": "done"})]
    time.sleep(0.7)
    assert written(run) == []


# --- under load: many listeners, two worker processes, reconnects -----------------------------------

LISTENERS = 50
RECONNECTING = 10  # of them drop their connection after RECONNECT_AFTER events and resume after it
RECONNECT_AFTER = 100
WRITING_S = 1.0


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_every_listener_gets_exactly_the_event_log_from_two_worker_processes(user, client, api):
    """Two processes append to one run at once until the same moment, as two workers do, each pushing
    its own batches: 50 real WebSocket clients on the real ASGI server (10 of them reconnecting on
    the way) must each end with exactly the REST event log."""
    import websockets

    from tests.support.asgi_server import AsgiServer

    run, _ = queued_run(user, 0)
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    server = AsgiServer(_database_url_for_worker()).start()
    received: list[list[int]] = [[] for _ in range(LISTENERS)]
    final: list[int] = []  # the run's last seq, once the writers are done

    def done(seqs: list[int]) -> bool:
        return bool(final and seqs and seqs[-1] >= final[0])

    async def listen(index: int, connected: asyncio.Event) -> None:
        seqs = received[index]
        reconnect = index < RECONNECTING
        while not done(seqs):
            url = f"ws://127.0.0.1:{server.port}/ws/runs/{run.pk}/?after={seqs[-1] if seqs else 0}"
            async with websockets.connect(
                url, origin=server.url, additional_headers={"Cookie": cookie}, proxy=None, open_timeout=20
            ) as socket:
                connected.set()
                while not done(seqs):
                    try:
                        seqs.append(json.loads(await asyncio.wait_for(socket.recv(), 0.5))["seq"])
                    except TimeoutError:
                        if final and time.monotonic() > final[1]:
                            return  # given up: the assertion below tells what is missing
                        continue
                    if reconnect and len(seqs) >= RECONNECT_AFTER:
                        reconnect = False
                        break
                else:  # everything arrived: anything more would be a duplicate
                    try:
                        seqs.append(json.loads(await asyncio.wait_for(socket.recv(), 0.5))["seq"])
                    except TimeoutError:
                        pass

    async def scenario() -> None:
        ready = [asyncio.Event() for _ in range(LISTENERS)]
        listeners = [asyncio.ensure_future(listen(i, ready[i])) for i in range(LISTENERS)]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 30)
        start_at = time.time() + 2.0  # both writers are set up by then and start together
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.support.event_writer",
                str(run.pk),
                str(seed),
                str(start_at),
                str(start_at + WRITING_S),
                cwd=REPO_ROOT,
                env={**os.environ, "DATABASE_URL": _database_url_for_worker()},
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for seed in (1, 2)
        ]
        for writer in writers:
            _, errors = await asyncio.wait_for(writer.communicate(), 60)
            assert writer.returncode == 0, errors.decode()
        last_seq = await sync_to_async(lambda: Run.objects.get(pk=run.pk).last_event_seq)()
        final.extend([last_seq, time.monotonic() + 10])
        await asyncio.wait_for(asyncio.gather(*listeners), 30)

    try:
        run_async(scenario)
    finally:
        server.stop()
    log: list[dict] = []
    while page := api.get(f"/api/runs/{run.pk}/events/?after={len(log)}&limit=1000").json()["events"]:
        log += page
    expected = [event["seq"] for event in log]
    assert expected == list(range(1, final[0] + 1))
    assert len(expected) > 2 * RECONNECT_AFTER
    writers = [event["node"] for event in log]
    switches = sum(1 for before, after in zip(writers, writers[1:], strict=False) if before != after)
    assert switches >= 20, f"the two writers hardly overlapped ({switches} switches): the test proves nothing"
    wrong = {index: seqs for index, seqs in enumerate(received) if seqs != expected}
    summary = {
        index: f"{len(seqs)} events, missing {sorted(set(expected) - set(seqs))[:10]}, "
        f"duplicates {len(seqs) - len(set(seqs))}, in order {seqs == sorted(seqs)}"
        for index, seqs in wrong.items()
    }
    assert not wrong, f"{len(wrong)} of {LISTENERS} listeners got another log: {summary}"
