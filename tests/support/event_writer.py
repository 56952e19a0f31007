"""Append events to a run's log from a process of its own, as a worker process does.

    python -m tests.support.event_writer RUN_ID SEED START_AT END_AT

Appends from ``START_AT`` until ``END_AT`` (``time.time()`` values), so that two writers started
together interleave from start to end: log events in transactions of 1 to 3 events, with pauses of
2 to 8 ms between them, chosen from ``SEED``; then writers 1 and 2 end with three events taking
turns (see ``CODA``). Waits until its pushes have gone to live listeners
before it exits. DATABASE_URL and DJANGO_SETTINGS_MODULE come from the environment.
"""

from __future__ import annotations

import os
import random
import sys
import time

CODA = {1: [("coda-a", ""), ("coda-c", "coda-b")], 2: [("coda-b", "coda-a")]}
"""seed → the events it writes at the end, each once the event it names is written."""


def main(run_id: int, seed: int, start_at: float, end_at: float) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
    django.setup()
    from django.db import transaction

    from apps.runs.events import events_append, events_push_wait
    from apps.runs.models import RunEvent

    rng = random.Random(seed)
    time.sleep(max(0.0, start_at - time.time()))
    written = 0
    while time.time() < end_at:
        size = rng.randint(1, 3)
        with transaction.atomic():
            events_append(
                run_id=run_id,
                events=[
                    ("log", f"writer-{seed}", {"level": "info", "message": f"{seed}:{written + i}"})
                    for i in range(size)
                ],
            )
        written += size
        time.sleep(rng.uniform(0.002, 0.008))
    # The end of a two-branch run: writer 1 commits, then writer 2, then writer 1 again, in a few ms,
    # so that one process's last batch can hold a hole that the other process's batch fills.
    time.sleep(max(0.0, end_at + 0.2 - time.time()))
    for mine, after in CODA[seed]:
        deadline = time.monotonic() + 10
        while after and not RunEvent.objects.filter(run_id=run_id, node_id=after).exists():
            if time.monotonic() > deadline:
                sys.exit(f"writer {seed}: {after} was never written")
            time.sleep(0.001)
        with transaction.atomic():
            events_append(run_id=run_id, events=[("log", mine, {"level": "info", "message": mine})])
    if not events_push_wait(10):
        sys.exit("the pushes did not go out within 10 s")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
