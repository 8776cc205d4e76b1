"""The platform running for real: gunicorn with two workers, a Celery worker and a real Prometheus.

Metric totals must be right whichever gunicorn worker answers the scrape; a request's id must
reach the Celery task it starts; Prometheus must scrape web and worker and evaluate the rules.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.multiprocess import MultiProcessCollector

from tests.ops.conftest import ROOT, RULES, running_prometheus
from tests.ops.metrics_text import samples, value

# django_db makes pytest-django create the test database that the live processes copy.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CUSTOMERS = "/api/v1/customers/"


def per_process_api_requests(multiproc_dir: Path) -> dict[str, float]:
    """churn_api_requests_total as each gunicorn worker recorded it, by pid."""
    out: dict[str, float] = {}
    for path in glob.glob(str(multiproc_dir / "counter_*.db")):
        pid = Path(path).stem.split("_")[-1]
        for family in MultiProcessCollector.merge([path], accumulate=False):
            if family.name == "churn_api_requests":
                out[pid] = out.get(pid, 0) + sum(s.value for s in family.samples if s.name.endswith("_total"))
    return out


def test_totals_are_summed_over_gunicorn_workers_whichever_worker_answers(live_platform):
    key = {"X-API-Key": live_platform.api_key}
    labels = {"department": "ops-live", "api_key": "live-client", "status": "200"}
    before = value(live_platform.get("/metrics").text, "churn_api_requests_total", **labels)

    # Concurrent requests until both workers have served some (the kernel spreads the accepts).
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):
            codes = list(pool.map(lambda _: live_platform.get(CUSTOMERS, headers=key).status_code, range(16)))
            assert codes == [200] * 16
            sent += 16
            if sum(1 for v in per_process_api_requests(live_platform.multiproc_dir).values() if v > 0) >= 2:
                break
    per_worker = per_process_api_requests(live_platform.multiproc_dir)
    assert sum(1 for v in per_worker.values() if v > 0) >= 2, per_worker

    # Every scrape, whichever worker serves it, reports the sum over both.
    for _ in range(6):
        text = live_platform.get("/metrics").text
        assert value(text, "churn_api_requests_total", **labels) - before == sent


def test_auth_failures_and_http_metrics_move_across_workers(live_platform):
    before = samples(live_platform.get("/metrics").text)
    bad = {"X-API-Key": "chp_000000000000_" + "y" * 43}
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda _: live_platform.get("/api/v1/customers/", headers=bad).status_code, range(12)))
    assert codes == [401] * 12
    login = live_platform.post("/api/v1/auth/token/", json={"username": "nobody", "password": "wrong-password"})
    assert login.status_code == 401
    after = samples(live_platform.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("churn_auth_failures_total", reason="invalid_api_key") == 12
    assert delta("churn_auth_failures_total", reason="no_active_account") == 1
    assert delta("django_http_responses_total_by_status_view_method_total", status="401") == 13
    assert delta("django_http_requests_latency_seconds_by_view_method_count") >= 13
    assert delta("django_db_execute_total") > 0
    assert value(after, "churn_model_registry_active_versions") == 0
    assert value(after, "churn_celery_queue_depth", queue="batch") >= 0


def test_readiness_reports_the_missing_model_and_probes_ignore_the_host_header(live_platform):
    foreign_host = {"Host": "10.0.0.7:8000"}
    assert requests.get(live_platform.base_url + "/healthz", headers=foreign_host, timeout=5).status_code == 200
    ready = requests.get(live_platform.base_url + "/readyz", headers=foreign_host, timeout=5)
    assert ready.status_code == 503
    assert "no model version is active" in ready.json()["reason"]
    scrape = requests.get(live_platform.base_url + "/metrics", headers=foreign_host, timeout=5)
    assert scrape.status_code == 200, "Prometheus scrapes by pod IP and must not be redirected or refused"
    # The site itself still refuses unknown hosts.
    refused = requests.get(live_platform.base_url + "/api/v1/customers/", headers={**foreign_host,
                           "X-Forwarded-Proto": "https"}, timeout=5)
    assert refused.status_code == 400


def test_web_logs_are_json_with_the_request_id_and_no_secret(live_platform):
    secret_password = "Tr0ub4dor&3-never-logged"
    request_id = "ops-live-request-0001"
    live_platform.get(
        f"/api/v1/customers/?api_key={live_platform.api_key}&password={secret_password}",
        headers={"X-Request-ID": request_id, "X-API-Key": live_platform.api_key},
    )
    live_platform.get("/api/v1/customers/", headers={"X-Request-ID": request_id + "-bad", "X-API-Key": "chp_bad_key"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = live_platform.log_out.read_text() + live_platform.log_err.read_text()
        if request_id + "-bad" in text and request_id in text:
            break
        time.sleep(0.2)
    lines = [line for line in text.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    mine = [r for r in records if r.get("request_id") == request_id]
    assert mine
    assert mine[0]["http"]["status"] == 200
    assert mine[0]["service"] == "churn-web"
    assert any(r.get("request_id") == request_id + "-bad" and r["logger"] == "django.request" for r in records)
    assert live_platform.api_key not in text
    assert live_platform.api_key.split("_")[2] not in text
    assert secret_password not in text
    assert live_platform.env["DJANGO_SECRET_KEY"] not in text


def test_a_request_id_follows_into_the_worker_and_task_outcomes_are_counted(live_platform, live_worker):
    worker_url, worker_log, queue = live_worker
    before = samples(requests.get(worker_url + "/metrics", timeout=5).text)
    code = f"""
