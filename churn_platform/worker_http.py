"""The small HTTP server a Celery worker runs beside its pool, on CELERY_METRICS_ADDRESS:CELERY_METRICS_PORT.

    /metrics   the worker's metrics: every pool process's task counts and run times, summed
    /healthz   200 while the worker's main process runs (Kubernetes liveness)
    /readyz    200 when the broker and the database answer, else 503 naming what failed

It runs in a daemon thread of the worker's main process, so it stops with the worker.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from churn_infra.client_address import metrics_refusal

logger = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _check_broker(app: Any) -> str | None:
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure means "not ready", with its reason
        return f"broker unavailable: {type(exc).__name__}: {exc}"
    return None


def _check_database() -> str | None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "not ready", with its reason
        return f"database unavailable: {type(exc).__name__}: {exc}"
    finally:
        # This thread is not a request: give the connection back rather than keep it open.
        connection.close()
    return None


class _QuietHandler(WSGIRequestHandler):
    """Probes and scrapes every few seconds would flood the log."""

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        return


def worker_http_app(celery_app: Any, registry: Any) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            # The same rule as the web /metrics: allowed networks, and the bearer token when set.
            refused = metrics_refusal(environ)
            if refused is not None:
                return _text(start_response, *refused)
            return metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, 200, {"status": "ok"})
        if path == "/readyz":
            problems = [p for p in (_check_broker(celery_app), _check_database()) if p]
            if problems:
                return _json(start_response, 503, {"status": "unavailable", "reason": "; ".join(problems)})
            return _json(start_response, 200, {"status": "ready"})
        return _json(start_response, 404, {"detail": f"No resource at {path}.", "code": "not_found"})

    return app


def _text(start_response: StartResponse, status: int, text: str) -> list[bytes]:
    payload = text.encode()
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="metrics"'))
    start_response(f"{status} {'Unauthorized' if status == 401 else 'Forbidden'}", headers)
    return [payload]


def _json(start_response: StartResponse, status: int, body: dict) -> list[bytes]:
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
    payload = json.dumps(body).encode()
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def serve(celery_app: Any, registry: Any, *, address: str, port: int) -> Any:
    """Start the server in a daemon thread; returns the server (``shutdown()`` stops it)."""
    server = make_server(
        address, port, worker_http_app(celery_app, registry), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="worker-http", daemon=True)
    thread.start()
    return server
