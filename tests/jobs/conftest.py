"""Fixtures of the batch scoring and retraining tests: stored customers, and real Celery workers.

``store_customers(n)`` writes n customers resampled from the bundled Telco data (ids
``J-000000``...), with their Telco churn label when asked. ``celery_workers`` starts real
``celery worker`` processes against the test database and a Redis broker (CELERY_BROKER_URL,
which must differ from REDIS_URL: the cache is flushed between tests), for the tests whose
behaviour depends on a worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.db import connection

from churn_ml.schema import FIELD_ORDER

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_customers(db, demo_training_data):
    """store_customers(n, *, prefix="J", labels=False, seed=0, **overrides) -> list of customer ids."""
    from customers.models import Customer, Outcome

    frame, churned = demo_training_data

    def make(n: int, *, prefix: str = "J", labels: bool = False, seed: int = 0, **overrides):  # type: ignore[no-untyped-def]
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(frame), n)
        records = frame.iloc[rows].to_dict("records")
        customers = []
        for i, record in enumerate(records):
            fields = {name: record[name] for name in FIELD_ORDER}
            for name in ("total_charges", "age", "income"):
                value = fields[name]
                fields[name] = None if value is None or value != value else value
            fields["tenure_months"] = int(fields["tenure_months"])
            fields.update(overrides)
            customers.append(Customer(customer_id=f"{prefix}-{i:06d}", source="tests", **fields))
        Customer.objects.bulk_create(customers, batch_size=2000)
        if labels:
            from django.utils import timezone

            stored = dict(
                Customer.objects.filter(customer_id__startswith=f"{prefix}-").values_list("customer_id", "pk")
            )
            when = timezone.now()
            Outcome.objects.bulk_create(
                [Outcome(customer_id=stored[c.customer_id], churned=bool(churned[r]), observed_at=when, source="tests")
                 for c, r in zip(customers, rows.tolist(), strict=True)],
                batch_size=2000,
            )
        return [c.customer_id for c in customers]

    return make


def _broker_url() -> str | None:
    broker = os.environ.get("CELERY_BROKER_URL", "")
    cache = os.environ.get("REDIS_URL", "")
    if not broker.startswith("redis://") or broker == cache:
        return None
    return broker


class Workers:
    """Real `celery worker` processes (prefork, one child each) on the batch and training queues."""

    def __init__(self, broker: str, env_extra: dict[str, str]) -> None:
        self.broker = broker
        self.env_extra = env_extra
        self.procs: list[subprocess.Popen] = []

    def start(self, count: int, *, queues: str = "batch,training") -> None:
        db = connection.settings_dict
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/"
                            f"{db['NAME']}",
            "CELERY_BROKER_URL": self.broker,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "CELERY_METRICS_PORT": "0",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            **self.env_extra,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        start = len(self.procs)
        for i in range(start, start + count):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "churn_platform", "worker", "-Q", queues, "-c", "1",
                 "-n", f"test{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
                cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        from churn_platform.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(app.control.ping(timeout=0.5) or []) >= len([p for p in self.procs if p.poll() is None]):
                return
        raise RuntimeError("the Celery workers did not start")

    def kill_group(self, index: int) -> None:
        """SIGKILL a whole worker (its main process and its pool child), as a lost machine would."""
        os.killpg(self.procs[index].pid, signal.SIGKILL)
        self.procs[index].wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.fixture
def celery_workers(transactional_db, settings) -> Iterator[Workers]:
    """Send tasks to a real broker and start workers with ``celery_workers.start(n)``.

    The broker's Redis database is emptied before and after: it belongs to the tests. Extra
    environment for the workers goes in ``celery_workers.env_extra`` before ``start``.
    """
    broker = _broker_url()
    if connection.vendor != "postgresql" or broker is None:
        pytest.skip("needs PostgreSQL and a Redis CELERY_BROKER_URL other than REDIS_URL")
    import redis

    from churn_platform.celery import app

    redis.Redis.from_url(broker).flushdb()
    workers = Workers(broker, {})
    previous = (app.conf.task_always_eager, app.conf.broker_url)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = broker
    app.conf.task_always_eager = False
    app.conf.broker_url = broker
    try:
        yield workers
    finally:
        workers.stop()
        app.conf.task_always_eager, app.conf.broker_url = previous
        redis.Redis.from_url(broker).flushdb()


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "the condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

