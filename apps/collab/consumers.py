"""Live co-editing: ``/ws/collab/pipelines/<id>`` speaks the Yjs sync and awareness protocols
(y-websocket in the browser) for the pipeline's shared document.

Only people who may see the pipeline connect; those who may not change it (viewers) receive the
document and presence but their document updates are dropped. Every update is stored before it is
relayed, so a page that connects later, or after a server restart, loads it from the database.
Each connection keeps its own copy of the document, kept current with what the others relay, to
answer its browser's sync requests.
"""

from __future__ import annotations

import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from pycrdt import Doc, YMessageType, YSyncMessageType, create_sync_message, handle_sync_message
from pycrdt.websocket.django_channels_consumer import YjsConsumer

from apps.collab.comments import comments_group
from apps.collab.services import shared_document_append, shared_document_load
from apps.pipelines.selectors import pipeline_get
from apps.projects.access import can

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
QUERY_AWARENESS = bytes([3])
"""y-websocket's "send me your awareness states": asked of the others when someone joins."""


def collab_group(pipeline_id: int) -> str:
    return f"collab.pipeline.{pipeline_id}"


def _read_var_uint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, offset


def _write_var_uint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def awareness_clients(message: bytes) -> dict[int, int]:
    """{client id: clock} of an awareness message (type byte, length, count, then id, clock, state)."""
    _, offset = _read_var_uint(message, 1)
    count, offset = _read_var_uint(message, offset)
    clients = {}
    for _ in range(count):
        client, offset = _read_var_uint(message, offset)
        clock, offset = _read_var_uint(message, offset)
        length, offset = _read_var_uint(message, offset)
        offset += length
        clients[client] = clock
    return clients


def awareness_gone(clients: dict[int, int]) -> bytes:
    """The awareness message that removes these clients (state null, next clock)."""
    body = _write_var_uint(len(clients))
    for client, clock in clients.items():
        body += _write_var_uint(client) + _write_var_uint(clock + 1) + _write_var_uint(4) + b"null"
    return bytes([YMessageType.AWARENESS]) + _write_var_uint(len(body)) + body


class PipelineDocConsumer(YjsConsumer):
    """The Yjs room of one pipeline (room name = ``collab.pipeline.<id>``)."""

    def make_room_name(self) -> str:
        return collab_group(self.pipeline_id)

    async def make_ydoc(self) -> Doc:
        doc = await database_sync_to_async(shared_document_load)(pipeline_id=self.pipeline_id)
        doc.observe(self._on_update)
        return doc

    def _on_update(self, event) -> None:
        if not self._relaying:
            self._unsaved.append(event.update)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.pipeline_id = int(self.scope["url_route"]["kwargs"]["pipeline_id"])
        pipeline = await database_sync_to_async(pipeline_get)(user=user, pipeline_id=self.pipeline_id)
        if pipeline is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.can_edit = await database_sync_to_async(can)(user, "edit", pipeline)
        self._unsaved: list[bytes] = []
        self._relaying = False
        self._awareness: dict[int, int] = {}
        self.room_name = self.make_room_name()
        # Join before loading: whatever is stored after the load is also relayed to this connection.
        await self.channel_layer.group_add(self.room_name, self.channel_name)
        self.ydoc = await self.make_ydoc()
        await self.accept()
        await self.send(bytes_data=create_sync_message(self.ydoc))
        await self.group_send_message(QUERY_AWARENESS)

    async def disconnect(self, code) -> None:
        if self.room_name is None:
            return
        if self._awareness:
            await self.group_send_message(awareness_gone(self._awareness))
        await self.channel_layer.group_discard(self.room_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if not bytes_data:
            return
        kind = bytes_data[0]
        if kind == YMessageType.AWARENESS:
            try:
                self._awareness.update(awareness_clients(bytes_data))
            except IndexError:
                return
            await self.group_send_message(bytes_data)
            return
        if kind != YMessageType.SYNC or len(bytes_data) < 2:
            return
        if bytes_data[1] == YSyncMessageType.SYNC_STEP1:
            try:
                reply = handle_sync_message(bytes_data[1:], self.ydoc)
            except Exception:
                return
            if reply is not None:
                await self.send(bytes_data=reply)
            return
        if not self.can_edit:
            return  # a viewer's change stays in their browser
        try:
            handle_sync_message(bytes_data[1:], self.ydoc)
        except Exception:  # not a Yjs update: nothing to store or relay
            logger.info("dropped a malformed update for pipeline %s", self.pipeline_id, exc_info=True)
            self._unsaved = []
            return
        if self._unsaved:
            updates, self._unsaved = self._unsaved, []
            await database_sync_to_async(shared_document_append)(
                pipeline_id=self.pipeline_id, updates=updates
            )
        # Relayed as an update: a relayed sync reply would tell the others' providers they are in
        # sync with the server before its own reply arrived.
        update_header = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_UPDATE])
        await self.group_send_message(update_header + bytes_data[2:])

    async def group_send_message(self, message: bytes) -> None:
        """Send to the room's other connections (never back to this one)."""
        await self.channel_layer.group_send(
            self.room_name, {"type": "send_message", "message": message, "sender": self.channel_name}
        )

    async def send_message(self, message_wrapper) -> None:
        if message_wrapper.get("sender") == self.channel_name:
            return
        message = message_wrapper["message"]
        if len(message) > 1 and message[0] == YMessageType.SYNC and message[1] != YSyncMessageType.SYNC_STEP1:
            self._relaying = True  # stored by the connection that received it
            try:
                handle_sync_message(message[1:], self.ydoc)
            finally:
                self._relaying = False
        await self.send(bytes_data=message)


class CommentEventsConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/collab/pipelines/<id>/comments``: ``{"type": "comment.changed", "comment": <id>}`` each
    time a comment of the pipeline is added, edited, resolved or reopened (the editor then reloads
    the comments through the API, which checks who asks). Only who may see the pipeline connects;
    what clients send is ignored."""

    async def connect(self) -> None:
        self.group = None
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        pipeline_id = int(self.scope["url_route"]["kwargs"]["pipeline_id"])
        pipeline = await database_sync_to_async(pipeline_get)(user=user, pipeline_id=pipeline_id)
        if pipeline is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = comments_group(pipeline_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        return  # a read-only feed

    async def comment_changed(self, event) -> None:
        await self.send_json({"type": "comment.changed", "comment": event["comment"]})
