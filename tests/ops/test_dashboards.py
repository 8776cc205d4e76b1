"""Every Grafana panel shows data: each PromQL expression of every panel of every dashboard in
deploy/grafana/dashboards returns at least one series, with a number, from a real Prometheus that
scraped the platform (gunicorn with two workers and a Celery worker on the platform's queues)
after real traffic through the platform's own API, commands and tasks.

No Grafana runs here: the test reads the dashboard JSON, substitutes Grafana's variables as
Grafana would for a recent time range, and asks Prometheus.

"The day before" (churn:predicted_high_risk_ratio_previous_day:1d, ``offset 1d``) cannot have
data after a minute of traffic. The test takes two real scrapes of the platform, one before and
one after a round of traffic, and backfills them 24 hours earlier into Prometheus' TSDB
(``promtool tsdb create-blocks-from openmetrics``): yesterday looked like today. Prometheus then
evaluates the real rule on them. No panel query is exempted. The dashboard's annotation query
(firing alerts) is only run: no alert can fire within a test, the shortest ``for`` being
2 minutes; test_deploy_files checks which alerts it selects.
"""

from __future__ import annotations

import csv
import io
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import (
    ROOT,
    RULES,
    LivePlatform,
    database_copy,
    manage,
    platform_environment,
    require_binary,
    running_prometheus,
    start_gunicorn,
    start_worker,
    stop,
)
from tests.ops.dashboards import dashboard_queries

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

SAMPLE_ROWS = 1000  # customers stored (and trained on) before the processes start
SCORED = 300  # of them, scored and then given an outcome: enough for the live figures (RETRAIN_MIN_SAMPLES 200)
DAY = 86_400


# --- the platform, seeded ----------------------------------------------------------------------

SEED = """
from django.core.management import call_command
from accounts.models import ALL_SCOPES, Department
from accounts.services import api_key_create
call_command("import_telco_csv", "{sample}", source="ops-dashboards")
call_command("train_model", data="{sample}", algorithm="logistic", activate=True)
department, _ = Department.objects.get_or_create(name="ops-dash")
key, plaintext = api_key_create(department=department, name="dash-client", scopes=sorted(ALL_SCOPES))
print("KEY", plaintext)
"""


@dataclass
class Seeded:
    platform: LivePlatform
    worker_url: str
    worker_log: Path
    rows: list[dict[str, str]]  # the telco rows of the data file: stored ones first, then new ones
    header: list[str]

    @property
    def key(self) -> dict[str, str]:
        return {"X-API-Key": self.platform.api_key}


