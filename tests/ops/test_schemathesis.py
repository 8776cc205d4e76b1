"""Schemathesis against the running platform: every phase, a bounded time, no server error, no schema mismatch.

gunicorn serves a copy of the test database of its own (nothing it writes reaches other tests),
with tasks queued to an in-memory broker that nothing consumes; schemathesis authenticates with
an API key that has every scope. The run is seeded and deterministic so that it does not flake,
and bounded by SCHEMATHESIS_MAX_SECONDS (default 150 s, about 3 minutes with the set-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from cryptography.fernet import Fernet

from tests.ops.conftest import ROOT, database_copy, free_port, platform_environment, stop, wait_for

MAX_SECONDS = int(os.environ.get("SCHEMATHESIS_MAX_SECONDS", "150"))
# transaction=True: the session then sets up the test database (the template), and no transaction of
# this test holds it open while it is copied.
pytestmark = [
    pytest.mark.schemathesis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(MAX_SECONDS + 600),  # set-up and the run itself take longer on a loaded machine
]

SEED = 20261201
# Every check that compares the answers with the schema. Not run: positive_data_acceptance and
# negative_data_rejection, which fault the contract's cross-field rules (e.g. "multiple_lines must be
# 'No phone service' when phone_service is false"), which OpenAPI 3.0 cannot express.
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance,missing_required_header,unsupported_method,use_after_free,"
    "ensure_resource_availability,ignored_auth"
)


# One process (Django starts once): 1,000 customers, a model trained on them, a key with every scope.
SEED_DATA = """
from django.core.management import call_command
from accounts.models import ALL_SCOPES, Department
from accounts.services import api_key_create
call_command("import_telco_csv", "{sample}", source="schemathesis")
call_command("train_model", data="{sample}", algorithm="logistic", activate=True)
department, _ = Department.objects.get_or_create(name="fuzz")
key, plaintext = api_key_create(department=department, name="schemathesis", scopes=sorted(ALL_SCOPES))
print("KEY", plaintext, key.pk)
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def fuzz_platform(django_db_setup, django_db_blocker, tmp_path):  # type: ignore[no-untyped-def]
    with database_copy("schemathesis", django_db_blocker) as database_url:
        port = free_port()
        env = platform_environment(database_url, tmp_path / "var", "schemathesis")
        # Data-source passwords are stored encrypted; production refuses to store one without a key.
        env["DATA_SOURCE_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
        env.update(
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            SECURE_SSL_REDIRECT="false",
            CELERY_BROKER_URL="memory://",
            LOG_LEVEL="WARNING",
            GUNICORN_BIND=f"127.0.0.1:{port}",
            WEB_CONCURRENCY="2",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"),
        )
        sample = tmp_path / "customers.csv"
        lines = (ROOT / "data" / "telco_customer_churn.csv").read_text().splitlines()
        sample.write_text("\n".join(lines[:1001]) + "\n")
        output = manage(env, "shell", "-c", SEED_DATA.format(sample=str(sample)))
        key, key_id = output.strip().splitlines()[-1].split()[1:]
        log = tmp_path / "gunicorn.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "churn_platform.wsgi:application", "-c", "gunicorn.conf.py"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/healthz", proc=proc, log=log)
            yield base, key, key_id, log
        finally:
            stop(proc)


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(fuzz_platform, tmp_path):
    base, key, key_id, log = fuzz_platform
    report = tmp_path / "report.json"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/api/schema/",
         "-H", f"X-API-Key: {key}", "--checks", CHECKS, "--max-time", str(MAX_SECONDS), "--seed", str(SEED),
         "--generation-deterministic", "--workers", "2", "--request-timeout", "30",
         "--no-color", "--report", "json", "--report-json-path", str(report)],
        cwd=tmp_path, env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.ops.schemathesis_hooks",
                           "SCHEMATHESIS_PROTECTED_KEY_ID": key_id, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=MAX_SECONDS + 240,
    )
    elapsed = time.monotonic() - started
    # The failures, each line cut to 300 characters (a fuzzed URL can be tens of kilobytes), then the summary.
    failures = done.stdout.split("FAILURES", 1)[1] if "FAILURES" in done.stdout else ""
    summary = "\n".join(line[:300] for line in (failures or done.stdout).splitlines())[-8000:]
    print(summary)
    print(f"schemathesis ran {elapsed:.0f} s")
    assert done.returncode == 0, summary + done.stderr[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-5000:]