import django, os
django.setup()
from churn_platform.celery import app
from churn_infra.logging import set_request_id
set_request_id("ops-live-task-7")
ok = app.send_task("tests.ops.echo", args=["password=hunter2-in-args"], queue="{queue}")
bad = app.send_task("tests.ops.fail", args=["boom"], queue="{queue}")
print(ok.get(timeout=20))
try:
    bad.get(timeout=20)
except Exception as exc:
    print(type(exc).__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**live_platform.env, "DJANGO_SETTINGS_MODULE": "churn_platform.settings"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["password=hunter2-in-args", "ValueError"]

    after = samples(requests.get(worker_url + "/metrics", timeout=5).text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("churn_celery_tasks_total", task="tests.ops.echo", outcome="success") == 1
    assert delta("churn_celery_tasks_total", task="tests.ops.fail", outcome="failure") == 1
    assert delta("churn_celery_task_duration_seconds_count", task="tests.ops.echo") == 1

    time.sleep(0.5)
    records = [json.loads(line) for line in worker_log.read_text().splitlines() if line.startswith("{")]
    ran = [r for r in records if r["logger"] == "tests.ops.worker_tasks"]
    assert ran
    assert ran[0]["request_id"] == "ops-live-task-7"
    assert any(r["request_id"] == "ops-live-task-7" and r["level"] == "ERROR" for r in records)
    assert "hunter2-in-args" not in worker_log.read_text()
    ready = requests.get(worker_url + "/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


# --- a real Prometheus ---------------------------------------------------------------------
# Every dashboard panel is checked against real data in tests/ops/test_dashboards.py.


def test_prometheus_scrapes_web_and_worker_and_evaluates_the_rules(live_platform, live_worker, tmp_path):
    targets = {"churn-web": live_platform.base_url.split("//")[1], "churn-worker": live_worker[0].split("//")[1]}
    with running_prometheus(tmp_path, targets) as prometheus:
        query = prometheus.query
        live_platform.get("/api/v1/customers/", headers={"X-API-Key": live_platform.api_key})

        # Both targets scraped and healthy.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            up = {r["metric"]["job"]: r["value"][1] for r in query("up")}
            if up == {"churn-web": "1", "churn-worker": "1"}:
                break
            time.sleep(0.5)
        assert up == {"churn-web": "1", "churn-worker": "1"}, prometheus.log.read_text()[-2000:]

        # The platform's own metrics, as the platform counted them.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not query('churn_api_requests_total{api_key="live-client"}'):
            time.sleep(0.5)
        requests_seen = query('sum(churn_api_requests_total{job="churn-web",api_key="live-client"})')
        direct = value(live_platform.get("/metrics").text, "churn_api_requests_total", api_key="live-client")
        assert float(requests_seen[0]["value"][1]) == direct
        assert query('churn_model_registry_active_versions{job="churn-web"}')[0]["value"][1] == "0"
        assert query('churn_container_cpu_limit_cores{job="churn-worker"}')
        assert query("churn_celery_queue_depth")

        # Every rule group loaded, healthy, and the missing model already noticed.
        loaded = {rule["name"]: rule for group in prometheus.rule_groups() for rule in group["rules"]}
        expected_alerts = {
            rule["alert"] for path in RULES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "alert" in rule
        }
        assert expected_alerts <= set(loaded)
        assert {g["name"] for g in prometheus.rule_groups()} == {
            "churn-recording", "churn-service", "churn-security", "churn-model"
        }
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            loaded["ChurnNoActiveModel"]["state"] == "inactive" or any(r["health"] != "ok" for r in loaded.values())
        ):
            time.sleep(0.5)
            loaded = {rule["name"]: rule for group in prometheus.rule_groups() for rule in group["rules"]}
        assert all(rule["health"] == "ok" for rule in loaded.values()), [
            (name, rule.get("lastError")) for name, rule in loaded.items() if rule["health"] != "ok"
        ]
        assert loaded["ChurnNoActiveModel"]["state"] == "pending"  # fires after 5 minutes
        assert query('ALERTS{alertname="ChurnNoActiveModel",alertstate="pending"}')
    assert os.path.exists(tmp_path / "data")
