"""Unavailable dependencies: one exception, one list of outage errors, one circuit breaker.

``ServiceUnavailable`` is what any layer raises when a dependency it needs is down (the model
registry's ``ModelUnavailable`` is one); the API exception handler and ``OutageMiddleware``
answer it, and the database and Redis errors in ``OUTAGE_ERRORS``, with a JSON 503 and
Retry-After instead of a 500.

``CacheBreaker`` keeps a process from waiting on a dead or frozen Redis over and over: after a
failed call it refuses cache calls at once for ``CACHE_RETRY_SECONDS``, then lets one call
through to try again. Callers treat the cache as optional (see ``cache_call``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from django.db import InterfaceError, OperationalError

from churn_infra.metrics import CACHE_ERRORS

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Django's database errors (a refused or dropped connection, a statement or lock timeout) and
# redis-py's connection and timeout errors: the dependency is down, not the request wrong.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)


class ServiceUnavailable(Exception):
    """A dependency the request needs is unavailable; answered 503 with Retry-After."""

    code = "service_unavailable"
    retry_after = 5

    def __init__(self, detail: str = "", *, retry_after: int | None = None) -> None:
        super().__init__(detail or "A service this request needs is unavailable; try again shortly.")
        if retry_after is not None:
            self.retry_after = retry_after

    def public_detail(self) -> str:
        return str(self)


class CacheUnavailable(ServiceUnavailable, redis.ConnectionError):
    """The cache breaker is open: Redis failed moments ago and is not asked again yet."""


def outage_detail(exc: BaseException) -> str:
    """What the client is told: which dependency, never the internals of the error."""
    if isinstance(exc, ServiceUnavailable):
        return exc.public_detail()
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "The cache is unavailable; try again shortly."
    return "The database is unavailable; try again shortly."


class CacheBreaker:
    """Per-process circuit breaker in front of Redis (thread-safe, lock-free on the happy path)."""

    def __init__(self, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self._open_until = 0.0
        self._lock = threading.Lock()

    def before(self, operation: str) -> None:
        if self._open_until and time.monotonic() < self._open_until:
            CACHE_ERRORS.labels(operation=operation).inc()
            raise CacheUnavailable("The cache is unavailable; try again shortly.")

    def failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(operation=operation).inc()
        with self._lock:
            first = not self._open_until
            self._open_until = time.monotonic() + self.retry_seconds
        if first:
            logger.warning("Cache unavailable (%s: %s); not asked again for %s s", operation, exc, self.retry_seconds)

    def succeeded(self) -> None:
        if self._open_until:
            with self._lock:
                self._open_until = 0.0
            logger.warning("Cache available again")

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self.before(operation)
        try:
            result = fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.failed(operation, exc)
            raise
        self.succeeded()
        return result


def cache_call(operation: str, fn: Callable[..., T], *args: Any, default: Any = None, **kwargs: Any) -> T | Any:
    """Run an optional cache operation; on any cache failure log at debug level and return ``default``.

    The breaker (in the Redis backend) has already logged the outage and counted it.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        logger.debug("Cache %s skipped: %s", operation, exc)
        return default
