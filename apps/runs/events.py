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
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _append_postgresql(run_id, events, now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Run._meta.db_table} SET last_event_seq = last_event_seq + %s "  # noqa: S608
            "WHERE id = %s RETURNING last_event_seq",
            [len(events), run_id],
        )
        last_seq = cursor.fetchone()[0]
    first_seq = last_seq - len(events) + 1
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


def _append_postgresql(run_id: int, events: list[NewEvent], now) -> list[RunEvent]:
    """``events_append`` in one round trip: the run row's sequence UPDATE and the INSERT of the
    events as one statement (data-modifying common table expressions)."""
    payload_field = RunEvent._meta.get_field("payload")
    created_at = connection.ops.adapt_datetimefield_value(now)
    values, params = [], [len(events), run_id, run_id, len(events)]
    for offset, (kind, node_id, payload) in enumerate(events, start=1):
        values.append("(%s, %s, %s, %s::jsonb)")
        params += [offset, kind, node_id, payload_field.get_db_prep_value(payload, connection)]
    params.append(created_at)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH run AS (UPDATE {Run._meta.db_table} SET last_event_seq = last_event_seq + %s "  # noqa: S608
            "WHERE id = %s RETURNING last_event_seq), "
            f"added AS (INSERT INTO {RunEvent._meta.db_table} "
            "(run_id, seq, kind, node_id, payload, created_at) "
            "SELECT %s, run.last_event_seq - %s + new.pos, new.kind, new.node_id, new.payload, %s "
            f"FROM run, (VALUES {', '.join(values)}) AS new (pos, kind, node_id, payload)) "
            "SELECT last_event_seq FROM run",
            params[:4] + params[-1:] + params[4:-1],
        )
        last_seq = cursor.fetchone()[0]
    first_seq = last_seq - len(events) + 1
    rows = [
        RunEvent(
            run_id=run_id, seq=first_seq + offset, kind=kind, node_id=node_id, payload=payload, created_at=now
        )
        for offset, (kind, node_id, payload) in enumerate(events)
    ]
    payloads = [row.as_dict() for row in rows]
    transaction.on_commit(lambda: _push(run_id, payloads))
    return rows


def claiming_append_sql(
    *,
    run_id: int,
    events: list[NewEvent],
    claim: tuple[str, list[Any]],
    claimed_events: list[tuple[str, dict[str, Any]]],
    now,
) -> tuple[str, list[Any]]:
    """PostgreSQL: one statement that runs ``claim`` (an ``UPDATE … RETURNING id, node_id`` of at
    most one step) and appends ``events`` followed, when it claimed a step, by ``claimed_events``
    ((kind, payload) about that step's node) to the run's log. Its one row: the claimed step's id
    and node id (NULL, NULL when none) and the run's last event sequence number after it; hand
    them to ``claiming_appended``."""
    payload_field = RunEvent._meta.get_field("payload")
    fixed, fixed_params = [], []
    for position, (kind, node_id, payload) in enumerate(events, start=1):
        fixed.append("(%s, %s, %s, %s::jsonb)")
        fixed_params += [position, kind, node_id, payload_field.get_db_prep_value(payload, connection)]
    extra, extra_params = [], []
    for position, (kind, payload) in enumerate(claimed_events, start=len(events) + 1):
        extra.append("(%s, %s, %s::jsonb)")
        extra_params += [position, kind, payload_field.get_db_prep_value(payload, connection)]
    new = (
        "SELECT v.pos, v.kind, v.node_id, v.payload "
        f"FROM (VALUES {', '.join(fixed)}) AS v (pos, kind, node_id, payload)"
    )
    if extra:
        new += (
            " UNION ALL SELECT t.pos, t.kind, kept.node_id, t.payload "
            f"FROM kept, (VALUES {', '.join(extra)}) AS t (pos, kind, payload)"
        )
    sql = (
        f"WITH kept AS ({claim[0]}), new AS ({new}), "
        f"run AS (UPDATE {Run._meta.db_table} "  # noqa: S608
        "SET last_event_seq = last_event_seq + (SELECT count(*) FROM new) "
        "WHERE id = %s RETURNING last_event_seq), "
        f"added AS (INSERT INTO {RunEvent._meta.db_table} (run_id, seq, kind, node_id, payload, created_at) "
        "SELECT %s, run.last_event_seq - (SELECT count(*) FROM new) + new.pos, new.kind, new.node_id, "
        "new.payload, %s FROM run, new) "
        "SELECT kept.id, kept.node_id, run.last_event_seq FROM run LEFT JOIN kept ON true"
    )
    created_at = connection.ops.adapt_datetimefield_value(now)
    params = [*claim[1], *fixed_params, *extra_params, run_id, run_id, created_at]
    return sql, params


def claiming_appended(
    *,
    run_id: int,
    events: list[NewEvent],
    claimed_events: list[tuple[str, dict[str, Any]]],
    claimed_node: str | None,
    last_seq: int,
    now,
) -> list[NewEvent]:
    """After ``claiming_append_sql`` ran (and the step it finished was found still claimed): the
    events it wrote, which are pushed to live listeners after commit."""
    written = list(events)
    if claimed_node is not None:
        written += [(kind, claimed_node, payload) for kind, payload in claimed_events]
    first_seq = last_seq - len(written) + 1
    payloads = [
        RunEvent(
            run_id=run_id, seq=first_seq + offset, kind=kind, node_id=node_id, payload=payload, created_at=now
        ).as_dict()
        for offset, (kind, node_id, payload) in enumerate(written)
    ]
    transaction.on_commit(lambda: _push(run_id, payloads))
    return written


