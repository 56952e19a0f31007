"""Live run events over WebSocket: ``/ws/runs/<id>/?after=<seq>``.

On connect the consumer joins the run's group first and then replays what the client missed from
the database, so nothing falls between replay and push; it forwards each event once, in order, and
fills any gap from the database.

Pushed batches come from every worker process independently, so they can arrive out of order and
with holes (``[41-44, 47-49]`` then ``[45, 46]``). Events of a run commit in sequence order, so once
event N has been pushed, every event before it is in the database: a gap is filled by a replay from
there, and what arrives late after it is already sent and is dropped.

A server process receives each pushed batch once per run, not once per connection: a run watched
from 100 pages would otherwise cost 100 channel-layer messages (a Redis write and a read each) per
batch. One :class:`_RunHub` per run and event loop is the group's member and hands every batch to
the connections of this process that follow the run, each of which forwards it in its own task.
"""

import asyncio
import logging
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.runs.events import run_group
from apps.runs.selectors import run_events, run_get

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TRY_AGAIN = 1013
JOIN_ATTEMPTS = 4
BROKER_DOWN_REASON = "live events unavailable: the message broker is down; reconnect in a few seconds"
INBOX_LIMIT = 100
"""Batches a connection may have waiting; past that it is behind and reads the database instead."""


def batch_plan(last_seq: int, batch: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """What to do with a pushed batch when the client has every event up to ``last_seq``.

    Returns the events to send, in order (those with seq ``last_seq + 1``, ``last_seq + 2``, ... found
    in the batch, whatever its order, each once), and whether a replay from the database must follow:
    True when the batch holds a newer event that cannot be sent because one before it is missing.
    Events at or below ``last_seq`` (duplicates, stragglers after a replay) are ignored.
    """
    newer = {event["seq"]: event for event in batch if event["seq"] > last_seq}
    send = []
    expected = last_seq + 1
    while expected in newer:
        send.append(newer.pop(expected))
        expected += 1
    return send, bool(newer)


class _RunHub:
    """This process's member of a run's group: receives each pushed batch once and hands it to every
    connection of this event loop that follows the run."""

    def __init__(self, layer, group: str) -> None:
        self.layer = layer
        self.group = group
        self.members: set[RunEventsConsumer] = set()
        self.channel = ""
        self.joined: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        try:
            self.channel = await self.layer.new_channel()
            await self.layer.group_add(self.group, self.channel)
        except Exception as error:
            self.joined.set_exception(error)
            raise
        self.joined.set_result(None)
        self.task = asyncio.ensure_future(self._receive())

    async def _receive(self) -> None:
        try:
            while True:
                message = await self.layer.receive(self.channel)
                if message.get("type") == "run.events":
                    for member in list(self.members):
                        member.deliver(message)
        except asyncio.CancelledError:
            raise
        except Exception:  # the channel layer is gone: the pages reconnect (after=) and catch up
            logger.warning("lost the live events of %s", self.group, exc_info=True)
            _hubs_of_loop().pop(self.group, None)
            for member in list(self.members):
                await member.close(code=CLOSE_TRY_AGAIN, reason=BROKER_DOWN_REASON)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.channel:
            try:
                await self.layer.group_discard(self.group, self.channel)
            except Exception:  # it expires from the group on its own
                logger.warning("could not leave %s", self.group, exc_info=True)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _RunHub]] = weakref.WeakKeyDictionary()


def _hubs_of_loop() -> dict[str, _RunHub]:
    return _hubs.setdefault(asyncio.get_running_loop(), {})


async def _hub_join(consumer) -> None:
    hubs = _hubs_of_loop()
    hub = hubs.get(consumer.group)
    if hub is None:
        hub = hubs[consumer.group] = _RunHub(consumer.channel_layer, consumer.group)
        hub.members.add(consumer)
        try:
            await hub.start()
        except Exception:
            hubs.pop(consumer.group, None)
            raise
    else:
        hub.members.add(consumer)
        await asyncio.shield(hub.joined)


async def _hub_leave(consumer) -> None:
    hubs = _hubs_of_loop()
    hub = hubs.get(consumer.group)
    if hub is None or consumer not in hub.members:
        return
    hub.members.discard(consumer)
    if not hub.members:
        del hubs[consumer.group]
        await hub.stop()


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        run = await database_sync_to_async(run_get)(user=user, run_id=self.run_id)
        if run is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            self.last_seq = max(0, int(query.get("after", ["0"])[0]))
        except ValueError:
            self.last_seq = 0
        self.group = run_group(self.run_id)
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._behind = False
        # Before the replay: nothing committed meanwhile is missed. After a restart of the Redis
        # server, each pooled connection of the layer fails once ("closed by server"): try again.
        for attempt in range(JOIN_ATTEMPTS):
            try:
                await _hub_join(self)
                break
            except Exception:
                if attempt + 1 < JOIN_ATTEMPTS:
                    await asyncio.sleep(0.05)
                    continue
                # The channel layer is down. Accept only to close with a code and a reason the page
                # can act on, instead of failing the handshake with an HTTP 500.
                logger.warning("cannot follow %s: channel layer unavailable", self.group, exc_info=True)
                del self.group  # not a member: disconnect() has nothing to leave
                await self.accept()
                await self.close(code=CLOSE_TRY_AGAIN, reason=BROKER_DOWN_REASON)
                return
        await self.accept()
        await self._replay()
        self._forwarder = asyncio.ensure_future(self._forward())

    async def disconnect(self, code):
        if hasattr(self, "_forwarder"):
            self._forwarder.cancel()
        if hasattr(self, "group"):
            await _hub_leave(self)

    def deliver(self, message) -> None:
        """Called by the run's hub with each pushed batch; never blocks the hub."""
        if self._inbox.qsize() >= INBOX_LIMIT:
            self._behind = True  # the database has it: read from there once the inbox is worked off
            return
        self._inbox.put_nowait(message)

    async def _forward(self) -> None:
        """Forwards the batches one after another (no two sends of one connection interleave)."""
        try:
            while True:
                await self.run_events(await self._inbox.get())
                if self._behind and self._inbox.empty():
                    self._behind = False
                    await self._replay()
        except asyncio.CancelledError:
            raise
        except Exception:  # a send on a closing socket, a failed read: the page reconnects with after=
            logger.info("stopped forwarding events of %s", self.group, exc_info=True)

    async def receive_json(self, content, **kwargs):
        """Clients only listen; anything they send is ignored."""

    async def run_events(self, message):
        send, replay = batch_plan(self.last_seq, message["events"])
        for event in send:
            await self._send_event(event)
        if replay:
            await self._replay()

    async def _replay(self):
        while True:
            events = await database_sync_to_async(run_events)(run_id=self.run_id, after=self.last_seq)
            for event in events:
                await self._send_event(event.as_dict())
            if len(events) < 1000:
                return

    async def _send_event(self, event):
        if event["seq"] != self.last_seq + 1:
            return
        self.last_seq = event["seq"]
        await self.send_json(event)
