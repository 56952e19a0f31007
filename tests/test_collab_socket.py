"""The shared document's WebSocket (``/ws/collab/pipelines/<id>``) against the real ASGI server:
scripted Yjs clients (pycrdt) over real sockets. Who may connect, what a viewer's update does, that
each update reaches the others and is stored, and that the document survives a server restart."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client
from pycrdt import Doc, Map, YMessageType, create_sync_message, create_update_message
from pycrdt import handle_sync_message as apply_sync

from apps.collab.consumers import awareness_clients, awareness_gone
from apps.collab.models import DocumentUpdate
from apps.collab.services import shared_document_load
from apps.collab.ydoc import document_of, seed_update
from apps.pipelines.services import pipeline_create, pipeline_update
from apps.projects.services import membership_add, project_create
from tests.conftest import _database_url_for_worker, document, edge, node
from tests.support.asgi_server import AsgiServer


def start_document() -> dict:
    demo = node("demo", "ocean.demo_dataset", days=5, resolution=1.0)
    demo["position"] = {"x": 40, "y": 60}
    mean = node("mean", "ocean.area_mean", variable="sst")
    mean["position"] = {"x": 420, "y": 60}
    return document([demo, mean], [edge("demo", "dataset", "mean", "dataset")])


@pytest.fixture
def room(transactional_db, catalog, django_user_model):
    """A project pipeline of ``owner`` with an ``editor`` and a ``viewer``; ``stranger`` is in no project.
    Yields (server, pipeline, session cookie per user name)."""
    users = {name: django_user_model.objects.create_user(username=name) for name in
             ("owner", "editor", "viewer", "stranger")}  # fmt: skip
    project = project_create(user=users["owner"], slug="team", name="Team")
    membership_add(project=project, by=users["owner"], username="editor", role="editor")
    membership_add(project=project, by=users["owner"], username="viewer", role="viewer")
    pipeline = pipeline_create(
        owner=users["owner"], name="SST", document=start_document(), project=project, visibility="project"
    )
    sessions = {}
    for name, user in users.items():
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies["sessionid"].value
    server = AsgiServer(_database_url_for_worker()).start()
    yield server, pipeline, sessions
    server.stop()


class YClient:
    """A scripted Yjs peer: a pycrdt Doc synced over the socket the way y-websocket does it."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.doc = Doc()

    @classmethod
    async def connect(cls, server, pipeline_id: int, session: str | None) -> YClient:
        headers = {"Origin": server.url}
        if session:
            headers["Cookie"] = f"sessionid={session}"
        url = server.url.replace("http", "ws") + f"/ws/collab/pipelines/{pipeline_id}"
        peer = cls(await websockets.connect(url, additional_headers=headers))
        await peer.socket.send(create_sync_message(peer.doc))
        return peer

    async def pump(self, seconds: float = 0.5) -> list[bytes]:
        """Receive for ``seconds``: answer sync requests, apply updates; returns what arrived."""
        received = []
        try:
            while True:
                message = await asyncio.wait_for(self.socket.recv(), seconds)
                received.append(message)
                if message[0] == YMessageType.SYNC:
                    reply = apply_sync(message[1:], self.doc)
                    if reply is not None:
                        await self.socket.send(reply)
        except TimeoutError:
            return received

    async def change(self, edit) -> None:
        """Apply ``edit(doc)`` locally and send the update, like a browser."""
        updates = []
        subscription = self.doc.observe(lambda event: updates.append(event.update))
        edit(self.doc)
        self.doc.unobserve(subscription)
        for update in updates:
            await self.socket.send(create_update_message(update))


def set_param(node_id: str, name: str, value_text: str):
    def edit(doc: Doc) -> None:
        doc.get("nodes", type=Map)[node_id]["params"][name] = value_text

    return edit


def params_of(doc: Doc) -> dict:
    return {item["id"]: item["params"] for item in document_of(doc)["nodes"]}


