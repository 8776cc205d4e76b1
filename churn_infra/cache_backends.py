"""Django's Redis and local-memory caches, counting gets, hits, misses and failures into
django-prometheus's cache metrics (django_cache_get_total, django_cache_get_hits_total, ...).

django-prometheus ships such backends, but its Redis one needs the django-redis package and its
local-memory one returns the default for cached falsy values (0, "", False); these keep Django's
semantics exactly.

The Redis backend sits behind a per-process circuit breaker (churn_infra.outages.CacheBreaker):
a failed call opens it for CACHE_RETRY_SECONDS, during which every call fails at once with
CacheUnavailable instead of waiting on the socket timeout again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache.backends.locmem import LocMemCache as DjangoLocMemCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_prometheus.cache.metrics import (
    django_cache_get_fail_total,
    django_cache_get_total,
    django_cache_hits_total,
    django_cache_misses_total,
)

from churn_infra.outages import CacheBreaker

_MISSING = object()


def _counted_get(backend: str, get: Any, key: Any, default: Any, version: Any) -> Any:
    django_cache_get_total.labels(backend=backend).inc()
    try:
        value = get(key, _MISSING, version=version)
    except Exception:
        django_cache_get_fail_total.labels(backend=backend).inc()
        raise
    if value is _MISSING:
        django_cache_misses_total.labels(backend=backend).inc()
        return default
    django_cache_hits_total.labels(backend=backend).inc()
    return value


# One breaker per Redis server and process: Django makes a cache object per thread.
_BREAKERS: dict[str, CacheBreaker] = {}

_GUARDED = ("add", "set", "touch", "delete", "get_many", "has_key", "incr", "set_many", "delete_many", "clear")


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: Any) -> None:
        super().__init__(server, params)
        from churn_infra.redis_client import ReusingRedisCacheClient

        self._class = ReusingRedisCacheClient
        location = ",".join(self._servers)
        self.breaker = _BREAKERS.get(location) or _BREAKERS.setdefault(
            location, CacheBreaker(getattr(settings, "CACHE_RETRY_SECONDS", 5))
        )

    def incr_with_expiry(self, key: str, timeout: int) -> int:
        """Atomically count ``key`` up, expiring it ``timeout`` seconds after it was created."""
        return self.breaker.call(
            "incr", self._cache.incr_with_expiry, self.make_and_validate_key(key), timeout
        )

    def get_and_count(
        self, key: str, counter_key: str, timeout: int, also: tuple[str, ...] = ()
    ) -> tuple[Any, int, list[Any]]:
        """Read ``key``, count ``counter_key`` up and read each of ``also``, in one round trip
        (API key, rate limit, failed keys of the address, cache riders)."""
        counted: list[tuple[int, list[Any]]] = []

        def get(k: Any, default: Any, version: Any = None) -> Any:
            value, count, extras = self._cache.get_and_count(
                self.make_and_validate_key(k), self.make_and_validate_key(counter_key), timeout,
                tuple(self.make_and_validate_key(extra) for extra in also),
            )
            counted.append((count, extras))
            return default if value is None else value

        value = self.breaker.call("get", _counted_get, "redis", get, key, None, None)
        return value, *counted[0]

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self.breaker.call("get", _counted_get, "redis", super().get, key, default, version)


def _guard(name: str) -> Any:
    method = getattr(DjangoRedisCache, name)

    def guarded(self: RedisCache, *args: Any, **kwargs: Any) -> Any:
        return self.breaker.call(name, method, self, *args, **kwargs)

    guarded.__name__ = name
    guarded.__doc__ = method.__doc__
    return guarded


for _name in _GUARDED:
    setattr(RedisCache, _name, _guard(_name))


class LocMemCache(DjangoLocMemCache):
    def get_and_count(
        self, key: str, counter_key: str, timeout: int, also: tuple[str, ...] = ()
    ) -> tuple[Any, int, list[Any]]:
        # get() counts the reads
        return self.get(key), self.incr_with_expiry(counter_key, timeout), [self.get(extra) for extra in also]

    def incr_with_expiry(self, key: str, timeout: int) -> int:
        if self.add(key, 1, timeout):
            return 1
        try:
            return self.incr(key)
        except ValueError:  # expired between add and incr
            self.add(key, 1, timeout)
            return 1

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return _counted_get("locmem", super().get, key, default, version)
