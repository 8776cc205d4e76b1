"""Batch scoring speed and memory: 1,000,000 stored customers scored by real Celery workers.

Sets up its own PostgreSQL database (churn_bench_batch) with N synthetic customers drawn from the
bundled Telco sample (columns resampled independently per contract type, ids unique), trains and
activates a model, and gives every customer one earlier prediction, as after the previous night.
Then, for each worker count asked for, starts that many `celery worker -Q batch -c 1` processes,
runs one full scoring job end to end (plan, read, score, write predictions with COPY, finish with
the results file) and prints:

* wall time from the job's creation to its final status, and to the last chunk written;
* rows per second overall and per worker process (busy time), so scaling can be read off;
* peak resident memory (VmHWM) of each worker's pool process and of its parent;
* where a chunk's time goes (read / score / write / commit, summed over chunks).

    .venv/bin/python bench/bench_batch_scoring.py [--customers 1000000] [--workers 2 1] [--reuse]

Needs PostgreSQL and Redis on 127.0.0.1. BENCH_REDIS_URL / BENCH_BROKER_URL choose the Redis
databases (default 6 and 7), BENCH_DB_NAME the database (default churn_bench_batch). --reuse keeps
the customers of an earlier run. It also prints the storage the job's predictions took (table,
indexes and TOAST, per million predictions; summed over partitions when the table is partitioned)
and, after the job, the bytes per stored prediction row (total size / row count). --json PATH also
writes the figures to PATH (bench/run_table.py reads them); BENCH_ROOT=CHECKOUT runs this script
against another checkout's code.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

# BENCH_ROOT: the checkout whose code is measured (default this one); the bench scripts stay these.
ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parents[1]).resolve()
# BENCH_DB_NAME: a database of one's own, so that two checkouts can bench side by side.
DB_NAME = os.environ.get("BENCH_DB_NAME", "churn_bench_batch")
PG = "postgres://postgres@127.0.0.1:5432"
TARGET_SECONDS = 40.0
TARGET_RSS_MB = 600.0

ENV = {
    **os.environ,
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6"),
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/7"),
    "CELERY_TASK_ALWAYS_EAGER": "false",
    "CHURN_VAR_DIR": str(ROOT / "var" / "bench_batch"),
    "DJANGO_ENV": "development",
    "DJANGO_DEBUG": "false",
    "LOG_LEVEL": "WARNING",
    "CELERY_METRICS_PORT": "0",
    "PYTHONPATH": str(ROOT),
    "DJANGO_SETTINGS_MODULE": "churn_platform.settings",
}
os.environ.update(ENV)
sys.path.insert(0, str(ROOT))


def psql(sql: str, db: str = "postgres") -> str:
    return subprocess.run(["psql", f"{PG}/{db}", "-qAtc", sql], check=True, capture_output=True, text=True).stdout


def prepare_database(n: int, reuse: bool) -> None:
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'").strip() == "1"
    if not exists:
        psql(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=ENV, check=True)
    import django

    django.setup()
    from customers.models import Customer

    if reuse and Customer.objects.count() == n:
        print(f"reusing {n:,} customers in {DB_NAME}")
    else:
        started = time.perf_counter()
        seed_customers(n)
        print(f"seeded {n:,} customers in {time.perf_counter() - started:.1f} s")
    from modelregistry.models import ModelVersion

    if not ModelVersion.objects.active().exists():
        subprocess.run([sys.executable, "manage.py", "train_model", "--data", "data/telco_customer_churn.csv",
                        "--activate", "--algorithm", "logistic"], cwd=ROOT, env=ENV, check=True,
                       capture_output=True)


def seed_customers(n: int) -> None:
    """n customers resampled from the Telco sample, written with COPY."""
    import numpy as np
    from django.db import connection

    from churn_ml.schema import BOOL_FIELDS, FIELD_ORDER, load_telco_csv

    frame, _ = load_telco_csv(str(ROOT / "data" / "telco_customer_churn.csv"))
    rng = np.random.default_rng(7)
    rows = frame.iloc[rng.integers(0, len(frame), n)].reset_index(drop=True)
    rows["customer_id"] = [f"BENCH-{i:07d}" for i in range(n)]
    rows["tenure_months"] = rows["tenure_months"].astype(int)
    rows["age"] = rows["age"].astype("Int64")
    for name in BOOL_FIELDS:
        rows[name] = np.where(rows[name], "t", "f")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows["quality_completeness"] = 90.48
    rows["quality_warnings"] = "[]"
    rows["source"] = "bench"
    rows["created_at"] = rows["updated_at"] = now
    columns = ["customer_id", *FIELD_ORDER, "quality_completeness", "quality_warnings", "source", "created_at",
               "updated_at"]
    from customers.models import Customer

    extra = {f.column for f in Customer._meta.concrete_fields if not f.primary_key} - set(columns)
    defaults = {name: Customer._meta.get_field(name).get_default() for name in extra}
    for name, value in defaults.items():
        rows[name] = "[]" if isinstance(value, (list, dict)) else ("f" if value is False else value)
    columns += sorted(extra)
    buffer = io.StringIO()
    rows[columns].to_csv(buffer, index=False, header=False, na_rep="\\N")
    buffer.seek(0)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE customers_customer, predictions_prediction, predictions_batchjob CASCADE")
        cursor.copy_expert(
            f"COPY customers_customer ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
        )
        cursor.execute("VACUUM ANALYZE customers_customer")


def reset_predictions() -> None:
    """One earlier prediction per customer (a random level), like the night before."""
    import shutil

    from django.db import connection

    # The results files of earlier runs (~330 MB each) would pile up in the bench's storage.
    shutil.rmtree(Path(ENV["CHURN_VAR_DIR"]) / "media" / "batch_jobs", ignore_errors=True)

    from modelregistry.models import ModelVersion

    version = ModelVersion.objects.active().get().pk
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE predictions_prediction, predictions_batchchunk, predictions_batchjob CASCADE")
        cursor.execute(
            """
            INSERT INTO predictions_prediction (prediction_id, customer_id, churn_probability, risk_level,
                recommendations, top_factors, model_version_id, source, request_id, created_at,
                previous_risk_level, risk_increased)
            SELECT gen_random_uuid(), customer_id, 0.5,
                   (ARRAY['low', 'medium', 'high', 'critical'])[1 + (id %% 4)], '[]', '[]', %s, 'job', '',
                   now() - interval '1 day', '', false
            FROM customers_customer
            """,
            [version],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE predictions_prediction")
        # Start each run at the beginning of a checkpoint cycle, so that runs compare.
        cursor.execute("CHECKPOINT")


def start_workers(count: int) -> list[subprocess.Popen]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "churn_platform", "worker", "-Q", "batch", "-c", "1",
             "-n", f"bench{i}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=ROOT, env=ENV, start_new_session=True,
        )
        for i in range(count)
    ]
    from churn_platform.celery import app

    deadline = time.time() + 60
    while time.time() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return workers
    raise RuntimeError("workers did not start")


def stop_workers(workers: list[subprocess.Popen]) -> None:
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process so far (/proc/PID/stat utime and stime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pool_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def run_job(workers: list[subprocess.Popen]) -> dict:
    from django.db import close_old_connections, transaction

    try:
        from predictions.batch_jobs.create import batch_job_create
    except ImportError:  # the round-1 code (4fecc06) had it in predictions.jobs
        from predictions.jobs import batch_job_create
    from predictions.models import BatchChunk, BatchJob, BatchJobOrigin

    server_before = server_counters()
    size_before = prediction_table_bytes()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    created = time.perf_counter()
    with transaction.atomic():
        job = batch_job_create(scope="all", origin=BatchJobOrigin.COMMAND)
    rss: dict[int, float] = {}
    cpu: dict[int, float] = {}  # the last reading per process: the worker side's CPU, apart from PostgreSQL's
    pg_cpu: dict[int, float] = {}  # the same for the server backends of this database (same host, readable)
    own_backend = backend_pid()
    while True:
        close_old_connections()
        job = BatchJob.objects.get(pk=job.pk)
        for proc in workers:
            for pid in [proc.pid, *pool_children(proc.pid)]:
                rss[pid] = max(rss.get(pid, 0.0), peak_rss_mb(pid))
                cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds(pid))
        for pid in database_backends() - {own_backend}:
            pg_cpu[pid] = max(pg_cpu.get(pid, 0.0), cpu_seconds(pid))
        if job.is_finished:
            break
        time.sleep(0.2)
    wall = time.perf_counter() - created
    server_after = server_counters()
    size_after = prediction_table_bytes()
    row_count = prediction_row_count()
    chunks = list(BatchChunk.objects.filter(job=job).values_list("timings", "finished_at"))
    last_write = max(f for _, f in chunks)
    sums = {k: sum(t.get(k, 0.0) for t, _ in chunks) for k in ("read", "score", "write", "commit")}
    children = {pid: mb for pid, mb in rss.items() if pid not in {p.pid for p in workers}}
    return {
        "job": job, "wall": wall, "to_last_chunk": (last_write - job.created_at).total_seconds(),
        "sums": sums, "child_rss": children, "parent_rss": {p.pid: rss.get(p.pid, 0.0) for p in workers},
        "wal_mb": (server_after[0] - server_before[0]) / 1e6, "checkpoints": server_after[1] - server_before[1],
        "load": load, "table_bytes": size_after - size_before, "worker_cpu_seconds": sum(cpu.values()),
        "postgres_cpu_seconds": sum(pg_cpu.values()),
        "total_bytes": size_after, "row_count": row_count,
    }


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def database_backends() -> set[int]:
    """PIDs of the server processes connected to the bench database (the workers' connections).

    Their CPU is the job's PostgreSQL CPU except the server-wide WAL writer and checkpointer. A
    backend that exits between two samples loses at most 0.2 s; the workers keep their connections.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return {int(pid) for (pid,) in cursor.fetchall()}


def prediction_table_bytes() -> int:
    """pg_total_relation_size of the predictions table: rows, indexes and TOAST.

    Summed over pg_partition_tree when the table is partitioned: the size of a partitioned parent
    alone is 0.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        # pg_partition_tree lists nothing for a plain table: then the table's own size.
        cursor.execute(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(t)), "
            "pg_total_relation_size(t)) FROM (SELECT 'predictions_prediction'::regclass AS t) AS target"
        )
        return int(cursor.fetchone()[0])


def prediction_row_count() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM predictions_prediction")
        return int(cursor.fetchone()[0])


def server_counters() -> tuple[int, int]:
    """(WAL bytes written so far, checkpoints so far) of the PostgreSQL server."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), "
                       "checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        wal, checkpoints = cursor.fetchone()
    return int(wal), int(checkpoints)


def report(count: int, result: dict) -> bool:
    job = result["job"]
    rows = job.scored
    print(f"\n== {count} worker process{'es' if count > 1 else ''}: job {job.pk} {job.status}")
    print(f"  customers scored          {rows:,} (failed {job.failed}, risk increased {job.risk_increased:,})")
    print(f"  wall, create -> finished  {result['wall']:.1f} s  ({rows / result['wall']:,.0f} rows/s)"
          f"   target <= {TARGET_SECONDS:.0f} s")
    print(f"  wall, create -> last chunk written {result['to_last_chunk']:.1f} s")
    print(f"  chunk time summed: read {result['sums']['read']:.1f} s, score {result['sums']['score']:.1f} s, "
          f"write {result['sums']['write']:.1f} s, commit {result['sums']['commit']:.1f} s  "
          f"({job.chunk_count} chunks of {job.chunk_size:,})")
    print(f"  PostgreSQL server (all databases): {result['wal_mb']:,.0f} MB of WAL, {result['checkpoints']} "
          f"checkpoint(s) during the job; load average before: {result['load']}")
    per_million = result["table_bytes"] / max(rows, 1) * 1e6 / 2**20
    print(f"  storage of the job's predictions (table + indexes + TOAST): {result['table_bytes'] / 2**20:,.0f} MiB"
          f" = {per_million:,.0f} MiB per 1M predictions")
    print(f"  whole predictions table after the job: {result['total_bytes'] / 2**20:,.0f} MiB for "
          f"{result['row_count']:,} rows = {result['total_bytes'] / max(result['row_count'], 1):,.0f} bytes per row")
    print(f"  CPU of the worker processes (pool and parents, sampled every 0.2 s): "
          f"{result['worker_cpu_seconds']:.1f} s = {rows / max(result['worker_cpu_seconds'], 0.01):,.0f} rows per "
          f"worker CPU second")
    print(f"  CPU of PostgreSQL's backends for this database: {result['postgres_cpu_seconds']:.1f} s = "
          f"{rows / max(result['postgres_cpu_seconds'], 0.01):,.0f} rows per CPU second (WAL writer and "
          f"checkpointer not included)")
    for worker, figures in sorted(job.details.get("workers", {}).items()):
        print(f"  worker {worker}: {figures['rows']:,} rows in {figures['chunks']} chunks, busy "
              f"{figures['busy_seconds']:.1f} s -> {figures['rows_per_second']:,.0f} rows/s")
    peak = max(result["child_rss"].values(), default=0.0)
    print(f"  peak RSS per pool process: {', '.join(f'{mb:.0f} MB' for mb in result['child_rss'].values())}"
          f"   target < {TARGET_RSS_MB:.0f} MB; parents: "
          f"{', '.join(f'{mb:.0f} MB' for mb in result['parent_rss'].values())}")
    return result["wall"] <= TARGET_SECONDS and peak < TARGET_RSS_MB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--reuse", action="store_true", help="Keep the customers of an earlier run.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()

    prepare_database(args.customers, args.reuse)
    from django.conf import settings

    print(f"host: {os.cpu_count()} CPUs; chunk size {settings.BATCH_CHUNK_SIZE:,}; PostgreSQL "
          f"{psql('SHOW server_version').strip()}")
    ok = True
    figures = []
    for count in args.workers:
        reset_predictions()
        workers = start_workers(count)
        try:
            result = run_job(workers)
        finally:
            stop_workers(workers)
        met = report(count, result)
        ok = ok and (met or count != 2)
        figures.append(as_json(count, result))
    if args.json:
        import json

        args.json.write_text(json.dumps({"customers": args.customers, "jobs": figures}, indent=2))
    return 0 if ok else 1


def as_json(count: int, result: dict) -> dict:
    job = result["job"]
    return {
        "workers": count, "status": job.status, "scored": job.scored, "failed": job.failed,
        "wall_seconds": result["wall"], "to_last_chunk_seconds": result["to_last_chunk"],
        "chunk_seconds_summed": result["sums"], "chunk_count": job.chunk_count, "chunk_size": job.chunk_size,
        "wal_bytes": result["wal_mb"] * 1e6, "checkpoints": result["checkpoints"], "load_before": result["load"],
        "job_table_bytes": result["table_bytes"], "table_bytes": result["total_bytes"],
        "table_rows": result["row_count"], "worker_cpu_seconds": result["worker_cpu_seconds"],
        "postgres_cpu_seconds": result["postgres_cpu_seconds"],
        "pool_peak_rss_mb": sorted(result["child_rss"].values()),
        "per_worker": job.details.get("workers", {}),
    }


if __name__ == "__main__":
    sys.exit(main())
