"""Helpers of the deployment tests: fresh PostgreSQL databases and manage.py in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def postgres_only(settings_dict: dict) -> None:
    if "postgresql" not in settings_dict["ENGINE"]:
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def database_url(settings_dict: dict, name: str) -> str:
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host, port = settings_dict.get("HOST") or "127.0.0.1", settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{name}"


def manage(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    """Run manage.py in a fresh interpreter with this environment; never raises on failure."""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


@pytest.fixture
def fresh_database():
    """fresh_database() -> (name, url): an empty database on the test server, dropped afterwards."""
    from django.db import connection

    postgres_only(connection.settings_dict)
    made: list[str] = []

    def make() -> tuple[str, str]:
        name = f"churn_restore_{uuid.uuid4().hex[:10]}"
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return name, database_url(connection.settings_dict, name)

    yield make
    with connection.cursor() as cursor:
        for name in made:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def child_env(tmp_path):
    """The environment of a child manage.py: this test database, its own cache index, eager tasks."""
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    env.update({
        "DJANGO_ENV": "test",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "DATABASE_URL": database_url(connection.settings_dict, connection.settings_dict["NAME"]),
        "CHURN_VAR_DIR": str(settings.VAR_DIR),
    })
    # Set even to "", prometheus_client writes its multiprocess files into the working directory.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    return env
