"""Cache keys that ride along on a request's one cache round trip.

An API-key request already makes one Redis call (the key's cached record, its rate-limit counter
and its address's failed-key counter, pipelined). A layer above accounts that wants a value read
about once a second per process (the model registry's active-version stamp) registers a rider
instead of making a call of its own: ``key()`` names the cache key while the value is due (None
otherwise) and ``deliver(value)`` receives what the round trip read (None when the key is absent).
Layers stay downward: accounts only knows this module, the registry registers itself here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rider:
    key: Callable[[], str | None]
    deliver: Callable[[Any], None]


_RIDERS: list[Rider] = []


def register(rider: Rider) -> None:
    if rider not in _RIDERS:
        _RIDERS.append(rider)


def due() -> list[tuple[Rider, str]]:
    """The riders that want a value now, each with its cache key."""
    return [(rider, key) for rider in _RIDERS if (key := rider.key()) is not None]
