"""Liveness and readiness probes.

/healthz answers while the process runs. /readyz answers 200 only when the database, the cache
and an active model are usable; otherwise 503 naming each failing check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection
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


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    problems: list[str] = []
    for name, check in CHECKS.items():
        if name == "model" and checks.get("database") != "ok":
            checks[name] = "skipped: database unavailable"
            continue
        problem = check()
        checks[name] = problem or "ok"
        if problem:
            problems.append(problem)
    if problems:
        return JsonResponse({"status": "unavailable", "reason": "; ".join(problems), "checks": checks}, status=503)
    return JsonResponse({"status": "ready", "checks": checks})
