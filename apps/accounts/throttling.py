"""API rate limits, and the client address that they and the sign-in lock-outs count by.

Rates are ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (``ILIAD_API_RATE_*``); counts live in Django's
cache, shared by all processes when ``REDIS_URL`` is set.
"""

from __future__ import annotations

import logging

from rest_framework import authentication, exceptions, throttling
from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)


def client_address(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the X-Forwarded-For entry the outermost trusted proxy
    wrote when ``ILIAD_TRUST_X_FORWARDED_FOR`` is on (DRF's ``NUM_PROXIES`` rule). Used by django-axes
    (``AXES_CLIENT_IP_CALLABLE``) too, so sign-in lock-outs and API limits agree on who is who."""
    return throttling.BaseThrottle().get_ident(request)


class _RatesReadPerRequest:
    """DRF reads the rates once, when its throttle classes are defined; these read them when used, so
    that a changed ``REST_FRAMEWORK`` setting (a test's ``override_settings``) applies."""

    scope: str

    def get_rate(self) -> str:
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]


class UserRateThrottle(_RatesReadPerRequest, throttling.UserRateThrottle):
    """Requests of a signed-in user (session or token), rate ``user``; anonymous ones per address."""


class AnonRateThrottle(_RatesReadPerRequest, throttling.AnonRateThrottle):
    """Requests without a signed-in user, per address, rate ``anon``."""


class TokenFailureThrottle(_RatesReadPerRequest, throttling.SimpleRateThrottle):
    """Failed ``Authorization: Token`` attempts per address, rate ``token_failure``. Once an address has
    used them up, every token it presents is refused until the oldest failure leaves the window, so
    that guessing learns nothing, not even from a right guess."""

    scope = "token_failure"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _recent_failures(self, request) -> tuple[str, list[float], float]:
        key = self.get_cache_key(request)
        now = self.timer()
        return key, [at for at in self.cache.get(key, []) if at > now - self.duration], now

    def wait_before_next_attempt(self, request) -> float | None:
        """Seconds until this address may present a token again, or None when it may now."""
        _, failures, now = self._recent_failures(request)
        if len(failures) < self.num_requests:
            return None
        # Newest first: the address may try again once the failure at the limit's position expires.
        return failures[self.num_requests - 1] + self.duration - now

    def record_failure(self, request) -> None:
        key, failures, now = self._recent_failures(request)
        self.cache.set(key, [now, *failures], self.duration)


class FailureThrottledAuthentication(authentication.BaseAuthentication):
    """An ``Authorization: <keyword> <credential>`` scheme whose failed attempts count against the
    client's address (``TokenFailureThrottle``): once they are used up, every credential from that
    address is refused with 429. Subclasses set ``keyword`` and implement ``_authenticate_token(header)``
    (the split header) returning ``(user, auth)`` or raising AuthenticationFailed with a sentence."""

    keyword: str

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        throttle = TokenFailureThrottle()
        wait = throttle.wait_before_next_attempt(request)
        if wait is not None:
            raise exceptions.Throttled(
                wait, detail="Too many failed token authentications from your address; tokens are refused."
            )
        try:
            return self._authenticate_token(header)
        except exceptions.AuthenticationFailed as error:
            logger.warning("%s authentication refused: %s", self.keyword, error.detail)
            throttle.record_failure(request)
            raise

    def _authenticate_token(self, header: list[bytes]):
        raise NotImplementedError