def run(coroutine):
    """Run ``coroutine`` on an event loop of its own thread: Playwright's sync API, when loaded in the
    same session, keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


@pytest.mark.e2e
def test_edits_reach_the_others_are_stored_and_survive_a_restart(room):
    server, pipeline, sessions = room

    async def scenario():
        owner = await YClient.connect(server, pipeline.pk, sessions["owner"])
        editor = await YClient.connect(server, pipeline.pk, sessions["editor"])
        await owner.pump()
        await editor.pump()
        assert document_of(owner.doc) == start_document()  # seeded from the latest version

        await owner.change(set_param("demo", "days", "9"))
        await editor.change(set_param("mean", "variable", '"sss"'))
        await owner.pump()
        await editor.pump()
        for peer in (owner, editor):
            assert params_of(peer.doc)["demo"]["days"] == 9
            assert params_of(peer.doc)["mean"]["variable"] == "sss"
        await owner.socket.close()
        await editor.socket.close()

    run(scenario())
    server.kill()
    server.start()

    async def after_restart():
        late = await YClient.connect(server, pipeline.pk, sessions["editor"])
        await late.pump()
        await late.socket.close()
        return late.doc

    doc = run(after_restart())
    assert params_of(doc)["demo"]["days"] == 9 and params_of(doc)["mean"]["variable"] == "sss"
    stored = shared_document_load(pipeline_id=pipeline.pk)
    assert params_of(stored)["demo"]["days"] == 9


@pytest.mark.e2e
def test_a_version_saved_through_the_api_lands_in_the_live_document_next_to_live_edits(room):
    server, pipeline, sessions = room
    owner_user = pipeline.owner

    async def scenario():
        editor = await YClient.connect(server, pipeline.pk, sessions["editor"])
        await editor.pump()
        await editor.change(set_param("mean", "variable", '"sss"'))  # live, unsaved
        await editor.pump()
        saved = start_document()
        saved["nodes"][0]["params"]["days"] = 7
        await sync_to_async(pipeline_update)(
            pipeline=pipeline, user=owner_user, document=saved, base_version=1
        )
        await editor.pump()
        await editor.socket.close()
        return params_of(editor.doc)

    params = run(scenario())
    assert params["demo"]["days"] == 7 and params["mean"]["variable"] == "sss"
    stored = params_of(shared_document_load(pipeline_id=pipeline.pk))
    assert stored["demo"]["days"] == 7 and stored["mean"]["variable"] == "sss"


@pytest.mark.e2e
def test_a_viewer_receives_the_document_but_their_updates_are_dropped(room):
    server, pipeline, sessions = room

    async def scenario():
        viewer = await YClient.connect(server, pipeline.pk, sessions["viewer"])
        owner = await YClient.connect(server, pipeline.pk, sessions["owner"])
        await viewer.pump()
        await owner.pump()
        assert params_of(viewer.doc)["demo"]["days"] == 5
        count = sync_to_async(DocumentUpdate.objects.filter(pipeline=pipeline).count)
        stored = await count()
        await viewer.change(set_param("demo", "days", "99"))
        await owner.pump()
        assert params_of(owner.doc)["demo"]["days"] == 5
        assert await count() == stored
        await owner.change(set_param("demo", "days", "6"))
        await viewer.pump()
        assert params_of(viewer.doc)["demo"]["days"] in (6, 99)  # theirs stays local; the owner's arrives
        await viewer.socket.close()
        await owner.socket.close()

    run(scenario())


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
@pytest.mark.e2e
def test_someone_who_may_not_see_the_pipeline_is_refused(room, who):
    server, pipeline, sessions = room

    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await YClient.connect(server, pipeline.pk, sessions.get(who))
        return refused.value.response.status_code

    assert run(scenario()) == 403
    assert not DocumentUpdate.objects.filter(pipeline=pipeline).exists()  # not even loaded for them


def test_seeding_is_byte_identical_so_concurrent_seeds_merge(db):
    assert seed_update(start_document()) == seed_update(start_document())
    doc = Doc()
    doc.apply_update(seed_update(start_document()))
    doc.apply_update(seed_update(start_document()))
    assert document_of(doc) == start_document()


def test_awareness_of_a_closed_connection_is_removed():
    # one client (id 200, two bytes as a var uint), clock 5, a 7-byte state
    message = bytes([YMessageType.AWARENESS, 12, 1, 200, 1, 5, 7]) + b'{"a":1}'
    assert awareness_clients(message) == {200: 5}
    gone = awareness_gone({200: 5})
    assert awareness_clients(gone) == {200: 6}
    assert gone.endswith(b"null")


async def _comment_feed(server, pipeline_id: int, session: str | None):
    headers = {"Origin": server.url}
    if session:
        headers["Cookie"] = f"sessionid={session}"
    url = server.url.replace("http", "ws") + f"/ws/collab/pipelines/{pipeline_id}/comments"
    return await websockets.connect(url, additional_headers=headers)


@pytest.mark.e2e
def test_comments_are_pushed_live_to_everyone_who_sees_the_pipeline(room):
    server, pipeline, sessions = room
    from apps.collab.comments import comment_create, comment_update

    editor_user = pipeline.project.memberships.get(user__username="editor").user

    async def scenario():
        viewer = await _comment_feed(server, pipeline.pk, sessions["viewer"])
        owner = await _comment_feed(server, pipeline.pk, sessions["owner"])
        await asyncio.sleep(0.2)
        comment = await sync_to_async(comment_create)(
            pipeline=pipeline, author=editor_user, body="Units of @viewer's input?", node_id="demo"
        )
        received = [json.loads(await asyncio.wait_for(feed.recv(), 2)) for feed in (viewer, owner)]
        assert received == [{"type": "comment.changed", "comment": comment.pk}] * 2
        await sync_to_async(comment_update)(comment=comment, user=editor_user, resolved=True)
        for feed in (viewer, owner):
            assert json.loads(await asyncio.wait_for(feed.recv(), 2))["comment"] == comment.pk
        await viewer.send(json.dumps({"type": "comment.changed", "comment": 1}))  # ignored: read-only
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(owner.recv(), 0.5)
        await viewer.close()
        await owner.close()

    run(scenario())


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
@pytest.mark.e2e
def test_the_comment_feed_refuses_who_may_not_see_the_pipeline(room, who):
    server, pipeline, sessions = room

    async def scenario():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await _comment_feed(server, pipeline.pk, sessions.get(who))
        return refused.value.response.status_code

    assert run(scenario()) == 403
