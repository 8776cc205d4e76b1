"""Gunicorn settings for the web process: `gunicorn churn_platform.wsgi:application -c gunicorn.conf.py`.

Every value can be overridden from the environment (see .env.example). Prometheus metrics are
kept in multiprocess mode so that /metrics reports the sum over all workers whichever worker
answers the scrape: PROMETHEUS_MULTIPROC_DIR is emptied when gunicorn starts and a worker that
exits has its live gauges removed.
"""

from __future__ import annotations

import os
import tempfile

# The variable must be set before any worker imports prometheus_client; this file is read by the
# master before it forks or loads the application.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="churn-prometheus-")

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Each worker holds the active model in memory (about 20 MB) and scores on its own CPU.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
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
        "request_id": {"()": "churn_platform.logging.RequestIdFilter"},
        "skip_probes": {"()": "churn_platform.logging.SkipSuccessfulProbesFilter"},
    },
    "formatters": {
        "json": {
            "()": "churn_platform.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {
            "()": "churn_platform.logging.TextFormatter",
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
    from churn_platform.multiprocess import reset_multiprocess_dir

    reset_multiprocess_dir()


def child_exit(server: object, worker: object) -> None:
    from churn_platform.multiprocess import mark_dead

    mark_dead(worker.pid)  # type: ignore[attr-defined]


def post_worker_init(worker: object) -> None:
    """Move everything loaded so far (Django, numpy, the model) out of the garbage collector's
    reach: a full collection would otherwise walk those objects again and again, and such
    pauses showed up as 100 ms outliers on 1,000-customer batch requests."""
    import gc

    gc.collect()
    gc.freeze()
