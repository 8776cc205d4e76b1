"""The product's queries on the predictions table at volume: EXPLAIN (ANALYZE, BUFFERS) of each, with its budget.

Fills a PostgreSQL database of its own (BENCH_DB_NAME, default churn_bench_predictions) with N
predictions (default 10,000,000) of ~1M customers, in ten nightly batch jobs spread over the last
twelve months (one API prediction in 50 in between), 1M customers, 50,000 recent outcomes; then
ANALYZEs and runs each query the product runs on the table, twice, printing the second run's
execution time and buffers next to its budget. The SQL is the ORM's own (the selectors' querysets)
or the raw SQL of the dashboard and live accuracy, so the bench follows the code.

    .venv/bin/python bench/bench_prediction_queries.py [--rows 10000000] [--reuse] [--migrate-with DIR]

--reuse keeps the rows of an earlier run. --migrate-with runs ``manage.py migrate`` of another
checkout (e.g. /work/main, before the table was partitioned) when creating the database, so the
same data can be measured before and after: run once with it, then ``manage.py migrate`` here
(its time is the conversion's) and run again with --reuse.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_DB_NAME", "churn_bench_predictions")
PG = "postgres://postgres@127.0.0.1:5432"
CUSTOMERS = 1_000_000
JOBS = 10

ENV = {
    **os.environ,
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/7"),
    "CELERY_TASK_ALWAYS_EAGER": "true",
    "CHURN_VAR_DIR": str(ROOT / "var" / "bench_predictions"),
    "DJANGO_ENV": "development",
    "DJANGO_DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "churn_platform.settings",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))

# What a realistic row carries (sizes as written by batch scoring): five factor pairs, the inputs
# snapshot, the level's recommendations.
FACTORS = '[["contract_type",0.412],["tenure_months",-0.318],["monthly_charges",0.201],["internet_service",0.144],["payment_method",0.091]]'  # noqa: E501
INPUTS = (
    '[1,"Female",0,"Yes","No",12,"Yes","No","Fiber optic","No","No","No","No","Yes","Yes","Month-to-month",'
    '"Yes","Electronic check",89.1,1069.2]'
)
RECOMMENDATIONS = '["Call within 48 hours","Offer a 12-month contract with a discount"]'


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", f"{PG}/{db}", "-v", "ON_ERROR_STOP=1", "-qAtc", sql], check=True,
                          capture_output=True, text=True).stdout


def fill(rows: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from predictions.partitions import add_months, month_start, prediction_partitions_ensure

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE predictions_prediction, customers_outcome, customers_customer, "
                       "predictions_batchchunk, predictions_batchjob, modelregistry_modelversion CASCADE")
        cursor.execute(
            "INSERT INTO modelregistry_modelversion (id, version, algorithm, status, artifact, artifact_sha256, "
            "artifact_size, feature_spec_version, schema_version, training_data_sha256, training_rows, "
            "training_source, metrics, reference_stats, trained_by, promoted_by, notes, error, created_at, updated_at, "
            "holdout, report) SELECT v, 'bench-' || v, 'logreg', CASE WHEN v = 2 THEN 'active' ELSE 'archived' END, "
            "'', '', 0, '1', '1', '', 0, '', '{}', '{}', '', '', '', '', now(), now(), '', '{}' "
            "FROM generate_series(1, 2) v"
        )
        started = time.perf_counter()
        cursor.execute(
            "INSERT INTO customers_customer (customer_id, senior_citizen, partner, dependents, tenure_months, "
            "phone_service, multiple_lines, internet_service, online_security, online_backup, device_protection, "
            "tech_support, streaming_tv, streaming_movies, contract_type, paperless_billing, payment_method, "
            "monthly_charges, quality_completeness, quality_warnings, source, created_at, updated_at) "
            "SELECT 'C' || lpad(g::text, 7, '0'), false, g %% 2 = 0, false, (g %% 72)::smallint, true, 'No', 'DSL', "
            "'No', 'No', 'No', 'No', 'No', 'No', 'Month-to-month', true, 'Electronic check', 20 + g %% 100, 1.0, "
            "'[]', 'bench', now() - interval '400 days', now() - interval '400 days' "
            "FROM generate_series(1, %s) g",
            [CUSTOMERS],
        )
        cursor.execute(
            "INSERT INTO predictions_batchjob (id, scope, filters, customer_ids, input_file, input_name, status, "
            "origin, chunk_size, chunk_count, chunks_done, total, scored, failed, risk_increased, requested_by, "
            "output_file, details, error, created_at, updated_at, model_version_id) "
            "SELECT j, 'all', '{}', '[]', '', '', 'succeeded', 'schedule', 10000, 100, 100, %s, %s, 0, 0, 'beat', "
            "'', '{}', '', now() - (%s - j) * interval '36 days' - interval '5 hours', now(), "
            "CASE WHEN j > 6 THEN 2 ELSE 1 END FROM generate_series(1, %s) j",
            [CUSTOMERS, CUSTOMERS, JOBS, JOBS],
        )
    # Partitions for every month the rows span (the beat task only keeps the months ahead).
    now = month_start(timezone.now())
    for back in range(13, -1, -1):
        prediction_partitions_ensure(months_ahead=0, now=add_months(now, -back))
    prediction_partitions_ensure()
    print(f"customers, versions, jobs: {time.perf_counter() - started:.1f} s", flush=True)
    per_job = rows // JOBS
    for job in range(JOBS):
        started = time.perf_counter()
        # Job j ran (JOBS - 1 - j) * 36 days ago, its rows over ~3 hours (10 ms apart); one row in
        # 50 is an API prediction at a random moment of the year instead. Ids are time-ordered
        # (version 7 layout) like the writers'.
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO predictions_prediction (prediction_id, customer_id, churn_probability, risk_level,
                    recommendations, offer, top_factors, model_version_id, source, latency_ms, inputs, department_id,
                    requested_by_key_id, requested_by_user_id, request_id, batch_job_id, previous_risk_level,
                    risk_increased, created_at)
                SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
                        || substr(md5(g::text), 1, 19))::uuid,
                       'C' || lpad((1 + (g * 7919) %% {CUSTOMERS})::text, 7, '0'), p,
                       CASE WHEN p < 0.3 THEN 'low' WHEN p < 0.6 THEN 'medium' WHEN p < 0.9 THEN 'high'
                            ELSE 'critical' END,
                       %s, NULL, %s, CASE WHEN %s > 6 THEN 2 ELSE 1 END, CASE WHEN api THEN 'api' ELSE 'job' END,
                       0.02, %s, CASE WHEN api THEN 1 END, NULL, NULL, '',
                       CASE WHEN api THEN NULL ELSE %s END, 'medium', NOT api AND g %% 37 = 0, ts
                FROM (
                    SELECT g, random() AS p, g %% 50 = 0 AS api,
                           CASE WHEN g %% 50 = 0 THEN now() - random() * interval '360 days'
                                ELSE now() - (%s * interval '36 days') - interval '4 hours'
                                     + (g %% {per_job}) * interval '10 ms' END AS ts
                    FROM generate_series(%s::bigint, %s::bigint) g
                ) s
                """,
                [RECOMMENDATIONS, FACTORS, job + 1, INPUTS, job + 1, JOBS - 1 - job, job * per_job,
                 (job + 1) * per_job - 1],
            )
        print(f"job {job + 1}: {per_job:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_outcome (customer_id, churned, observed_at, source, recorded_by, created_at, "
            "updated_at) SELECT c, c %% 4 = 0, now() - (c %% 60) * interval '1 day', 'bench', '', now(), now() "
            "FROM generate_series(1, %s, %s) c",
            [CUSTOMERS, CUSTOMERS // 50_000],
        )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE: {time.perf_counter() - started:.1f} s", flush=True)


def queries() -> list[tuple[str, float, str, list]]:
    """(name, budget ms, SQL, params) of each query the product runs on predictions."""
    from django.conf import settings
    from django.db.models import Avg, Count, OuterRef, Subquery
    from django.utils import timezone

    from campaigns.selectors import dashboard
    from customers.models import Customer
    from predictions import live_performance
    from predictions.batch_jobs.results import batch_job_results
    from predictions.models import BatchJob, Prediction
    from predictions.selectors import prediction_list, risk_increases

    now = timezone.now()
    table = Prediction._meta.db_table
    customer = "C0123457"
    job = BatchJob.objects.get(pk=JOBS)
    pid = Prediction.objects.filter(customer_id=customer).values_list("prediction_id", flat=True).first()
    ids = [f"C{n:07d}" for n in range(500_000, 500_025)]
    latest = Prediction.objects.filter(customer_id=OuterRef("customer_id")).order_by("-created_at", "-pk")
    horizon = now - timedelta(days=settings.LIVE_PERFORMANCE_HORIZON_DAYS)
    window = now - timedelta(days=settings.RETRAIN_WINDOW_DAYS)

    def orm(qs) -> tuple[str, list]:  # type: ignore[no-untyped-def]
        sql, params = qs.query.sql_with_params()
        return sql, list(params)

    page = prediction_list().order_by(*Prediction._meta.ordering)
    out = [
        ("campaign matching: latest per customer, high+critical", 30_000,
         *orm(Prediction.objects.latest_per_customer().filter(risk_level__in=["high", "critical"])
              .values_list("pk", "customer_id", "churn_probability", "risk_level"))),
        ("dashboard: customers per risk level (latest)", 30_000,
         dashboard._LATEST_LEVEL_SQL["postgresql"].format(table=table), []),
        ("dashboard: new high risk per day (30 days)", 30_000,
         dashboard._NEW_AT_LEVEL_SQL.format(table=table), ["high", "critical", now - timedelta(days=30)]),
        ("customer page: history (20 newest)", 10,
         *orm(Prediction.objects.filter(customer_id=customer).select_related("model_version")
              .order_by("-created_at", "-pk")[:20])),
        ("customer detail API: latest prediction", 10,
         *orm(prediction_list().filter(customer_id=customer).order_by("-created_at", "-pk")[:1])),
        ("follow-up list: current risk of 25 targets", 25,
         *orm(Customer.objects.filter(customer_id__in=ids).annotate(
             p=Subquery(latest.values("churn_probability")[:1]), level=Subquery(latest.values("risk_level")[:1])
         ).values_list("customer_id", "p", "level"))),
        ("batch scoring: previous level of 10,000 customers", 2_000,
         *orm(Customer.objects.filter(pk__gte=400_000, pk__lt=410_000).annotate(
             prev=Subquery(Prediction.objects.filter(customer_id=OuterRef("customer_id")).order_by("-created_at")
                           .values("risk_level")[:1])).values_list("customer_id", "prev"))),
        ("API list: first page (50 newest)", 20, *orm(page[:50])),
        # DRF's PageNumberPagination counts the whole filtered list for every page.
        ("API list: page count (COUNT(*) of the pager)", 5_000, *orm(page.order_by().values("pk"))),
        ("API list: ?risk_level=critical first page", 50, *orm(page.filter(risk_level="critical")[:50])),
        ("API list: ?customer_id= first page", 10, *orm(page.filter(customer_id=customer)[:50])),
        ("API: prediction by prediction_id", 5, *orm(Prediction.objects.filter(prediction_id=pid)[:21])),
        ("batch job: risk increases of the job (first 50)", 20, *orm(risk_increases(job=job)[:50])),
        ("batch job: results rows (whole job, customer order)", 20_000, *orm(batch_job_results(job))),
        ("live accuracy: realized pairs (horizon)", 30_000,
         _raw_sql(lambda: live_performance.realized_pairs(since=horizon, horizon=now - horizon)), [horizon]),
        ("live accuracy: unlabelled latest per customer (horizon)", 60_000,
         _raw_sql(lambda: live_performance.unlabelled_predictions(since=horizon)), [horizon]),
        ("registry: scored summary of a version (horizon)", 10_000,
         *orm(Prediction.objects.filter(model_version_id=2, created_at__gte=horizon, created_at__lte=now)
              .values("model_version_id").order_by().annotate(n=Count("pk"), mean=Avg("churn_probability")))),
        ("registry: recent confidence sample (RETRAIN_DRIFT_SAMPLE_SIZE)", 2_000,
         *orm(Prediction.objects.filter(model_version_id=2, created_at__gte=window).order_by("-created_at")
              .values("pk")[: settings.RETRAIN_DRIFT_SAMPLE_SIZE])),
        ("registry: recent scored inputs (RETRAIN_DRIFT_SAMPLE_SIZE)", 3_000,
         *orm(Prediction.objects.filter(created_at__gte=window, inputs__isnull=False).order_by("-created_at")
              .values_list("customer_id", "inputs")[: settings.RETRAIN_DRIFT_SAMPLE_SIZE])),
    ]
    name, budget, sql, params = out[8]
    out[8] = (name, budget, f"SELECT COUNT(*) FROM ({sql}) counted", params)
    return out


def _raw_sql(call) -> str:  # type: ignore[no-untyped-def]
    """The SQL a function sends first (captured, not run)."""
    from django.db import connection

    captured: list[str] = []

    def capture(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        captured.append(sql)
        raise _Captured

    try:
        with connection.execute_wrapper(capture):
            call()
    except _Captured:
        pass
    return captured[0]


class _Captured(Exception):
    pass


def explain(sql: str, params: list) -> tuple[float, str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        lines = [row[0] for row in cursor.fetchall()]
    ms = float(re.search(r"Execution Time: ([\d.]+) ms", lines[-1]).group(1))
    buffers = next((line.strip() for line in lines if "Buffers:" in line), "")
    return ms, buffers, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reuse", action="store_true", help="Keep the rows of an earlier run.")
    parser.add_argument("--migrate-with", type=Path, default=ROOT,
                        help="The checkout whose migrations create the schema.")
    parser.add_argument("--plans", action="store_true", help="Print each query's whole plan.")
    args = parser.parse_args()
    if psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").strip() != "1":
        psql(f"CREATE DATABASE {DB_NAME}")
    if not args.reuse:
        subprocess.run([str(args.migrate_with / ".venv" / "bin" / "python"), "manage.py", "migrate", "--no-input",
                        "-v0"], cwd=args.migrate_with, env=ENV, check=True)
    import django

    django.setup()
    from predictions.partitions import is_partitioned, prediction_partitions_report

    if not args.reuse:
        started = time.perf_counter()
        fill(args.rows)
        print(f"filled {args.rows:,} predictions in {time.perf_counter() - started:.1f} s")
    else:
        # After a migration (the rebuild copies rows into new tables): the visibility map the
        # index-only scans rely on, as autovacuum would set it.
        started = time.perf_counter()
        psql("VACUUM ANALYZE predictions_prediction", DB_NAME)
        print(f"VACUUM ANALYZE predictions_prediction: {time.perf_counter() - started:.1f} s")
    size = psql("SELECT pg_size_pretty(pg_total_relation_size(c.oid) + COALESCE((SELECT SUM(pg_total_relation_size("
                "i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = c.oid), 0)::bigint) FROM pg_class c "
                "WHERE relname = 'predictions_prediction'", DB_NAME).strip()
    layout = f"partitioned, {len(prediction_partitions_report())} partitions" if is_partitioned() else "plain table"
    print(f"\npredictions_prediction: {layout}, {size} with indexes; load {os.getloadavg()[0]:.2f}")
    print(f"{'query':<62} {'ms':>10} {'budget':>8}  buffers")
    for name, budget, sql, params in queries():
        explain(sql, params)  # warm
        ms, buffers, plan = explain(sql, params)
        mark = "ok" if ms <= budget else "OVER"
        print(f"{name:<62} {ms:>10.1f} {budget:>8,.0f} {mark:<4} {buffers}", flush=True)
        if args.plans:
            print(plan + "\n")


if __name__ == "__main__":
    main()
