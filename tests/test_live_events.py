"""The run-events WebSocket: replay after a sequence number, live push, and who may listen."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from apps.runs.events import events_append
from apps.runs.models import Run
from iliad_portal.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def make_run(owner) -> Run:
    run = Run.objects.create(
        owner=owner, pipeline_version=1, pipeline_name="p", snapshot={"document": {}, "blocks": {}}
    )
    append(run, 3)
    return run


def append(run, count: int, start: int = 0) -> None:
    with transaction.atomic():
        events_append(
            run_id=run.pk,
            events=[("log", "n", {"level": "info", "message": f"line {start + i}"}) for i in range(count)],
        )


def run_async(scenario) -> None:
    """Run a coroutine on a fresh event loop in its own thread: Playwright's sync API (browser tests in
    the same session) leaves a running loop in the main thread, where async_to_sync refuses to work."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def session_headers(client, user) -> list[tuple[bytes, bytes]]:
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return [(b"origin", b"http://127.0.0.1"), (b"cookie", cookie.encode())]


def test_replay_after_a_sequence_number_then_live_push(user, client):
    run = make_run(user)
    headers = session_headers(client, user)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/?after=1", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        replay = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        assert [event["seq"] for event in replay] == [2, 3]
        await sync_to_async(append)(run, 2, start=3)
        pushed = [await communicator.receive_json_from(timeout=5) for _ in range(2)]
        assert [(event["seq"], event["message"]) for event in pushed] == [(4, "line 3"), (5, "line 4")]
        assert await communicator.receive_nothing(timeout=0.3)
        await communicator.disconnect()

    run_async(scenario)


def test_anonymous_and_other_users_are_refused(user, other_user, client):
    run = make_run(user)
    intruder_headers = session_headers(client, other_user)

    async def scenario():
        anonymous = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        connected, code = await anonymous.connect()
        assert (connected, code) == (False, 4401)
        intruder = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=intruder_headers)
        connected, code = await intruder.connect()
        assert (connected, code) == (False, 4404)

    run_async(scenario)
