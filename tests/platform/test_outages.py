"""Issue 11, findings 11, 12 and 14 in one process: outages answer 503 (never 500), a dead or
frozen Redis does not stop API keys or scoring, the request path has database timeouts, /readyz
is bounded, and a request that waited too long in the queue is shed without doing the work.

The servers these tests stand up (a silent listener that accepts and never answers) listen on
127.0.0.1 and are closed by the test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.db import OperationalError

from tests.factories import record

ROOT = Path(__file__).resolve().parents[2]
PREDICT = "/api/v1/predictions/"


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a frozen Redis or PostgreSQL."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def redis_cache_at(settings, port: int) -> None:  # type: ignore[no-untyped-def]
    """Point the default cache at a Redis on 127.0.0.1:port (with the settings' own timeouts)."""
    from churn_infra import cache_backends

    options = dict(settings.CACHES["default"].get("OPTIONS", {})) if "Redis" in settings.CACHES["default"][
        "BACKEND"] else {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    settings.CACHES = {"default": {
        "BACKEND": "churn_infra.cache_backends.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": options,
    }}
    getattr(cache_backends, "_BREAKERS", {}).clear()


# --- finding 11: Redis outage ---------------------------------------------------------------


@pytest.mark.django_db
def test_with_redis_down_api_keys_are_verified_from_postgres_and_scoring_goes_on(
    settings, key_client, active_version, caplog
):
    redis_cache_at(settings, closed_port())
    for i in range(3):
        response = key_client.post(PREDICT, record(customer_id=f"R-{i}"), format="json")
        assert response.status_code == 201, response.content
    from predictions.models import Prediction

    assert Prediction.objects.filter(customer_id__startswith="R-").count() == 3


@pytest.mark.django_db
def test_a_frozen_redis_costs_a_request_at_most_two_seconds(settings, key_client, active_version, silent_server):
    redis_cache_at(settings, silent_server.port)
    timings = []
    for i in range(3):
        started = time.monotonic()
        response = key_client.post(PREDICT, record(customer_id=f"F-{i}"), format="json")
        timings.append(time.monotonic() - started)
        assert response.status_code == 201, response.content
    assert max(timings) <= 2.0, timings
    # the breaker refuses at once after the first timeout: later requests do not wait at all
    assert min(timings[1:]) < 0.5, timings


@pytest.mark.django_db
def test_with_redis_down_rate_limiting_fails_open_with_a_log_line_and_a_metric(
    settings, key_client, caplog, monkeypatch
):
    from accounts import throttling
    from churn_infra.metrics import CACHE_ERRORS, RATE_LIMIT_DEGRADED

    monkeypatch.setattr(throttling, "_degraded_logged_at", -1e9)  # the line is logged once a minute

    redis_cache_at(settings, closed_port())
    before = RATE_LIMIT_DEGRADED._value.get()
    errors_before = sum(m.value for m in CACHE_ERRORS.collect()[0].samples if m.name.endswith("_total"))
    with caplog.at_level("WARNING"):
        assert key_client.get("/api/v1/customers/").status_code == 200
        assert key_client.get("/api/v1/customers/").status_code == 200
    assert RATE_LIMIT_DEGRADED._value.get() - before == 2
    assert sum(m.value for m in CACHE_ERRORS.collect()[0].samples if m.name.endswith("_total")) > errors_before
    assert any("Rate limiting degraded" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_the_model_stamp_reader_survives_a_redis_error(settings, active_version):
    from modelregistry import loader

    redis_cache_at(settings, closed_port())
    loader.forget_local()
    assert loader.active_model().version == active_version.version


# --- finding 12: outages answer 503 ---------------------------------------------------------


def test_the_service_unavailable_base_is_shared_and_the_model_error_is_one():
    from churn_infra.outages import ServiceUnavailable
    from modelregistry.loader import ModelUnavailable

    assert issubclass(ModelUnavailable, ServiceUnavailable)
    source = (ROOT / "churn_infra" / "exceptions.py").read_text()
    assert "modelregistry" not in source  # the handler knows the base only


@pytest.mark.parametrize(
    "error",
    [OperationalError("server closed the connection unexpectedly"), redis.ConnectionError("refused"),
     redis.TimeoutError("Timeout reading from socket")],
    ids=["database", "redis-connection", "redis-timeout"],
)
@pytest.mark.django_db
def test_a_dependency_error_in_a_view_is_a_503_with_retry_after(key_client, monkeypatch, error):
    from customers.api import views

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise error

    monkeypatch.setattr(views.CustomerViewSet, "list", broken)
    response = key_client.get("/api/v1/customers/", HTTP_X_REQUEST_ID="outage-test-1234")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert body["request_id"] == "outage-test-1234"
    assert "unavailable" in body["detail"]


def _in_subprocess(code: str, **env: str) -> list[str]:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "churn_platform.settings", "DJANGO_ENV": "test", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


CLIENT_CALLS = (
    "import django, json, time; django.setup();"
    "from django.test import Client; c = Client(raise_request_exception=False);"
    "r = c.get('/api/v1/customers/', HTTP_X_API_KEY='chp_abcdefgh1234_0123456789abcdef0123456789abcdef');"
    "print(r.status_code, r.get('Retry-After')); print(r.content.decode());"
    "c.cookies['sessionid'] = 'a' * 32; r = c.get('/staff/'); print(r.status_code, r.get('Retry-After'));"
    "t = time.monotonic(); r = c.get('/healthz'); print(r.status_code, round(time.monotonic() - t, 2));"
    "t = time.monotonic(); r = c.get('/readyz'); print(r.status_code, round(time.monotonic() - t, 2))"
)


def test_with_the_database_down_api_and_pages_answer_503_and_healthz_200():
    lines = _in_subprocess(CLIENT_CALLS, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/churn")
    api_status, api_retry = lines[0].split()
    assert api_status == "503", lines
    assert int(api_retry) > 0
    body = json.loads(lines[1])
    assert body["code"] == "service_unavailable", body
    assert body["request_id"]
    assert lines[2].split()[0] == "503", lines
    assert lines[3].split()[0] == "200", lines
    assert lines[4].split()[0] == "503", lines


def test_with_postgres_frozen_readyz_answers_within_two_seconds(silent_server):
    lines = _in_subprocess(
        CLIENT_CALLS, DATABASE_URL=f"postgres://postgres@127.0.0.1:{silent_server.port}/churn",
        DATABASE_CONNECT_TIMEOUT="30",
    )
    healthz_status, healthz_seconds = lines[3].split()
    assert healthz_status == "200", lines
    assert float(healthz_seconds) < 0.5, lines
    readyz_status, readyz_seconds = lines[4].split()
    assert readyz_status == "503", lines
    assert float(readyz_seconds) <= 2.0, lines


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_web_process_has_statement_and_lock_timeouts_and_workers_do_not():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    db = connection.settings_dict
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    test_db = f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"
    code = (
        "import django; django.setup(); from django.db import connection;"
        "c = connection.cursor(); c.execute('SHOW statement_timeout'); print(c.fetchone()[0]);"
        "c.execute('SHOW lock_timeout'); print(c.fetchone()[0])"
    )
    web = _in_subprocess(code, DATABASE_URL=test_db, CHURN_PROCESS_ROLE="web", DATABASE_STATEMENT_TIMEOUT="1.5",
                         DATABASE_LOCK_TIMEOUT="0.5")
    assert web == ["1500ms", "500ms"]
    worker = _in_subprocess(code, DATABASE_URL=test_db, CHURN_PROCESS_ROLE="")
    assert worker == ["0", "0"]
    slow = _in_subprocess(
        "import django; django.setup();"
        "from django.test import Client; from django.db import connection;"
        "from churn_infra.exceptions import api_exception_handler;"
        "import time; t = time.monotonic()\n"
        "try:\n connection.cursor().execute('SELECT pg_sleep(5)')\n"
        "except Exception as exc:\n"
        " r = api_exception_handler(exc, {}); print(r.status_code, round(time.monotonic() - t, 1))",
        DATABASE_URL=test_db, CHURN_PROCESS_ROLE="web", DATABASE_STATEMENT_TIMEOUT="0.5",
    )
    status, seconds = slow[-1].split()
    assert status == "503", slow
    assert float(seconds) < 2, slow


# --- finding 14: load shedding --------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_that_waited_too_long_in_the_queue_is_shed_without_doing_the_work(key_client, active_version):
    from predictions.models import Prediction

    waited = f"t={time.time() - 8:.3f}"
    response = key_client.post(PREDICT, record(customer_id="SHED-1"), format="json", HTTP_X_REQUEST_START=waited)
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "service_unavailable"
    assert not Prediction.objects.filter(customer_id="SHED-1").exists()
    # milliseconds since the epoch, as HAProxy writes it; a fresh request is served
    fresh = f"t={int(time.time() * 1000)}"
    response = key_client.post(PREDICT, record(customer_id="SHED-2"), format="json", HTTP_X_REQUEST_START=fresh)
    assert response.status_code == 201
    # liveness is never shed
    assert key_client.get("/healthz", HTTP_X_REQUEST_START=waited).status_code == 200


def test_the_kernel_queue_wait_is_read_from_tcp_info():
    from churn_platform.middleware import kernel_wait_seconds

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    client = socket.create_connection(server.getsockname())
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.6)
        accepted, _ = server.accept()
        with accepted:
            waited = kernel_wait_seconds(accepted)
        assert waited is not None
        assert 0.5 <= waited < 5
    finally:
        client.close()
        server.close()
