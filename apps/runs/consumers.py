"""Live run events over WebSocket: ``/ws/runs/<id>/?after=<seq>``.

On connect the consumer joins the run's group first and then replays what the client missed from
the database, so nothing falls between replay and push; it forwards each event once, in order, and
fills any gap from the database.
"""

from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.runs.events import run_group
from apps.runs.selectors import run_events, run_get

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


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
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._replay()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        """Clients only listen; anything they send is ignored."""

    async def run_events(self, message):
        events = [event for event in message["events"] if event["seq"] > self.last_seq]
        if events and events[0]["seq"] != self.last_seq + 1:
            await self._replay()
            return
        for event in events:
            await self._send_event(event)

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
