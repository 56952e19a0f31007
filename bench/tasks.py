"""The raw Celery side of the orchestration benchmark: a no-op task that can signal the end.

The benchmark's worker loads this module with ``--include bench.tasks``; the portal's own workers
never do. Settings ignore task results (``CELERY_TASK_IGNORE_RESULT``), so the end of a chain or a
group is signalled through Redis instead of a result backend:

* chain: only the last task gets a ``token``; it stamps the end time;
* group: every task gets ``token`` and ``total``; each INCRs a counter and the one that brings it to
  ``total`` stamps the end time.

The stamp is the worker's ``time.time()`` once its work is done, the same clock the portal uses for
``Run.finished_at`` (``timezone.now()`` in the worker), so both sides are timed from the driver's
clock before sending to the worker's clock at the end, and how often the driver polls does not
enter the figures.
"""

from __future__ import annotations

import time
from functools import lru_cache

import redis
from celery import shared_task
from django.conf import settings

KEY_PREFIX = "iliad-bench"
KEY_TTL_S = 3600


def signal_url() -> str:
    """The Redis server that carries the end signals: the portal's REDIS_URL, else the broker."""
    return settings.REDIS_URL or settings.CELERY_BROKER_URL


def done_key(token: str) -> str:
    return f"{KEY_PREFIX}:{token}:done"


def count_key(token: str) -> str:
    return f"{KEY_PREFIX}:{token}:count"


@lru_cache(maxsize=1)
def signal_client() -> redis.Redis:
    """One client per process, created on first use (in a prefork child, after the fork)."""
    return redis.Redis.from_url(signal_url())


@shared_task(name="bench.noop")
def noop(token: str = "", total: int = 0) -> None:
    """Do nothing; with a ``token``, signal the end of a chain (``total`` 0) or a group."""
    if not token:
        return
    client = signal_client()
    if total:
        if client.incr(count_key(token)) < total:
            return
        client.delete(count_key(token))
    client.set(done_key(token), repr(time.time()), ex=KEY_TTL_S)
