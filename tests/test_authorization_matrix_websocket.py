"""The authorization matrix of the run-events WebSocket (see tests/test_authorization_matrix.py): the
browser's session is its only credential, so it admits exactly the signed-in users who may see the run
and no token."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client

from apps.accounts.services import api_token_create
from tests.support.access import build_access_world
from tests.test_authorization_matrix import PRINCIPALS, SESSION_ROLES, TOKENS

#: Close codes of the consumer: the browser's session is its only credential.
WEBSOCKET = {
    "owner": "accepted",
    "editor": "accepted",
    "viewer": "accepted",
    "other": 4404,
    "anonymous": 4401,
    **{token: 4401 for token in TOKENS},
}


@pytest.mark.django_db(transaction=True)
def test_the_run_events_websocket_admits_exactly_who_may_see_the_run(catalog):
    from channels.testing import WebsocketCommunicator

    from iliad_portal.asgi import application

    world = build_access_world()
    owner = world.users["owner"]
    read_key = api_token_create(user=owner, scope="read")[1]
    url = f"/ws/runs/{world.runs['run'].pk}/"
    headers = {}
    for principal in PRINCIPALS:
        headers[principal] = [(b"origin", b"http://127.0.0.1")]
        if principal in SESSION_ROLES:
            client = Client()  # one each: signing another user in on the same client ends the session
            client.force_login(world.users[principal])
            headers[principal].append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
        elif principal in TOKENS:
            headers[principal].append((b"authorization", f"Token {read_key}".encode()))

    async def scenario() -> dict:
        answers = {}
        for principal in PRINCIPALS:
            communicator = WebsocketCommunicator(application, url, headers=headers[principal])
            connected, code = await communicator.connect()
            answers[principal] = "accepted" if connected else code
            if connected:
                await communicator.disconnect()
        return answers

    with ThreadPoolExecutor(max_workers=1) as pool:  # a fresh event loop, as in tests/test_live_events.py
        assert pool.submit(asyncio.run, scenario()).result() == WEBSOCKET
