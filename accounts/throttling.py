"""Per-key and per-user rate limits counted in the shared cache, so they hold across processes.

A fixed one-minute window counted with an atomic INCR (and its expiry) in one cache round trip.
DRF's own throttles keep a list of timestamps per caller, which is neither atomic across
processes nor cheap at thousands of requests a minute.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.authentication import WINDOW_SECONDS, ApiKeyCaller, client_ip, rate_counter_key
from churn_infra.metrics import RATE_LIMIT_DEGRADED

logger = logging.getLogger(__name__)
# While the cache is down requests go through unthrottled (fail-open): refusing every request
# would turn a cache outage into an API outage. Logged at most this often per process.
_DEGRADED_LOG_INTERVAL = 60.0
_degraded_logged_at = -_DEGRADED_LOG_INTERVAL


def _degraded(exc: Exception) -> bool:
    global _degraded_logged_at
    RATE_LIMIT_DEGRADED.inc()
    now = time.monotonic()
    if now - _degraded_logged_at >= _DEGRADED_LOG_INTERVAL:
        _degraded_logged_at = now
        logger.warning("Rate limiting degraded: the counter is unavailable (%s); letting requests through", exc)
    return True


def _limit_for(request: Any) -> tuple[str, int]:
    user = request.user
    if isinstance(user, ApiKeyCaller):
        return f"kp{user.prefix}", user.rate_limit_per_minute
    if user is not None and getattr(user, "is_authenticated", False):
        membership = getattr(user, "membership", None) if hasattr(user, "membership") else None
        department_limit = membership.department.user_rate_limit_per_minute if membership else None
        return f"u{user.pk}", department_limit or settings.USER_RATE_LIMIT_PER_MINUTE
    return f"ip{client_ip(request)}", settings.ANON_RATE_LIMIT_PER_MINUTE


class CallerRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        ident, limit = _limit_for(request)
        now = time.time()
        user = request.user
        if isinstance(user, ApiKeyCaller) and user.rate_count is not None:
            # Counted while the key was looked up, in the same cache round trip.
            window, count = user.rate_window, user.rate_count
        else:
            window = int(now // WINDOW_SECONDS)
            try:
                count = cache.incr_with_expiry(rate_counter_key(ident, window), WINDOW_SECONDS * 2)
            except Exception as exc:
                return _degraded(exc)
        if count <= limit:
            return True
        self._wait = (window + 1) * WINDOW_SECONDS - now
        return False

    def wait(self) -> float | None:
        return math.ceil(getattr(self, "_wait", WINDOW_SECONDS))
