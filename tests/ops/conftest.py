"""Fixtures and helpers that run the platform for real: gunicorn with two workers, a Celery worker, Prometheus.

The processes use a copy of the migrated test database (PostgreSQL ``CREATE DATABASE ... TEMPLATE``)
so that what they write never leaks into other tests, and the Redis database the suite was given.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOST = "churn.test"
# Production mode redirects plain HTTP; behind the ingress every request arrives marked HTTPS.
HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package; .ci/run installs it)")
    return path


def wait_for(url: str, *, timeout: float = 40.0, headers: dict | None = None, proc: subprocess.Popen | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            output = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered:\n{output}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, headers=headers, timeout=2).status_code < 500:
                return
        time.sleep(0.2)
    output = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"{url} did not answer within {timeout}s:\n{output}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class LivePlatform:
    """A running copy of the platform and what the tests need to talk to it."""

    base_url: str
    env: dict[str, str]
    api_key: str
    multiproc_dir: Path
    log_out: Path
    log_err: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def get(self, path: str, **kwargs: object) -> requests.Response:
        headers = {**HEADERS, **kwargs.pop("headers", {})}  # type: ignore[arg-type]
        return requests.get(self.base_url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        headers = {**HEADERS, **kwargs.pop("headers", {})}  # type: ignore[arg-type]
        return requests.post(self.base_url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """Output of ``python manage.py ARGS`` run with ``env``; fails the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _pg_connect(dbname: str):  # type: ignore[no-untyped-def]
    import psycopg2
    from django.db import connections

    db = connections["default"].settings_dict
    conn = psycopg2.connect(
        dbname=dbname, user=db.get("USER") or None, password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None, port=db.get("PORT") or None,
    )
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def database_copy(suffix: str, django_db_blocker) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """URL of a copy of the migrated test database (``<test db>_<suffix>``), dropped afterwards."""
    from django.db import connections

    db = connections["default"].settings_dict  # NAME is the test database's here
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the live-process tests need PostgreSQL (set DATABASE_URL); SQLite test databases live in memory")
    template = db["NAME"]
    copy = f"{template}_{suffix}"[:63]
    with django_db_blocker.unblock():
        connections.close_all()
        conn = _pg_connect("postgres")
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()",
                [template, copy],
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{copy}"')
            cur.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
        conn.close()
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    try:
        yield f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{copy}"
    finally:
        conn = _pg_connect("postgres")
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [copy])
            cur.execute(f'DROP DATABASE IF EXISTS "{copy}"')
        conn.close()


@pytest.fixture(scope="session")
def live_database_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    """URL of a copy of the migrated test database, dropped at the end of the session."""
    with database_copy("live", django_db_blocker) as url:
        yield url


def platform_environment(database_url: str, var_dir: Path, cache_prefix: str) -> dict[str, str]:
    """Production-mode environment for the platform's processes on ``database_url``."""
    from django.conf import settings

    redis_url = os.environ.get("REDIS_URL") or ""
    if not redis_url:
        pytest.skip("the live-process tests need Redis (set REDIS_URL)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_", "CELERY_", "PROMETHEUS_"))}
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS=HOST,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL or redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        CACHE_KEY_PREFIX=f"{cache_prefix}-{secrets.token_hex(4)}",
        CHURN_VAR_DIR=str(var_dir),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def live_env(live_database_url, tmp_path_factory) -> dict[str, str]:
    """Production-mode environment for the platform's processes."""
    return platform_environment(live_database_url, tmp_path_factory.mktemp("live-var"), "ops-live")


def start_gunicorn(base_env: dict[str, str], workdir: Path, *, service: str = "churn-web") -> LivePlatform:
    """gunicorn -c gunicorn.conf.py with two workers on a free 127.0.0.1 port, answering /healthz.

    The caller stops ``platform.processes`` (and whatever it appends to them) with ``stop``."""
    multiproc = workdir / "prometheus"
    port = free_port()
    env = {
        **base_env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "CHURN_SERVICE_NAME": service,
    }
    platform = LivePlatform(
        base_url=f"http://127.0.0.1:{port}", env=env, api_key="", multiproc_dir=multiproc,
        log_out=workdir / "stdout.log", log_err=workdir / "stderr.log",
    )
    with platform.log_out.open("w") as out, platform.log_err.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "churn_platform.wsgi:application", "-c", "gunicorn.conf.py"],
            cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True,
        )
    platform.processes.append(proc)
    try:
        wait_for(platform.base_url + "/healthz", proc=proc, log=platform.log_err)
    except BaseException:
        stop(proc)
        raise
    return platform


def start_worker(
    platform: LivePlatform, workdir: Path, queues: str, *extra: str
) -> tuple[str, Path, subprocess.Popen]:
    """A real Celery worker (prefork, two children) on ``queues``, serving metrics and probes on a
    free port; appended to ``platform.processes``. Returns (url, log, process)."""
    port = free_port()
    env = {
        **platform.env,
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
        "CELERY_METRICS_PORT": str(port),
        "CELERY_METRICS_ADDRESS": "127.0.0.1",
        "CHURN_SERVICE_NAME": "churn-worker",
    }
    env.pop("GUNICORN_BIND", None)
    log = workdir / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "churn_platform", "worker", "-l", "INFO", "-Q", queues,
             "-c", "2", *extra, "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    platform.processes.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/healthz", proc=proc, log=log)
    return url, log, proc


@pytest.fixture(scope="module")
def live_platform(live_env, tmp_path_factory) -> Iterator[LivePlatform]:
    """gunicorn -c gunicorn.conf.py with two workers on a free 127.0.0.1 port."""
    output = manage(live_env, "create_api_key", "--department", "ops-live", "--name", "live-client")
    api_key = output.strip().splitlines()[-1].strip()
    platform = start_gunicorn(live_env, tmp_path_factory.mktemp("gunicorn"))
    platform.api_key = api_key
    try:
        yield platform
    finally:
        for process in platform.processes:
            stop(process)


@pytest.fixture(scope="module")
def live_worker(live_platform, tmp_path_factory) -> Iterator[tuple[str, Path, str]]:
    """A real Celery worker (prefork, two children) serving metrics and probes; yields (url, log, queue)."""
    queue = f"ops-test-{secrets.token_hex(4)}"
    url, log, proc = start_worker(live_platform, tmp_path_factory.mktemp("worker"), queue,
                                  "--include", "tests.ops.worker_tasks", "-n", f"{queue}@%h")
    yield url, log, queue
    stop(proc)


# --- a real Prometheus ---------------------------------------------------------------------

RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))


@dataclass
class PrometheusServer:
    """A running Prometheus scraping the platform every second and evaluating its rules."""

    url: str
    log: Path
    process: subprocess.Popen

    def query(self, expr: str) -> list[dict]:
        """The instant vector ``expr`` returns now; fails the test when Prometheus refuses it."""
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def rule_groups(self) -> list[dict]:
        return requests.get(f"{self.url}/api/v1/rules", timeout=5).json()["data"]["groups"]


@contextlib.contextmanager
def running_prometheus(workdir: Path, targets: dict[str, str], *, data_dir: Path | None = None,
                       port: int | None = None) -> Iterator[PrometheusServer]:
    """Prometheus on 127.0.0.1 scraping ``targets`` ({job: "host:port"}) every second with the
    platform's rules, its TSDB in ``data_dir``; stopped (by its pid) on exit."""
    binary = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    with log.open("a") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={data_dir or workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready", proc=proc, log=log)
        yield PrometheusServer(url=f"http://127.0.0.1:{port}", log=log, process=proc)
    finally:
        stop(proc)
