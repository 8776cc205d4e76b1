"""Gunicorn settings for the web process: `gunicorn churn_platform.wsgi:application -c gunicorn.conf.py`.

Every value can be overridden from the environment (see .env.example). Prometheus metrics are
kept in multiprocess mode so that /metrics reports the sum over all workers whichever worker
answers the scrape: PROMETHEUS_MULTIPROC_DIR is emptied when gunicorn starts and a worker that
exits has its live gauges removed.

Reloads (HUP) are safe and gapless:
- ``child_exit`` runs inside the master's SIGCHLD handler, so everything it needs is imported here,
  at the top: an import inside the handler, re-entered by a second worker exiting meanwhile,
  killed the master about one HUP in three.
- Old workers keep serving until the new ones are ready. Gunicorn's own reload starts the new
  workers and stops the old ones at once, so nothing was served while the new ones loaded Django
  and the model (10-15 s). Here each new worker warms up in ``post_worker_init`` (one internal
  /readyz call: database, cache, model) and then marks itself ready in GUNICORN_READY_DIR; the
  master stops old workers only once the newest generation is ready (or after
  GUNICORN_RELOAD_READY_TIMEOUT seconds). The listening socket stays open throughout.
- The application is loaded once in the master (``preload_app``): new workers are forks of a
  loaded process, ready in about a second (the warm-up), and share its memory copy-on-write. A
  HUP therefore re-reads this file and restarts the workers on the code already loaded; deploy
  new code by replacing the container (or USR2, then TERM to the old master).
  GUNICORN_PRELOAD=false loads the application in each worker instead: a HUP then loads new code,
  still gapless, but each new worker takes as long to start as a cold one.
"""

from __future__ import annotations

import gc
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

# The variable must be set before any worker imports prometheus_client; this file is read by the
# master before it forks or loads the application.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="churn-prometheus-")
# The request path's database statement and lock timeouts (churn_platform.settings).
os.environ.setdefault("CHURN_PROCESS_ROLE", "web")

# Imported now, never inside a signal handler (see above); after the variable is set.
from django.db import connections
from prometheus_client import multiprocess as prometheus_multiprocess

from churn_platform.multiprocess import reset_multiprocess_dir

preload_app = os.environ.get("GUNICORN_PRELOAD", "true").lower() not in {"0", "false", "no", "off"}
READY_TIMEOUT = float(os.environ.get("GUNICORN_RELOAD_READY_TIMEOUT", "120"))
# Kept across HUPs (this file is executed again on each).
READY_DIR = Path(os.environ.setdefault("GUNICORN_READY_DIR", tempfile.mkdtemp(prefix="churn-gunicorn-ready-")))

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Each worker holds the active model in memory (about 20 MB) and scores on its own CPU.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# The HTTP server's own bounds, stated here because clients meet them (docs/API_CONTRACT.md, "Errors"):
# a request line (method, path and query) over 8,190 bytes, gunicorn's maximum, or a header over
# 8,190 bytes is refused by gunicorn with its own 400 (text/html) before Django sees the request.
# The API's longest legitimate query (filters and a page cursor) is well under 1 KiB.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
limit_request_field_size = int(os.environ.get("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", "8190"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Behind the ingress or a load balancer, trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# /dev/shm keeps the worker heartbeat off a possibly slow or read-only container file system.
_shm = "/dev/shm"  # noqa: S108 - gunicorn's documented choice for the heartbeat files
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _shm if os.path.isdir(_shm) else None)

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "INFO").lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'

_log_format = os.environ.get("LOG_FORMAT") or ("json" if os.environ.get("DJANGO_ENV") == "production" else "text")
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "churn_infra.logging.RequestIdFilter"},
        "skip_probes": {"()": "churn_infra.logging.SkipSuccessfulProbesFilter"},
    },
    "formatters": {
        "json": {
            "()": "churn_infra.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {
            "()": "churn_infra.logging.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": _log_format,
            "filters": ["request_id"],
            "stream": "ext://sys.stderr",
        },
        "access_console": {
            "class": "logging.StreamHandler",
            "formatter": _log_format,
            "filters": ["request_id", "skip_probes"],
            "stream": "ext://sys.stdout",
        },
    },
    # Django replaces the root logger's configuration in each worker with settings.LOGGING.
    "root": {"level": "WARNING", "handlers": ["error_console"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access_console"], "propagate": False},
    },
}


def on_starting(server: object) -> None:
    reset_multiprocess_dir()


def child_exit(server: object, worker: object) -> None:
    """Runs in the master's SIGCHLD handler: no imports, no locks, nothing that can re-enter."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        prometheus_multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
    (READY_DIR / str(worker.pid)).unlink(missing_ok=True)  # type: ignore[attr-defined]


def when_ready(server: Any) -> None:
    """Replace the master's worker bookkeeping with the gapless one (once, at start)."""
    READY_DIR.mkdir(parents=True, exist_ok=True)
    plain = server.manage_workers
    waiting_since: list[float] = []

    def manage_workers() -> None:
        workers = sorted(server.WORKERS.items(), key=lambda item: item[1].age)
        excess = len(workers) - server.num_workers
        if excess > 0:
            newest = [pid for pid, _ in workers[excess:]]
            ready = all((READY_DIR / str(pid)).exists() for pid in newest)
            waiting_since[:] = waiting_since or [time.monotonic()]
            if not ready and time.monotonic() - waiting_since[0] < READY_TIMEOUT:
                return  # the old workers go on serving while the new ones warm up
            if not ready:
                server.log.warning("New workers not ready after %s s; stopping the old ones anyway", READY_TIMEOUT)
        waiting_since.clear()
        plain()

    server.manage_workers = manage_workers


def post_worker_init(worker: Any) -> None:
    """Warm up, then tell the master this worker is ready (see the module docstring).

    The warm-up is one /readyz call through the application: it opens the database and cache
    connections and loads the active model, so the first real request is not the slow one.
    Then everything loaded so far (Django, numpy, the model) is moved out of the garbage
    collector's reach: a full collection would otherwise walk those objects again and again,
    and such pauses showed up as 100 ms outliers on 1,000-customer batch requests."""
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": "/readyz", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "QUERY_STRING": "",
    }
    try:
        body = worker.wsgi(environ, lambda *args: None)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()
    except Exception as exc:  # a dependency down: the worker still serves (503s), so it is ready
        worker.log.warning("Warm-up failed: %s", exc)
    gc.collect()
    gc.freeze()
    (READY_DIR / str(os.getpid())).touch()


def post_fork(server: object, worker: object) -> None:
    """A preloaded master must never hand its database connections to the workers it forks."""
    if preload_app:
        for conn in connections.all(initialized_only=True):
            conn.inc_thread_sharing()
            conn.close()
            conn.dec_thread_sharing()
