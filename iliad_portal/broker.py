"""Is the message broker reachable? What the portal answers while it is not.

A run's steps reach the workers through the broker. While it is down (the embedded server is being
restarted by ``make run``'s supervisor, or a production Redis is away) a run the portal accepted
would sit in the database until the periodic re-dispatch found it, minutes later; so the run
endpoints ask first and answer **503** with a ``Retry-After`` header and a message that says what
is wrong, and the API's error handler turns a broker or cache connection error raised anywhere
else into the same 503 instead of a 500.
"""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework import status
from rest_framework.exceptions import APIException

logger = logging.getLogger(__name__)

#: seconds a reachability check may take before the broker counts as down
CHECK_TIMEOUT_S = 1.0
#: what a refused client is told to wait (``Retry-After``)
RETRY_AFTER_S = 5

#: exceptions that mean "the broker (or the Redis server behind the cache) is not reachable"
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    KombuOperationalError,
)

MESSAGE = (
    "The message broker that hands steps to the workers is not reachable, so no run can start "
    "right now. Nothing was created; try again in a few seconds (the embedded server of "
    "`make run` is restarted automatically)."
)


class BrokerUnavailable(APIException):
    """503 with ``Retry-After``: the broker is down; nothing was created."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = MESSAGE
    default_code = "broker_unavailable"
    wait = RETRY_AFTER_S  # DRF's handler turns this into a Retry-After header


_client_lock = threading.Lock()
_client: redis.Redis | None = None
_client_url = ""


def _redis_client(url: str) -> redis.Redis:
    global _client, _client_url
    with _client_lock:
        if _client is None or _client_url != url:
            _client = redis.Redis.from_url(
                url,
                socket_connect_timeout=CHECK_TIMEOUT_S,
                socket_timeout=CHECK_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
            _client_url = url
        return _client


def broker_available() -> bool:
    """True if the Celery broker answers right now (within :data:`CHECK_TIMEOUT_S`)."""
    url = settings.CELERY_BROKER_URL
    try:
        if url.split(":", 1)[0] in ("redis", "rediss", "valkey", "valkeys", "unix"):
            return bool(_redis_client(url).ping())
        from iliad_portal.celery import app

        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_S)
        return True
    except BROKER_ERRORS as exc:
        logger.warning("the broker does not answer: %s", exc)
        return False


def require_broker() -> None:
    """Raise :class:`BrokerUnavailable` unless the broker answers."""
    if not broker_available():
        raise BrokerUnavailable()
