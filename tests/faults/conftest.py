"""The fault suite's processes: its own Redis, a TCP proxy in front of PostgreSQL, gunicorn, and
Celery workers (tests/jobs' fixture), all on 127.0.0.1, each stopped by its PID by the fixture
that started it.

``fault_env`` is a production-mode environment on a copy of the migrated test database
(``<test db>_faults``, made with CREATE DATABASE ... TEMPLATE and dropped at the end) with one
trained, active model, so that the platform under fault scores for real.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.jobs.conftest import celery_workers, store_customers  # noqa: F401 - fixtures reused here
from tests.ops.conftest import _pg_connect, free_port, require_binary, stop, wait_for

ROOT = Path(__file__).resolve().parents[2]
HOST = "churn.test"
HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


# --- Redis of our own -----------------------------------------------------------------------


class RedisServer:
    """redis-server on a free 127.0.0.1 port, no persistence; killed and restarted by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server")
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


# --- a TCP proxy the test owns ----------------------------------------------------------------


class TcpProxy:
    """127.0.0.1:<port> -> upstream. ``cut()`` drops every connection and refuses new ones (as a
    database restart or a network cut does); ``freeze()`` keeps connections open and forwards
    nothing (a hung server); ``restore()`` goes back to forwarding."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcp-proxy")
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "cut":
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        source.settimeout(0.2)
        try:
            while not self._closed.is_set():
                if self.mode == "freeze":
                    time.sleep(0.05)
                    continue
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _drop_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self) -> None:
        self.mode = "cut"
        self._drop_all()

    def freeze(self) -> None:
        self.mode = "freeze"

    def restore(self) -> None:
        if self.mode == "freeze":
            self._drop_all()
        self.mode = "up"

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.listener.close()
        self._drop_all()


@pytest.fixture
def pg_proxy(settings) -> Iterator[TcpProxy]:  # type: ignore[no-untyped-def]
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    db = connection.settings_dict
    proxy = TcpProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
    yield proxy
    proxy.close()


# --- the platform under fault -----------------------------------------------------------------


@pytest.fixture(scope="session")
def fault_database(django_db_setup, django_db_blocker) -> Iterator[dict[str, str]]:
    """A copy of the migrated test database for the processes under fault: name and parts of its URL."""
    from django.db import connections

    db = connections["default"].settings_dict
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the fault suite needs PostgreSQL (set DATABASE_URL)")
    template, copy = db["NAME"], f"{db['NAME']}_faults"[:63]
    with django_db_blocker.unblock():
        connections.close_all()
        conn = _pg_connect("postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s)"
                        " AND pid <> pg_backend_pid()", [template, copy])
            cur.execute(f'DROP DATABASE IF EXISTS "{copy}"')
            cur.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
        conn.close()
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    yield {"name": copy, "auth": f"{user}{password}", "host": db.get("HOST") or "127.0.0.1",
           "port": str(db.get("PORT") or 5432)}
    conn = _pg_connect("postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [copy])
        cur.execute(f'DROP DATABASE IF EXISTS "{copy}"')
    conn.close()


def database_url(database: dict[str, str], port: int | None = None) -> str:
    return f"postgres://{database['auth']}@{database['host']}:{port or database['port']}/{database['name']}"


def query(database: dict[str, str], sql: str, params: list | None = None) -> list[tuple]:
    conn = _pg_connect(database["name"])
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or [])
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="session")
def fault_env(fault_database, tmp_path_factory) -> dict[str, str]:
    """Production-mode environment on the copy, with a trained active model and an API key."""
    var_dir = tmp_path_factory.mktemp("faults-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "CELERY_", "PROMETHEUS_"))}
    env.update(
        DJANGO_ENV="production", DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS=HOST,
        DATABASE_URL=database_url(fault_database), CHURN_VAR_DIR=str(var_dir), LOG_FORMAT="text",
        LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1", CELERY_TASK_ALWAYS_EAGER="true",
        # the suite's own Redis in the processes that need one (own_redis)
        REDIS_URL="", CACHE_KEY_PREFIX=f"faults-{secrets.token_hex(4)}",
        # On a busy CI machine a request can sit in the listen backlog for seconds; these tests count
        # 503s as outage answers, so load shedding (tested on its own) must not add any.
        REQUEST_QUEUE_TIMEOUT_SECONDS="120",
    )
    # A logistic model on the first 1,500 rows: a real model, trained in seconds.
    sample = var_dir / "train.csv"
    with (ROOT / "data" / "telco_customer_churn.csv").open() as source:
        sample.write_text("".join(line for _, line in zip(range(1501), source, strict=False)))
    done = subprocess.run(
        [sys.executable, "manage.py", "train_model", "--data", str(sample), "--activate", "--algorithm", "logistic"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, "manage.py", "create_api_key", "--department", "faults", "--name", "load"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    env["FAULTS_API_KEY"] = done.stdout.strip().splitlines()[-1].strip()
    return env


@dataclass
class Gunicorn:
    base_url: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None


@pytest.fixture
def gunicorn(fault_env, tmp_path) -> Iterator[Callable[..., Gunicorn]]:
    """gunicorn(**env) starts `gunicorn -c gunicorn.conf.py` on a free 127.0.0.1 port."""
    started: list[subprocess.Popen] = []

    def start(**extra: str) -> Gunicorn:
        port = free_port()
        log = tmp_path / f"gunicorn-{port}.log"
        env = {**fault_env, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2",
               "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"prometheus-{port}"), "GUNICORN_ACCESS_LOG": "", **extra}
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "churn_platform.wsgi:application", "-c", "gunicorn.conf.py"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        started.append(proc)
        server = Gunicorn(f"http://127.0.0.1:{port}", proc, log)
        wait_for(server.base_url + "/healthz", proc=proc, log=log, timeout=90)
        return server

    yield start
    for proc in started:
        stop(proc)


# --- load -------------------------------------------------------------------------------------


def _proper_503(response: requests.Response) -> bool:
    try:
        body = response.json()
        return body.get("code") == "service_unavailable" and bool(body.get("request_id")) and int(
            response.headers["Retry-After"]) > 0
    except (ValueError, KeyError):
        return False


@dataclass
class Load:
    """A bounded load loop against 127.0.0.1: POST predictions with full records from a few threads."""

    base_url: str
    api_key: str
    threads: int = 4
    timeout: float = 10.0
    results: list[tuple[float, int | str, str, float]] = field(default_factory=list)  # (t, status, id, seconds)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _loop(self, n: int) -> None:
        from tests.factories import record

        session = requests.Session()
        i = 0
        while not self._stop.is_set():
            i += 1
            customer = f"L{n}-{i:06d}-{secrets.token_hex(2)}"
            started = time.monotonic()
            try:
                response = session.post(
                    self.base_url + "/api/v1/predictions/", json=record(customer_id=customer),
                    headers={**HEADERS, "X-API-Key": self.api_key}, timeout=self.timeout,
                )
                status: int | str = response.status_code
                if status == 503 and not _proper_503(response):
                    status = "503 without the JSON body or Retry-After"
            except requests.RequestException as exc:
                status = type(exc).__name__
            self.results.append((started, status, customer, time.monotonic() - started))
            time.sleep(0.02)

    def __enter__(self) -> Load:
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(n,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(timeout=self.timeout + 5)

    def between(self, start: float, end: float) -> list[tuple[float, int | str, str, float]]:
        return [r for r in self.results if start <= r[0] < end]

    def created(self) -> list[str]:
        return [r[2] for r in self.results if r[1] == 201]


def shares(results: list[tuple[float, int | str, str, float]]) -> dict[str, str]:
    """{status: 'count (percent)'} of a window, as the suite prints it."""
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r[1])] = counts.get(str(r[1]), 0) + 1
    total = sum(counts.values()) or 1
    return {k: f"{v} ({100 * v / total:.0f}%)" for k, v in sorted(counts.items())}


def assert_every_201_stored(database: dict[str, str], created: list[str]) -> None:
    assert created, "no request succeeded at all"
    stored = {row[0] for row in query(
        database, "SELECT customer_id FROM predictions_prediction WHERE customer_id = ANY(%s)", [created])}
    assert set(created) <= stored, f"{len(set(created) - stored)} answered 201 but not stored"
