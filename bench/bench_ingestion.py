"""File ingestion speed and memory: a 1,000,000-row Telco-layout CSV into PostgreSQL, twice.

Pass 1 ingests a fresh file into an empty database (every row created, every Churn label an
outcome). Pass 2 ingests the same rows with 1% of them changed: only those may be updated. Each
pass runs in its own worker process, which starts Django and then runs the pipeline the Celery
worker runs (ingestion_import_path -> ingestion_run_execute: hash, read, validate, flag, COPY +
upsert + outcomes, quarantine, report), timed from the call to its return; the process's wall
time (with Django's start-up) and its peak RSS (wait4's ru_maxrss) are printed too.

    .venv/bin/python bench/bench_ingestion.py [--rows 1000000] [--parallel 1] [--keep] [--json PATH]

--parallel N splits each file into N parts ingested at once by N worker processes (as an
`ingestion` queue with -c N would run N uploaded files): the rate is then all rows over the time
from the first pipeline's start to the last one's return, and the peak RSS the largest worker's.
--json PATH also writes the figures to PATH (bench/run_table.py reads them); BENCH_ROOT=CHECKOUT
runs this script against another checkout's code.

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

# BENCH_ROOT: the checkout whose code is measured (default this one); the bench scripts stay these.
ROOT = Path(os.environ.get("BENCH_ROOT") or Path(__file__).resolve().parents[1]).resolve()
PY = sys.executable
DB_NAME = "churn_bench_ingestion"
SERVER = "postgres://postgres@127.0.0.1:5432"
TARGET_ROWS_PER_SECOND = 60_000
TARGET_RSS_MB = 400


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)


def make_files(rows: int, directory: Path, parts: int = 1) -> tuple[list[Path], list[Path], int]:
    """A file of `rows` customers resampled from the bundled Telco data, and a copy with 1% changed.

    Each split into `parts` files of consecutive rows.
    """
    with (ROOT / "data" / "telco_customer_churn.csv").open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        sample = list(reader)
    rng = random.Random(42)
    suffix = [f"_part{k}" if parts > 1 else "" for k in range(parts)]
    firsts = [directory / f"telco_1m{s}.csv" for s in suffix]
    seconds = [directory / f"telco_1m_changed{s}.csv" for s in suffix]
    monthly = header.index("MonthlyCharges")
    changed = 0
    for part in range(parts):
        with firsts[part].open("w", newline="") as out1, seconds[part].open("w", newline="") as out2:
            w1, w2 = csv.writer(out1), csv.writer(out2)
            w1.writerow(header)
            w2.writerow(header)
            for i in range(rows * part // parts, rows * (part + 1) // parts):
                row = list(rng.choice(sample))
                row[0] = f"B{i:07d}-{row[0][-5:]}"
                w1.writerow(row)
                if i % 100 == 0:
                    row[monthly] = f"{float(row[monthly]) + 1.0:.2f}"
                    changed += 1
                w2.writerow(row)
    return firsts, seconds, changed


def ingest(paths: list[Path], env: dict[str, str]) -> tuple[float, float, float, dict[str, Any]]:
    """(seconds in the pipelines, process wall seconds, peak RSS in MB, run summary) of imports run at once.

    With several files, the pipeline time runs from the first pipeline's start to the last one's
    return, the counts are summed, and the RSS is the largest worker's.
    """
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [PY, __file__, "--worker", str(path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        for path in paths
    ]
    summaries, rss = [], []
    for proc in procs:
        # Each worker's output is one short line, so the pipes cannot fill up while its siblings run.
        _, status, usage = os.wait4(proc.pid, 0)
        out, err = proc.stdout.read().decode(), proc.stderr.read().decode()  # type: ignore[union-attr]
        if os.waitstatus_to_exitcode(status) != 0:
            for other in procs:
                if other.poll() is None:
                    os.killpg(other.pid, 15)
            raise SystemExit(f"import failed:\n{out}\n{err}")
        summary = json.loads(out.strip().splitlines()[-1])
        summary["worker_cpu"] = usage.ru_utime + usage.ru_stime
        summaries.append(summary)
        rss.append(usage.ru_maxrss / 1024)
    wall = time.perf_counter() - started
    counts: dict[str, int] = {}
    for summary in summaries:
        for key, value in summary["counts"].items():
            counts[key] = counts.get(key, 0) + value
    merged = {
        "status": "/".join(sorted({s["status"] for s in summaries})),
        "counts": counts,
        "outcomes": sum(s["outcomes"] for s in summaries),
        "worker_cpu": sum(s["worker_cpu"] for s in summaries),
        "worker_rss_mb": rss,
    }
    seconds = max(s["finished"] for s in summaries) - min(s["started"] for s in summaries)
    return seconds, wall, max(rss), merged


def worker(path: Path) -> None:
    """One import in a started Django process, as a Celery worker would run it."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "churn_platform.settings")
    import django

    django.setup()
    from customers.ingestion.services import ingestion_import_path

    started, wall_started = time.perf_counter(), time.time()
    run, _ = ingestion_import_path(path=path, source_name="bench", force=True)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                # Wall-clock ends, so that the parent can time several workers run at once.
                "started": wall_started,
                "finished": wall_started + seconds,
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
    parser.add_argument("--parallel", type=int, default=1, help="worker processes ingesting parts at once")
    parser.add_argument("--db-name", default=DB_NAME, help="its own database (dropped and created)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{args.db_name}",
        "DJANGO_ENV": "development",
        "DJANGO_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    directory = Path(tempfile.mkdtemp(prefix="bench-ingestion-"))
    print(f"Writing {args.rows:,} rows to {directory} ...", flush=True)
    firsts, seconds_files, changed = make_files(args.rows, directory, args.parallel)
    size = sum(p.stat().st_size for p in firsts) / 2**20
    print(f"  {size:.0f} MB per file (in {args.parallel} part(s)); {changed:,} rows differ in the second", flush=True)

    print(f"Load average before: {os.getloadavg()[0]:.2f} (other processes slow both passes down)", flush=True)
    psql(f"DROP DATABASE IF EXISTS {args.db_name}")
    psql(f"CREATE DATABASE {args.db_name}")
    subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env, check=True)
    try:
        results = []
        figures: list[dict[str, Any]] = []
        passes = (("fresh file into an empty table", firsts), ("same rows, 1% changed", seconds_files))
        for label, paths in passes:
            psql("CHECKPOINT")  # start on a clean checkpoint: earlier WAL does not land in this pass
            load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            seconds, wall, rss, summary = ingest(paths, env)
            rate = args.rows / seconds
            results.append((rate, rss, summary))
            figures.append({"pass": label, "workers": args.parallel, "seconds": seconds, "rows_per_second": rate,
                            "peak_rss_mb": rss, "wall_seconds": wall, "load_before": load_before, **summary})
            print(f"\n{label}: {summary['status']}, {summary['counts']}, outcomes recorded {summary['outcomes']}")
            print(f"  {seconds:.1f} s in the pipeline ({args.parallel} worker process(es)): {rate:,.0f} rows/s "
                  f"end to end; worker peak RSS {', '.join(f'{mb:.0f}' for mb in summary['worker_rss_mb'])} MB")
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
        if args.json:
            args.json.write_text(json.dumps({"rows": args.rows, "changed": changed, "passes": figures}, indent=2))
    finally:
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {args.db_name}")
            for path in (*firsts, *seconds_files):
                path.unlink(missing_ok=True)
            directory.rmdir()


if __name__ == "__main__":
    main()
