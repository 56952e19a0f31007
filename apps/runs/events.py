"""The run event log: append with dense per-run sequence numbers, then push to live listeners.

The database is the source of truth. Sequence numbers come from an UPDATE of the run row, which holds
the row lock until commit, so events of one run commit in sequence order and a reader that asks for
``after=N`` never skips one that commits later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from apps.runs.models import Run, RunEvent

logger = logging.getLogger(__name__)

NewEvent = tuple[str, str, dict[str, Any]]
"""(kind, node id or "", payload)"""


def _insert(rows: list[RunEvent]) -> None:
    """INSERT the events with one prepared statement: on the hot path of every step, bulk_create's
    query building costs more than the database does."""
    payload_field = RunEvent._meta.get_field("payload")
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {RunEvent._meta.db_table} (run_id, seq, kind, node_id, payload, created_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    row.run_id,
                    row.seq,
                    row.kind,
                    row.node_id,
                    payload_field.get_db_prep_value(row.payload, connection),
                    connection.ops.adapt_datetimefield_value(row.created_at),
                )
                for row in rows
            ],
        )


def run_group(run_id: int) -> str:
    """The channel-layer group a run's live listeners join."""
    return f"run-{run_id}"


def events_append(*, run_id: int, events: Iterable[NewEvent]) -> list[RunEvent]:
    """Append events to a run's log; call inside a transaction. Pushed to listeners after commit."""
    events = list(events)
    if not events:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET last_event_seq = last_event_seq + %s "  # noqa: S608
            "WHERE id = %s RETURNING last_event_seq",
            [len(events), run_id],
        )
        last_seq = cursor.fetchone()[0]
    first_seq = last_seq - len(events) + 1
    now = timezone.now()
    rows = [
        RunEvent(
            run_id=run_id, seq=first_seq + offset, kind=kind, node_id=node_id, payload=payload, created_at=now
        )
        for offset, (kind, node_id, payload) in enumerate(events)
    ]
    _insert(rows)
    payloads = [row.as_dict() for row in rows]
    transaction.on_commit(lambda: _push(run_id, payloads))
    return rows


class _Pusher:
    """Sends run events to live listeners from one long-lived event loop thread per process.

    A commit's events leave at once when nothing is on its way to the run's listeners; while a send
    is in flight, what commits meanwhile is gathered and leaves as one message when it completes.
    An idle run's event so costs no waiting, and a busy run (a chain commits several times a second
    per worker) sends about one message per Redis round trip instead of one per commit. Sends are
    fire-and-forget: a listener that sees a gap fills it from the database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._busy: set[str] = set()  # groups with a send scheduled or in flight

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked worker needs its own
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                self._pending = {}
                self._busy = set()
                threading.Thread(target=self._loop.run_forever, name="run-event-push", daemon=True).start()
            return self._loop

    def send(self, group: str, events: list[dict[str, Any]]) -> None:
        loop = self._running_loop()
        with self._lock:
            self._pending.setdefault(group, []).extend(events)
            if group in self._busy:  # the send in flight picks these up when it completes
                return
            self._busy.add(group)
        loop.call_soon_threadsafe(self._send_pending, group)

    def _send_pending(self, group: str) -> None:
        """Runs in the loop thread: one message with everything gathered for ``group``, then again
        once it has gone, until nothing is left."""
        with self._lock:
            events = self._pending.pop(group, None)
            if not events:
                self._busy.discard(group)
                return
        layer = get_channel_layer()
        if layer is None:
            with self._lock:
                self._busy.discard(group)
                self._pending.pop(group, None)
            return
        task = asyncio.ensure_future(layer.group_send(group, {"type": "run.events", "events": events}))
        task.add_done_callback(lambda future: (_log_failure(future), self._send_pending(group)))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every event handed over has been sent (or failed); True if it came to that.
        For short-lived processes, whose daemon thread would otherwise die with unsent events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._busy or self._pid != os.getpid():
                    return True
            time.sleep(0.01)
        return False


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("could not push run events to live listeners: %s", future.exception())


_pusher = _Pusher()


def _push(run_id: int, events: list[dict[str, Any]]) -> None:
    _pusher.send(run_group(run_id), events)


class StepEventSink:
    """Collects a running block's progress and log events and writes them in batches.

    A chatty block must not turn every log line into a transaction: lines are flushed at most every
    ``interval_s`` (or when ``max_batch`` pile up), and only the newest progress report is kept.
    """

    def __init__(self, *, run_id: int, node_id: str, interval_s: float = 0.5, max_batch: int = 200) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.interval_s = interval_s
        self.max_batch = max_batch
        self._buffer: list[NewEvent] = []
        self._last_flush = time.monotonic()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind == "progress":
            self._buffer = [item for item in self._buffer if item[0] != RunEvent.Kind.PROGRESS]
            self._buffer.append(
                (
                    RunEvent.Kind.PROGRESS,
                    self.node_id,
                    {"fraction": event.get("fraction"), "message": event.get("message", "")},
                )
            )
        elif kind == "log":
            self._buffer.append(
                (
                    RunEvent.Kind.LOG,
                    self.node_id,
                    {"level": event.get("level", "info"), "message": event.get("message", "")},
                )
            )
        if len(self._buffer) >= self.max_batch or time.monotonic() - self._last_flush >= self.interval_s:
            self.flush()

    def drain(self) -> list[NewEvent]:
        """Hand over the buffered events (e.g. to be written with the step's final state)."""
        self._last_flush = time.monotonic()
        pending, self._buffer = self._buffer, []
        return pending

    def flush(self) -> None:
        pending = self.drain()
        if pending:
            with transaction.atomic():
                events_append(run_id=self.run_id, events=pending)
