"""X-API-Key authentication for DRF.

The verified key's record is kept in the shared cache for API_KEY_CACHE_SECONDS so the request
path costs one cache read instead of a database query; revocation deletes the cached record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.models import ApiKey
from accounts.services import Actor, api_key_cache_key, api_key_touch, secret_matches, split_key
from churn_infra import cache_riders
from churn_infra.client_address import address_in, client_address
from churn_infra.metrics import API_KEY_FAILURE_THROTTLED
from churn_infra.outages import cache_call

logger = logging.getLogger(__name__)
WINDOW_SECONDS = 60


def rate_counter_key(ident: str, window: int) -> str:
    return f"rl:{ident}:{window}"

# Write last_used_at at most this often per key and process: a write per request would double
# the database work of the scoring path.
_TOUCH_INTERVAL_SECONDS = 60.0
_last_touch: dict[int, float] = {}


@dataclass(frozen=True)
class ApiKeyCaller:
    """Stands in for request.user when a request is made with an API key."""

    key_id: int
    name: str
    department_id: int
    department_name: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    prefix: str = ""
    # This minute's request count for the key, read in the same cache round trip as the key.
    rate_window: int | None = None
    rate_count: int | None = None

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    is_active = True
    pk = None

    def get_username(self) -> str:
        return f"api-key:{self.name}"

    def __str__(self) -> str:
        return self.get_username()


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address; X-Forwarded-For is trusted only behind TRUSTED_PROXY_COUNT proxies."""
    return client_address(request.META)


def _key_record(prefix: str, cached: Any = None) -> dict[str, Any] | None:
    if cached is not None:
        return cached
    obj = ApiKey.objects.select_related("department").filter(prefix=prefix).first()
    if obj is None:
        return None
    record = {
        "id": obj.pk,
        "name": obj.name,
        "salt": obj.salt,
        "hash": obj.secret_hash,
        "department_id": obj.department_id,
        "department_name": obj.department.name,
        "scopes": list(obj.scopes),
        "ip_allowlist": list(obj.ip_allowlist),
        "expires_at": obj.expires_at.timestamp() if obj.expires_at else None,
        "revoked": obj.revoked_at is not None,
        "rate_limit": obj.rate_limit_per_minute
        or obj.department.key_rate_limit_per_minute
        or settings.API_KEY_RATE_LIMIT_PER_MINUTE,
    }
    # Only a speed-up: with the cache down the key is verified from PostgreSQL on every request.
    cache_call("set", cache.set, api_key_cache_key(prefix), record, settings.API_KEY_CACHE_SECONDS)
    return record


def _ip_allowed(ip: str | None, allowlist: list[str]) -> bool:
    return not allowlist or address_in(ip, allowlist)


# --- failed keys, counted per address (issue 11, finding 2) -----------------------------------


def _key_failure_counter(ip: str | None, window: int) -> str:
    return f"keyfail:{ip}:{window}"


def _refuse_if_address_blocked(ip: str | None) -> None:
    """429 while this minute's failed keys from the address are past API_KEY_MAX_FAILURES_PER_MINUTE
    (a separate read, for a malformed key; a well-formed one reads the count on its one round trip)."""
    try:
        failures = cache.get(_key_failure_counter(ip, int(time.time() // WINDOW_SECONDS)), 0)
    except Exception:  # no cache: keys are still verified, failures are not counted
        logger.warning("Cache unavailable for counting failed API keys", exc_info=True)
        return
    _refuse_past_failure_limit(failures)


def _refuse_past_failure_limit(failures: int | None) -> None:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    if (failures or 0) >= settings.API_KEY_MAX_FAILURES_PER_MINUTE:
        API_KEY_FAILURE_THROTTLED.inc()
        raise exceptions.Throttled(
            wait=(window + 1) * WINDOW_SECONDS - now, detail="Too many failed API keys from your address."
        )


def _count_key_failure(ip: str | None) -> None:
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    try:
        cache.incr_with_expiry(_key_failure_counter(ip, window), WINDOW_SECONDS * 2)
    except Exception:
        logger.warning("Cache unavailable for counting failed API keys", exc_info=True)


class ApiKeyAuthentication(BaseAuthentication):
    header = "HTTP_X_API_KEY"

    def authenticate(self, request: Any) -> tuple[ApiKeyCaller, Actor] | None:
        raw = request.META.get(self.header)
        if raw is None:
            return None
        ip = client_ip(request)
        try:
            return self._verify(request, raw, ip)
        except exceptions.AuthenticationFailed:
            _count_key_failure(ip)
            raise

    def _verify(self, request: Any, raw: str, ip: str | None) -> tuple[ApiKeyCaller, Actor]:
        parts = split_key(raw)
        window = count = None
        record = None
        if parts is None:
            _refuse_if_address_blocked(ip)
        else:
            # One Redis round trip per request: the key's cached record, its rate-limit counter, the
            # address's failed keys this minute and whatever rides along (the model stamp, about
            # once a second). Each separate call cost ~0.15 ms of a ~3 ms request.
            window = int(time.time() // WINDOW_SECONDS)
            riders = cache_riders.due()
            try:
                cached, count, extras = cache.get_and_count(
                    api_key_cache_key(parts[0]), rate_counter_key(f"kp{parts[0]}", window), WINDOW_SECONDS * 2,
                    (_key_failure_counter(ip, window), *(key for _, key in riders)),
                )
            except Exception as exc:  # the database still answers; the throttle counts again
                logger.debug("Cache unavailable for API key lookup: %s", exc)
                cached, count, extras = None, None, None
            if extras is not None:
                for (rider, _), value in zip(riders, extras[1:], strict=True):
                    rider.deliver(value)
                _refuse_past_failure_limit(extras[0])
            record = _key_record(parts[0], cached)
        if parts is None or record is None or not secret_matches(record["salt"], record["hash"], parts[1]):
            raise exceptions.AuthenticationFailed("Invalid API key.", code="invalid_api_key")
        if record["revoked"]:
            raise exceptions.AuthenticationFailed("This API key has been revoked.", code="api_key_revoked")
        if record["expires_at"] is not None and record["expires_at"] <= time.time():
            raise exceptions.AuthenticationFailed("This API key has expired.", code="api_key_expired")
        if not _ip_allowed(ip, record["ip_allowlist"]):
            raise exceptions.PermissionDenied(f"This API key may not be used from {ip}.", code="ip_not_allowed")
        now = time.monotonic()
        if now - _last_touch.get(record["id"], -_TOUCH_INTERVAL_SECONDS) >= _TOUCH_INTERVAL_SECONDS:
            _last_touch[record["id"]] = now
            api_key_touch(key_id=record["id"], ip=ip)
        caller = ApiKeyCaller(
            key_id=record["id"],
            name=record["name"],
            department_id=record["department_id"],
            department_name=record["department_name"],
            scopes=frozenset(record["scopes"]),
            rate_limit_per_minute=record["rate_limit"],
            prefix=parts[0],
            rate_window=window,
            rate_count=count,
        )
        actor = Actor(
            api_key_id=record["id"],
            api_key_name=record["name"],
            department_id=record["department_id"],
            department_name=record["department_name"],
            scopes=caller.scopes,
            ip=ip,
            request_id=getattr(request, "request_id", None),
        )
        return caller, actor

    def authenticate_header(self, request: Any) -> str:
        # Having a header makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'X-API-Key realm="api", Bearer realm="api"'
