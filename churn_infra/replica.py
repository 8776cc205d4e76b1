"""Read-only work on a streaming replica, everything else on the primary.

With DATABASE_REPLICA_URL set, the "replica" database alias exists and `PrimaryReplicaRouter`
sends a read there only when all of these hold:
  * the code asked for it: a GET/HEAD request under one of DATABASE_REPLICA_PATHS (staff pages,
    lists, reports, exports; `ReplicaReadsMiddleware`), or a block in `replica_reads()` (the
    live-performance computation of the retraining evaluation);
  * nothing has been written in this request or block yet: the first write routes to the primary
    and pins every later read of the same request there ("read your own writes");
  * no transaction is open on the primary: what a transaction reads must be what it writes on.
Writes always go to the primary; migrations run only there.

A replica lags its primary (typically milliseconds on one network, seconds under a heavy write
load), so a page may show data a moment older than what was just saved by another request; the
README's Operations section says what that means for staff pages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
PRIMARY = "default"
SAFE_METHODS = frozenset({"GET", "HEAD"})

_replica_allowed: ContextVar[bool] = ContextVar("replica_allowed", default=False)
_pinned_to_primary: ContextVar[bool] = ContextVar("pinned_to_primary", default=False)


def replica_configured() -> bool:
    return REPLICA in connections.settings


def pin_to_primary() -> None:
    """Every later read of this request or block goes to the primary."""
    _pinned_to_primary.set(True)


def pinned_to_primary() -> bool:
    return _pinned_to_primary.get()


@contextmanager
def replica_reads() -> Iterator[None]:
    """Reads inside may go to the replica (until the first write, which pins them to the primary)."""
    allowed = _replica_allowed.set(True)
    pinned = _pinned_to_primary.set(False)
    try:
        yield
    finally:
        _pinned_to_primary.reset(pinned)
        _replica_allowed.reset(allowed)


def read_alias() -> str:
    if not replica_configured() or not _replica_allowed.get() or _pinned_to_primary.get():
        return PRIMARY
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY
    return REPLICA


class PrimaryReplicaRouter:
    """The database router of DATABASE_ROUTERS (see the module docstring)."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return read_alias()

    def db_for_write(self, model: Any, **hints: Any) -> str:
        pin_to_primary()
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica holds the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == PRIMARY


class ReplicaReadsMiddleware:
    """GET and HEAD requests under DATABASE_REPLICA_PATHS read from the replica (see above)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(settings.DATABASE_REPLICA_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS or not request.path.startswith(self.prefixes) or not replica_configured():
            pinned = _pinned_to_primary.set(False)
            try:
                return self.get_response(request)
            finally:
                _pinned_to_primary.reset(pinned)
        with replica_reads():
            return self.get_response(request)
