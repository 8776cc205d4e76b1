"""Liveness and readiness probes.

/healthz answers while the process runs and touches no dependency. /readyz answers 200 only when
the database, the cache and an active model are usable; otherwise 503 naming each failing check.

/readyz answers within READYZ_TIMEOUT_SECONDS whatever hangs: the database and cache checks run
in their own threads (with their own connections) against one deadline, and a check still stuck
from an earlier probe is reported as failing rather than started again, so a frozen dependency
costs at most one waiting thread per check. The model check runs only once the database answered;
it normally finds the model in memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"database unavailable: {type(exc).__name__}: {first_line}"
    return None


def _check_cache() -> str | None:
    probe = uuid.uuid4().hex
    try:
        cache.set("readyz-probe", probe, 10)
        if cache.get("readyz-probe") != probe:
            return "cache unavailable: a value written could not be read back"
    except Exception as exc:
        return f"cache unavailable: {type(exc).__name__}: {exc}"
    return None


def _check_model() -> str | None:
    from modelregistry.selectors import model_readiness_problem

    try:
        return model_readiness_problem()
    except Exception as exc:
        return f"model unavailable: {type(exc).__name__}: {exc}"


CHECKS: dict[str, Callable[[], str | None]] = {
    "database": _check_database,
    "cache": _check_cache,
    "model": _check_model,
}
# Checks that may block on the network, run in threads against the deadline.
BOUNDED = ("database", "cache")


class _Probe:
    """One run of a check in a daemon thread; the thread's database connection is closed after."""

    def __init__(self, check: Callable[[], str | None]) -> None:
        self.result: str | None = None
        self.started = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(check,), daemon=True, name="readyz-check")
        self.thread.start()

    def _run(self, check: Callable[[], str | None]) -> None:
        try:
            self.result = check()
        finally:
            connections.close_all()  # this thread's connections only
            self.done.set()


_running: dict[str, _Probe] = {}
_running_lock = threading.Lock()


def _bounded_checks(deadline: float) -> dict[str, str | None]:
    probes: dict[str, _Probe] = {}
    answers: dict[str, str | None] = {}
    with _running_lock:
        for name in BOUNDED:
            stuck = _running.get(name)
            if stuck is not None and not stuck.done.is_set():
                answers[name] = f"{name} unavailable: the previous check has not answered for "\
                    f"{time.monotonic() - stuck.started:.0f} s"
                continue
            probes[name] = _running[name] = _Probe(CHECKS[name])
    for name, probe in probes.items():
        if probe.done.wait(max(0.0, deadline - time.monotonic())):
            answers[name] = probe.result
        else:
            answers[name] = f"{name} unavailable: no answer within {settings.READYZ_TIMEOUT_SECONDS} s"
    return answers


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    problems: list[str] = []
    answers = _bounded_checks(time.monotonic() + settings.READYZ_TIMEOUT_SECONDS)
    for name, check in CHECKS.items():
        if name == "model" and checks.get("database") != "ok":
            checks[name] = "skipped: database unavailable"
            continue
        problem = answers[name] if name in answers else check()
        checks[name] = problem or "ok"
        if problem:
            problems.append(problem)
    if problems:
        return JsonResponse({"status": "unavailable", "reason": "; ".join(problems), "checks": checks}, status=503)
    return JsonResponse({"status": "ready", "checks": checks})
