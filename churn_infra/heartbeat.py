"""A heartbeat thread: calls ``beat()`` every ``interval`` seconds while long work runs.

Long work (an ingestion run) must show it is alive more often than its stale threshold whatever
one step of it takes (a slow source, a big chunk). The thread uses its own database connection,
closed when it stops; a failed beat is logged and the next one tried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from django.db import connections

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, beat: Callable[[], object], interval: float, *, name: str = "heartbeat") -> None:
        self.beat = beat
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception:
                    logger.warning("Heartbeat %s failed; trying again in %s s", self._thread.name, self.interval,
                                   exc_info=True)
        finally:
            connections.close_all()  # this thread's connections only

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
