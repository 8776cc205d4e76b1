from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_without_an_active_model_is_503_with_the_reason(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert "no model version is active" in body["reason"]


def _run_in_subprocess(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "churn_platform.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_readyz_with_the_database_down_is_503():
    # A closed port stands in for a database that went away.
    code = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz'); print(r.status_code); print(json.dumps(r.json()))"
    )
    result = _run_in_subprocess(
        code, DATABASE_URL="postgres://postgres@127.0.0.1:9/churn", DATABASE_CONNECT_TIMEOUT="2", DJANGO_ENV="test"
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.strip().splitlines()[-2:]
    assert status == "503"
    assert "database unavailable" in body
    assert '"model": "skipped: database unavailable"' in body


def test_check_deploy_is_clean_in_production_mode():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": "p7c0-" + "k3y-x9" * 12,
            "DJANGO_ALLOWED_HOSTS": "churn.example.com",
            "DATABASE_URL": "sqlite:///tmp/never-opened.sqlite3",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_development_secret_key():
    result = _run_in_subprocess(
        "import django; django.setup()",
        DJANGO_ENV="production",
        DJANGO_ALLOWED_HOSTS="x.example.com",
        DJANGO_SECRET_KEY="",
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_metrics_endpoint(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests_total_by_method_total" in response.content


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/customers/",
        "/api/v1/customers/bulk/",
        "/api/v1/customers/{customer_id}/",
        "/api/v1/auth/token/",
        "/api/v1/outcomes/",
    ]:
        assert path in paths
    assert client.get("/api/docs/").status_code == 200
