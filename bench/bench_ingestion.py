"""File ingestion speed and memory: a 1,000,000-row Telco-layout CSV into PostgreSQL, twice.

Pass 1 ingests a fresh file into an empty database (every row created, every Churn label an
outcome). Pass 2 ingests the same rows with 1% of them changed: only those may be updated. Each
pass runs in its own worker process, which starts Django and then runs the pipeline the Celery
worker runs (ingestion_import_path -> ingestion_run_execute: hash, read, validate, flag, COPY +
upsert + outcomes, quarantine, report), timed from the call to its return; the process's wall
time (with Django's start-up) and its peak RSS (wait4's ru_maxrss) are printed too.

    .venv/bin/python bench/bench_ingestion.py [--rows 1000000] [--keep]

Needs PostgreSQL on 127.0.0.1 (user postgres, trust auth). Uses its own database, churn_bench_ingestion,
dropped at the end unless --keep. Targets: >= 60,000 rows/s, peak RSS < 400 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DB_NAME = "churn_bench_ingestion"
SERVER = "postgres://postgres@127.0.0.1:5432"
TARGET_ROWS_PER_SECOND = 60_000
TARGET_RSS_MB = 400


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)


def make_files(rows: int, directory: Path) -> tuple[Path, Path, int]:
    """A file of `rows` customers resampled from the bundled Telco data, and a copy with 1% changed."""
    with (ROOT / "data" / "telco_customer_churn.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        sample = list(reader)
    rng = random.Random(42)
    first, second = directory / "telco_1m.csv", directory / "telco_1m_changed.csv"
    monthly = header.index("MonthlyCharges")
    changed = 0
    with first.open("w", newline="") as out1, second.open("w", newline="") as out2:
        w1, w2 = csv.writer(out1), csv.writer(out2)
        w1.writerow(header)
        w2.writerow(header)
        for i in range(rows):
            row = list(rng.choice(sample))
            row[0] = f"B{i:07d}-{row[0][-5:]}"
            w1.writerow(row)
            if i % 100 == 0:
                row[monthly] = f"{float(row[monthly]) + 1.0:.2f}"
                changed += 1
            w2.writerow(row)
    return first, second, changed


def ingest(path: Path, env: dict[str, str]) -> tuple[float, float, float, dict[str, Any]]:
    """(seconds in the pipeline, process wall seconds, peak RSS in MB, run summary) of one import."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PY, __file__, "--worker", str(path)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"import failed:\n{out}\n{err}")
    summary = json.loads(out.strip().splitlines()[-1])
    summary["worker_cpu"] = usage.ru_utime + usage.ru_stime
    return summary["seconds"], wall, usage.ru_maxrss / 1024, summary


def worker(path: Path) -> None:
    """One import in a started Django process, as a Celery worker would run it."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "churn_platform.settings")
    import django

    django.setup()
    from customers.ingestion.services import ingestion_import_path

    started = time.perf_counter()
    run, _ = ingestion_import_path(path=path, source_name="bench", force=True)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "status": run.status,
                "counts": run.counts,
                "id": str(run.pk),
                "outcomes": run.details.get("outcomes_recorded", 0),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{DB_NAME}",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    directory = Path(tempfile.mkdtemp(prefix="bench-ingestion-"))
    print(f"Writing {args.rows:,} rows to {directory} ...", flush=True)
    first, second, changed = make_files(args.rows, directory)
    print(f"  {first.stat().st_size / 2**20:.0f} MB per file; {changed:,} rows differ in the second", flush=True)

    print(f"Load average before: {os.getloadavg()[0]:.2f} (other processes slow both passes down)", flush=True)
    psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
    psql(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    try:
        results = []
        for label, path in (("fresh file into an empty table", first), ("same rows, 1% changed", second)):
            psql("CHECKPOINT")  # start on a clean checkpoint: earlier WAL does not land in this pass
            seconds, wall, rss, summary = ingest(path, env)
            rate = args.rows / seconds
            results.append((rate, rss, summary))
            print(f"\n{label}: {summary['status']}, {summary['counts']}, outcomes recorded {summary['outcomes']}")
            print(f"  {seconds:.1f} s in the pipeline: {rate:,.0f} rows/s end to end; worker peak RSS {rss:.0f} MB")
            print(f"  (process wall time with Django's start-up: {wall:.1f} s, {args.rows / wall:,.0f} rows/s;")
            print(f"   worker CPU {summary['worker_cpu']:.1f} s; PostgreSQL works in its own processes)")
        updated = results[1][2]["counts"]["updated"]
        print(f"\nSecond pass updated {updated:,} rows; {changed:,} were changed.")
        ok = all(rate >= TARGET_ROWS_PER_SECOND and rss < TARGET_RSS_MB for rate, rss, _ in results)
        ok = ok and updated == changed
        print(f"Load average afterwards: {os.getloadavg()[0]:.2f} (machine has {os.cpu_count()} cores)")
        print(
            f"Targets (>= {TARGET_ROWS_PER_SECOND:,} rows/s, < {TARGET_RSS_MB} MB, only changed rows updated): "
            f"{'met' if ok else 'NOT met'}"
        )
    finally:
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {DB_NAME}")
            for path in (first, second):
                path.unlink(missing_ok=True)
            directory.rmdir()


if __name__ == "__main__":
    main()
