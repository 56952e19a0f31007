"""The run event log: append with dense per-run sequence numbers, then push to live listeners.

The database is the source of truth. Sequence numbers come from an UPDATE of the run row, which holds
the row lock until commit, so events of one run commit in sequence order and a reader that asks for
``after=N`` never skips one that commits later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from apps.runs.models import Run, RunEvent

logger = logging.getLogger(__name__)

NewEvent = tuple[str, str, dict[str, Any]]
"""(kind, node id or "", payload)"""


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
    rows = RunEvent.objects.bulk_create(
        RunEvent(run_id=run_id, seq=first_seq + offset, kind=kind, node_id=node_id, payload=payload)
        for offset, (kind, node_id, payload) in enumerate(events)
    )
    payloads = [row.as_dict() for row in rows]
    transaction.on_commit(lambda: _push(run_id, payloads))
    return rows


def _push(run_id: int, events: list[dict[str, Any]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(run_group(run_id), {"type": "run.events", "events": events})
    except Exception:  # listeners catch up from the database; a lost push loses nothing
        logger.warning("could not push events of run %s to live listeners", run_id, exc_info=True)


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

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        pending, self._buffer = self._buffer, []
        with transaction.atomic():
            events_append(run_id=self.run_id, events=pending)