@pytest.fixture(scope="module")
def seeded_platform(django_db_setup, django_db_blocker, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Its own copy of the database (a model is activated: the other live tests need none), with
    1,000 customers, a logistic model trained on them and active, a key with every scope; then
    gunicorn and a worker consuming the platform's queues."""
    workdir = tmp_path_factory.mktemp("dashboards")
    with (ROOT / "data" / "telco_customer_churn.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    sample = workdir / "customers.csv"
    _write_csv(sample, header, rows[:SAMPLE_ROWS])
    with database_copy("dash", django_db_blocker) as database_url:
        env = platform_environment(database_url, workdir / "var", "ops-dash")
        output = manage(env, "shell", "-c", SEED.format(sample=sample), timeout=180)
        key = output.strip().splitlines()[-1].split()[1]
        (workdir / "web").mkdir()
        (workdir / "worker").mkdir()
        platform = start_gunicorn(env, workdir / "web")
        platform.api_key = key
        try:
            worker_url, worker_log, _ = start_worker(
                platform, workdir / "worker", "interactive,batch,training,ingestion", "-n", "ops-dash@%h"
            )
            yield Seeded(platform, worker_url, worker_log, rows, header)
        finally:
            for process in platform.processes:
                stop(process)


def _write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


# --- traffic -------------------------------------------------------------------------------------


def _ok(response: requests.Response, *codes: int) -> dict:
    assert response.status_code in (codes or (200,)), (response.request.method, response.url, response.status_code,
                                                       response.text[:1000])
    return response.json()


def _poll(what: str, read, done, timeout: float = 40.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not finish within {timeout:.0f} s: {value}")
        time.sleep(0.3)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def api_traffic(s: Seeded, ids: list[str]) -> None:
    """Reads, failed authentications and scoring: single and batch predictions."""
    p = s.platform
    for _ in range(4):
        _ok(p.get("/api/v1/customers/", headers=s.key))
    _ok(p.get(f"/api/v1/customers/{ids[0]}/", headers=s.key))
    for _ in range(3):
        _ok(p.get("/api/v1/customers/", headers={"X-API-Key": "chp_000000000000_" + "z" * 43}), 401)
    _ok(p.post("/api/v1/auth/token/", json={"username": "nobody", "password": "wrong-password"}), 401)
    for customer_id in ids[:3]:
        _ok(p.post("/api/v1/predictions/", headers=s.key, json={"customer_id": customer_id}), 201)
    batch = _ok(p.post("/api/v1/predictions/batch/", headers=s.key,
                       json={"customers": [{"customer_id": c} for c in ids]}))
    assert not batch["errors"], batch["errors"]
    assert len(batch["predictions"]) == len(ids)


def _chunks_observed(s: Seeded) -> float:
    """churn_batch_chunk_duration_seconds_count on the worker's /metrics, as Prometheus scrapes it."""
    text = requests.get(f"{s.worker_url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "churn_batch_chunk_duration_seconds_count")


def batch_job(s: Seeded, ids: list[str]) -> None:
    before = _chunks_observed(s)
    job = _ok(s.platform.post("/api/v1/predictions/jobs/", headers=s.key, json={"customer_ids": ids}), 202)
    finished = _poll(
        f"batch job {job['id']}", lambda: _ok(s.platform.get(f"/api/v1/predictions/jobs/{job['id']}/", headers=s.key)),
        lambda j: j["status"] not in ("queued", "running"),
    )
    assert finished["status"] == "succeeded", finished
    # The chunk task observes its duration after its commit, so the job can read "succeeded" a moment
    # before the histogram counts it; a scrape in between left "Batch job duration p95" with no rise (CI).
    _poll("the chunk duration histogram", lambda: _chunks_observed(s), lambda count: count > before, timeout=15)


def ingestion(s: Seeded) -> None:
    """A file of new customers, changed stored ones and one unreadable row (rejected)."""
    changed = [{**row, "MonthlyCharges": str(round(float(row["MonthlyCharges"]) + 5, 2))}
               for row in s.rows[SAMPLE_ROWS - 20 : SAMPLE_ROWS]]
    new = s.rows[SAMPLE_ROWS : SAMPLE_ROWS + 60]
    broken = {**s.rows[SAMPLE_ROWS + 60], "tenure": "not-a-number"}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=s.header)
    writer.writeheader()
    writer.writerows([*changed, *new, broken])
    run = _ok(s.platform.post("/api/v1/ingestions/", headers=s.key,
                              files={"file": ("dashboards.csv", buffer.getvalue().encode())}), 202)
    finished = _poll(
        f"ingestion run {run['id']}", lambda: _ok(s.platform.get(f"/api/v1/ingestions/{run['id']}/", headers=s.key)),
        lambda r: r["status"] not in ("queued", "running"),
    )
    assert finished["status"] == "partially_succeeded", finished
    assert (finished["counts"]["created"], finished["counts"]["rejected"]) == (60, 1), finished["counts"]


def campaign_and_outcomes(s: Seeded, ids: list[str]) -> None:
    """A campaign enrolling the scored high and critical customers (half held out as control),
    then what really happened to every scored customer, then its measured effect."""
    p = s.platform
    campaign = _ok(p.post("/api/v1/campaigns/", headers=s.key, json={
        "name": "Dashboard check", "goal": "Keep high-risk customers", "target_risk_levels": ["high", "critical"],
        "action": "discount", "discount_percent": 15, "control_share": 0.5,
    }), 201)
    enrolled = _ok(p.post(f"/api/v1/campaigns/{campaign['id']}/enrol/", headers=s.key, json={}))
    assert min(enrolled["treatment"], enrolled["control"]) > 0, enrolled
    churned = {row["customerID"]: row["Churn"] == "Yes" for row in s.rows}
    observed = _now()
    recorded = _ok(p.post("/api/v1/outcomes/bulk/", headers=s.key, json={
        "outcomes": [{"customer_id": c, "churned": churned[c], "observed_at": observed} for c in ids]
    }))
    assert recorded["created"] == len(ids), recorded
    # Follow-ups are settled by a task a moment after the write; the effect is read when asked for.
    _poll(f"campaign {campaign['id']} uplift",
          lambda: _ok(p.get(f"/api/v1/campaigns/{campaign['id']}/effectiveness/", headers=s.key)),
          lambda e: e["uplift"] is not None)


def evaluate_retraining_triggers(s: Seeded) -> None:
    """The beat task that measures drift, live accuracy and confidence, sent as an operator would
    (``celery call``) and run by the worker."""
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "churn_platform", "call",
         "modelregistry.tasks.evaluate_retraining_triggers", "--queue", "training"],
        cwd=ROOT, env=s.platform.env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    evaluations = _poll(
        "the trigger evaluation",
        lambda: _ok(s.platform.get("/api/v1/models/trigger-evaluations/", headers=s.key))["results"],
        lambda found: {e["kind"] for e in found} >= {"drift", "accuracy", "confidence"},
    )
    decided = {e["kind"]: e["decision"] for e in evaluations}
    assert not {"insufficient_data", "no_model"} & set(decided.values()), evaluations


def scrape(targets: dict[str, str]) -> tuple[float, dict[str, str]]:
    """(time, {job: exposition text}) of one scrape of each target, as Prometheus would take it."""
    at = time.time()
    return at, {job: requests.get(f"http://{target}/metrics", timeout=10).text for job, target in targets.items()}


# --- yesterday -----------------------------------------------------------------------------------


def previous_day_metrics() -> set[str]:
    """Names of the series the rules read ``offset 1d`` (what "the day before" is computed from)."""
    names = set()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "offset" in rule["expr"]:
                    names |= set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*\{", rule["expr"]))
    return names


def backfill_previous_day(scrapes: list[tuple[float, dict[str, str]]], targets: dict[str, str], names: set[str],
                          data_dir: Path, workdir: Path) -> int:
    """Write the ``names`` samples of real scrapes 24 h earlier into Prometheus' TSDB, labelled
    with the job and instance Prometheus gives them; returns how many samples were written."""
    promtool = require_binary("promtool")
    series: dict[str, dict[tuple, list[tuple[float, float]]]] = {}
    kinds: dict[str, str] = {}
    for at, texts in scrapes:
        for job, text in texts.items():
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name not in names:
                        continue
                    kinds[family.name] = family.type
                    labels = {**sample.labels, "job": job, "instance": targets[job]}
                    key = (sample.name, tuple(sorted(labels.items())))
                    series.setdefault(family.name, {}).setdefault(key, []).append((at - DAY, sample.value))
    lines, written = [], 0
    for family, by_series in sorted(series.items()):
        lines.append(f"# TYPE {family} {kinds[family]}")
        for (name, labels), points in sorted(by_series.items()):
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            for at, value in points:
                lines.append(f"{name}{{{label_text}}} {value} {at:.3f}")
                written += 1
    lines.append("# EOF")
    source = workdir / "previous-day.om"
    source.write_text("\n".join(lines) + "\n")
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return written


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- the check -----------------------------------------------------------------------------------


def _has_number(result: list[dict]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


def _scraped_since(prometheus, at: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until Prometheus has scraped every target after the wall-clock time ``at``."""
    _poll("a scrape of every target", lambda: prometheus.query("min(timestamp(up))"),
          lambda result: bool(result) and float(result[0]["value"][1]) > at, timeout=15)


def test_every_dashboard_panel_returns_series_after_real_traffic(seeded_platform, tmp_path):
    s = seeded_platform
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    targets = {"churn-web": s.platform.base_url.split("//")[1], "churn-worker": s.worker_url.split("//")[1]}
    queries = [q for q in dashboard_queries() if not q.annotation]
    annotations = [q for q in dashboard_queries() if q.annotation]
    ids = [row["customerID"] for row in s.rows[:SCORED]]
    data_dir = tmp_path / "tsdb"
    names = previous_day_metrics()
    assert "churn_predictions_total" in names

    with running_prometheus(tmp_path / "first", targets, data_dir=data_dir) as prometheus:
        phase("prometheus")
        # Round 1: every kind of work once, so that every series exists.
        api_traffic(s, ids)
        phase("api")
        campaign_and_outcomes(s, ids)
        phase("campaign and outcomes")
        ingestion(s)
        phase("ingestion")
        batch_job(s, ids[:100])
        phase("batch job")
        evaluate_retraining_triggers(s)
        phase("trigger evaluation")
        first = scrape(targets)
        _scraped_since(prometheus, first[0])
        # Round 2: the work whose rates and quantiles need a second look to be numbers.
        api_traffic(s, ids[:60])
        batch_job(s, ids[100:160])
        second = scrape(targets)
        _scraped_since(prometheus, second[0])
        phase("round 2")
    written = backfill_previous_day([first, second], targets, names, data_dir, tmp_path)
    assert written > 0

    # The same Prometheus, restarted on its data with yesterday's blocks added.
    with running_prometheus(tmp_path / "second", targets, data_dir=data_dir) as prometheus:
        phase("backfill and restart")
        deadline = time.monotonic() + 20
        while True:
            missing = [q for q in queries if not _has_number(prometheus.query(q.promql))]
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        phase("queries")
        yesterday = prometheus.query("churn:predicted_high_risk_ratio_previous_day:1d")
        # Annotations mark firing alerts: none fires within a test (the shortest ``for`` is 2
        # minutes), so they are only run; test_deploy_files checks whom they select.
        for annotation in annotations:
            prometheus.query(annotation.promql)
    print(f"{len(queries)} dashboard queries, {written} samples backfilled a day earlier; seconds: {phases}")
    assert not missing, "dashboard queries that returned no series with a number:\n" + "\n".join(map(str, missing))
    # "The day before" is a share computed from the backfilled scrapes.
    assert 0 <= float(yesterday[0]["value"][1]) <= 1, yesterday
    logs = s.platform.log_err.read_text() + s.worker_log.read_text()
    assert "Traceback" not in logs, logs[-5000:]