class _Pusher:
    """Sends run events to live listeners from one long-lived event loop thread per process.

    A commit's events leave at once when the run's previous message left at least ``MIN_GAP_S`` ago
    and is no longer in flight; otherwise what commits meanwhile is gathered and leaves as one message
    when that time comes. A quiet run's event so waits for nothing, and a busy run (a chain commits
    hundreds of times a second per worker) sends at most one message per ``MIN_GAP_S`` per process
    instead of one per commit: each costs a Redis round trip here and a delivery to every listener
    in the ASGI server. Sends are fire-and-forget: a listener that sees a gap fills it from the
    database.
    """

    MIN_GAP_S = 0.02

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._busy: set[str] = set()  # groups with a send scheduled or in flight
        self._sent_at: dict[str, float] = {}  # when each group's last message left

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # a forked worker needs its own
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                self._pending = {}
                self._busy = set()
                self._sent_at = {}
                threading.Thread(target=self._loop.run_forever, name="run-event-push", daemon=True).start()
            return self._loop

    def send(self, group: str, events: list[dict[str, Any]]) -> None:
        loop = self._running_loop()
        with self._lock:
            self._pending.setdefault(group, []).extend(events)
            if group in self._busy:  # the send in flight picks these up when it completes
                return
            self._busy.add(group)
            delay = self._sent_at.get(group, 0.0) + self.MIN_GAP_S - time.monotonic()
        if delay > 0:
            loop.call_soon_threadsafe(loop.call_later, delay, self._send_pending, group)
        else:
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
        with self._lock:
            self._sent_at[group] = time.monotonic()
        task = asyncio.ensure_future(layer.group_send(group, {"type": "run.events", "events": events}))
        task.add_done_callback(lambda future: (_log_failure(future), self._sent(group)))

    def _sent(self, group: str) -> None:
        """Runs in the loop thread once a message has gone: the next one, if any, after ``MIN_GAP_S``."""
        with self._lock:
            if not self._pending.get(group):
                self._busy.discard(group)
                return
            delay = self._sent_at[group] + self.MIN_GAP_S - time.monotonic()
        asyncio.get_running_loop().call_later(max(0.0, delay), self._send_pending, group)

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


def events_push_wait(timeout: float = 5.0) -> bool:
    """Wait until this process has sent every event it committed to live listeners (True) or
    ``timeout`` passed (False). Pushes leave from a daemon thread: a short-lived process (a script, a
    test's writer) calls this before it exits, or its last events reach listeners only from the
    database."""
    return _pusher.wait_idle(timeout)


class _DelayedFlusher:
    """One thread per process that writes a sink's buffered events once they have waited
    ``interval_s``: a block that reports progress and then computes for a minute must not keep that
    report from its watchers until its next event. Scheduling is a dict entry under a lock, so the
    hot path of a step (which reports progress and ends within milliseconds) costs no thread wake-up:
    the thread looks every ``TICK_S``, and a sink drained before its time is simply forgotten."""

    TICK_S = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[StepEventSink, float] = {}
        self._pid = 0

    def schedule(self, sink: StepEventSink, at: float) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (or a forked child)
                self._pid = os.getpid()
                self._due = {}
                threading.Thread(target=self._run, name="run-event-flush", daemon=True).start()
            self._due.setdefault(sink, at)

    def cancel(self, sink: StepEventSink) -> None:
        with self._lock:
            self._due.pop(sink, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.TICK_S)
            now = time.monotonic()
            with self._lock:
                ready = [sink for sink, at in self._due.items() if at <= now]
                for sink in ready:
                    del self._due[sink]
            for sink in ready:
                try:
                    sink.flush()
                except Exception:  # the events stay buffered: the step's end writes them
                    logger.warning("could not write the events of step %s early", sink.node_id, exc_info=True)
                    connection.close()


_flusher = _DelayedFlusher()


class StepEventSink:
    """Collects a running block's progress and log events and writes them in batches.

    A chatty block must not turn every log line into a transaction: lines are written at most every
    ``interval_s`` (or when ``max_batch`` pile up), and only the newest progress report is kept. What
    waits is written by a background thread once it has waited ``interval_s``, so watchers see every
    event within about ``interval_s`` even when the block then stays silent; :meth:`drain` hands over
    what is left (to be written with the step's final state) and stops that.
    """

    def __init__(self, *, run_id: int, node_id: str, interval_s: float = 0.5, max_batch: int = 200) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.interval_s = interval_s
        self.max_batch = max_batch
        self._buffer: list[NewEvent] = []
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()  # the buffer, shared with the flusher thread
        self._write_lock = threading.Lock()  # batches are written in the order they were taken
        self._closed = False

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        with self._lock:
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
            else:
                return
            due = (
                len(self._buffer) >= self.max_batch or time.monotonic() - self._last_flush >= self.interval_s
            )
            if not due and not self._closed:
                _flusher.schedule(self, self._last_flush + self.interval_s)
        if due:
            self.flush()

    def _take(self) -> list[NewEvent]:
        with self._lock:
            self._last_flush = time.monotonic()
            pending, self._buffer = self._buffer, []
            return pending

    def drain(self) -> list[NewEvent]:
        """Hand over the buffered events (e.g. to be written with the step's final state); nothing is
        written in the background any more. Waits for a background write in progress, so that the
        events handed over come after everything written before."""
        with self._lock:
            self._closed = True
        _flusher.cancel(self)
        with self._write_lock:
            return self._take()

    def flush(self) -> None:
        """Write the buffered events now, in a transaction of their own."""
        with self._write_lock:
            pending = self._take()
            if pending:
                try:
                    with transaction.atomic():
                        events_append(run_id=self.run_id, events=pending)
                except Exception:
                    with self._lock:
                        self._buffer[:0] = pending
                    raise
