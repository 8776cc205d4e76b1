"""One command for the performance table of issue 13: runs the bench scripts, prints measured next to target.

    .venv/bin/python bench/run_table.py                       # full size: 1M customers, 1M rows, 15 s of wrk
    .venv/bin/python bench/run_table.py --quick               # 100k customers, 50k rows, 5 s: a few minutes
    .venv/bin/python bench/run_table.py --web-workers 1,2 --job-workers 1,2
    .venv/bin/python bench/run_table.py --repo /work/wt/round1 --db-suffix _r1   # another checkout's code

Rows (each from the script named; read its header for what it does):

* bench_scoring_api.py: the full single-score path at 16 clients (API key, validation, factors,
  stored row), the bare FastAPI + sklearn Pipeline peer in the same run (the ratio is the full
  path's requests/s over the peer's, as that script defines it), the 1,000-record batch request
  (median of 20), and the resident memory of each gunicorn web worker with the model loaded;
  once per --web-workers count (gunicorn -w N; the peer runs N uvicorn workers).
* bench_batch_scoring.py: one 1,000,000-customer batch job through real Celery worker processes,
  once per --job-workers count; also the chunks' write time summed, the WAL written, and the
  predictions table's bytes per row (pg_total_relation_size over pg_partition_tree / count).
* bench_ingestion.py: a fresh 1,000,000-row file into an empty table, with --job-workers worker
  processes each ingesting its share of the rows at once.

`cat /proc/loadavg` is printed before and after each script and kept with its rows: the host
is shared, and a figure means little without the load it was taken under.

--repo runs the same scripts (these, in this bench/ directory) against another checkout's code:
they take the checkout from BENCH_ROOT (manage.py, gunicorn.conf.py, data/, the apps). Give it a
--db-suffix so its databases do not collide with this checkout's. Each script drops and creates
its own database (churn_bench_api, churn_bench_batch, churn_bench_ingestion + suffix) and empties
its Redis indexes (--redis-base, +1, +2). Every process a script starts is stopped by its PID;
all traffic goes to 127.0.0.1. Not part of the test suite (pytest collects tests/ only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OWN_ROOT = BENCH_DIR.parent


@dataclass
class Row:
    path: str
    workers: str
    measured: str
    target: str
    ok: bool | None  # None: no target at this worker count, or the script failed
    load_before: str = ""
    load_after: str = ""
    notes: list[str] = field(default_factory=list)


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive counts, e.g. 1,2")
    return counts


def run_script(
    script: str, args: list[str], *, repo: Path, python: str, env: dict, log_dir: Path, label: str
) -> tuple[dict | None, str, str]:
    """Run one bench script against `repo`; (its --json figures or None on failure, load before, after)."""
    out_json = Path(tempfile.mkstemp(prefix="bench-", suffix=".json", dir=log_dir)[1])
    log = log_dir / f"{label}.log"
    command = [python, str(BENCH_DIR / script), *args, "--json", str(out_json)]
    before = loadavg()
    print(f"\n### {label}: {' '.join(command[1:])}\n    loadavg before: {before}", flush=True)
    with log.open("w") as fh:
        proc = subprocess.Popen(
            command,
            cwd=repo,
            env={**env, "BENCH_ROOT": str(repo)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            for line in proc.stdout:  # type: ignore[union-attr]
                fh.write(line)
                # gunicorn's JSON access lines (one per request) stay in the log only.
                if '"logger": "gunicorn.access"' not in line:
                    print(f"    | {line}", end="", flush=True)
            proc.wait()
        except BaseException:
            # Interrupted: stop the script by its PID; it stops its own gunicorn/celery/uvicorn children.
            proc.terminate()
            proc.wait(timeout=60)
            raise
    after = loadavg()
    print(f"    loadavg after:  {after}   (exit {proc.returncode}; log {log})", flush=True)
    # bench_batch_scoring exits 1 when a target of its own is missed; its figures are still written.
    text = out_json.read_text() if out_json.exists() else ""
    out_json.unlink(missing_ok=True)
    return (json.loads(text) if text else None), before, after


def mb_list(values) -> str:
    return ", ".join(f"{value:.0f}" for value in values)


def api_rows(figures: dict | None, workers: int, before: str, after: str) -> list[Row]:
    w = f"web {workers}"
    if figures is None:
        return [
            Row(name, w, "FAILED (see log)", target, None, before, after)
            for name, target in (
                ("full single-score path, c=16", ">= 1,400 req/s, p99 <= 25 ms"),
                ("same vs bare FastAPI + sklearn peer", ">= 6x"),
                ("1,000-record batch request, incl. storage", "<= 35 ms median"),
                ("RSS per gunicorn web worker, model loaded", "<= 120 MB"),
            )
        ]
    full, peer = figures["full"], figures["peer"]
    ratio = figures["full_over_peer"]
    batch = figures["batch_request_ms"]["median"]
    memory = figures["worker_memory_mb"]
    worst_rss = max((m["rss"] for m in memory), default=0.0)
    errors = f"; non-2xx {full['non2xx']}" if full["non2xx"] else ""
    return [
        Row(
            "full single-score path, c=16",
            w,
            f"{full['rps']:,.0f} req/s, p50 {full['p50']:.1f} ms, p99 {full['p99']:.1f} ms{errors}",
            ">= 1,400 req/s, p99 <= 25 ms",
            full["rps"] >= 1400 and full["p99"] <= 25 and not full["non2xx"],
            before,
            after,
        ),
        Row(
            "same vs bare FastAPI + sklearn peer",
            w,
            f"{ratio:.1f}x (us/peer; peer {peer['rps']:,.0f} req/s, p99 {peer['p99']:.1f} ms)",
            ">= 6x",
            ratio >= 6,
            before,
            after,
        ),
        Row(
            "1,000-record batch request, incl. storage",
            w,
            f"{batch:.1f} ms median of 20",
            "<= 35 ms median",
            batch <= 35,
            before,
            after,
        ),
        Row(
            "RSS per gunicorn web worker, model loaded",
            w,
            f"RSS {mb_list(m['rss'] for m in memory)} MB (PSS {mb_list(m['pss'] for m in memory)} MB)"
            + (
                f"; after batch requests RSS {mb_list(m['rss'] for m in after_batch)} MB"
                if (after_batch := figures.get("worker_memory_after_batch_mb"))
                else ""
            ),
            "<= 120 MB",
            worst_rss <= 120,
            before,
            after,
        ),
    ]


def cpu_note(rows: int, worker: float, postgres: float) -> str:
    def per(seconds: float) -> str:
        return f"{rows / seconds:,.0f} rows per CPU second" if seconds else "not sampled"

    return (
        f"CPU: worker processes {worker:.1f} s ({per(worker)}); PostgreSQL backends of the database "
        f"{postgres:.1f} s ({per(postgres)}; WAL writer and checkpointer not included)"
    )


def job_rows(figures: dict | None, n: int, workers: int, before: str, after: str) -> list[Row]:
    w = f"jobs {workers}"
    # The target is for two worker processes; other counts are per-core figures.
    target = "<= 10 s" + ("" if workers == 2 else " (for 2 workers)")
    if figures is None or not figures.get("jobs"):
        return [Row(f"{n:,}-customer batch job", w, "FAILED (see log)", target, None, before, after)]
    job = figures["jobs"][0]
    sums = job["chunk_seconds_summed"]
    per_row = job["table_bytes"] / max(job["table_rows"], 1)
    busy = ", ".join(f"{f['rows_per_second']:,.0f}" for f in job["per_worker"].values())
    return [
        Row(
            f"{n:,}-customer batch job",
            w,
            f"{job['wall_seconds']:.1f} s ({job['scored'] / job['wall_seconds']:,.0f} rows/s; busy rows/s per "
            f"worker {busy}; {job['status']}, failed {job['failed']})",
            target,
            job["wall_seconds"] <= 10 and job["failed"] == 0 if workers == 2 else None,
            before,
            after,
            notes=[
                f"chunk time summed: write {sums.get('write', 0):.1f} s, read {sums.get('read', 0):.1f} s, "
                f"score {sums.get('score', 0):.1f} s, commit {sums.get('commit', 0):.1f} s "
                f"({job['chunk_count']} chunks of {job['chunk_size']:,})",
                f"WAL written (whole server): {job['wal_bytes'] / 1e6:,.0f} MB "
                f"({job['wal_bytes'] / max(job['scored'], 1):,.0f} bytes per scored customer), "
                f"{job['checkpoints']} checkpoint(s)",
                f"predictions table: {job['table_bytes'] / 2**20:,.0f} MiB for {job['table_rows']:,} rows = "
                f"{per_row:,.0f} bytes per row (table + indexes + TOAST); this job added "
                f"{job['job_table_bytes'] / 2**20:,.0f} MiB "
                f"({job['job_table_bytes'] / max(job['scored'], 1):,.0f} bytes per new row)",
                f"peak RSS per pool process: {', '.join(f'{mb:.0f}' for mb in job['pool_peak_rss_mb'])} MB",
                cpu_note(job["scored"], job.get("worker_cpu_seconds", 0.0), job.get("postgres_cpu_seconds", 0.0)),
            ],
        ),
    ]


def ingestion_rows(figures: dict | None, n: int, workers: int, before: str, after: str) -> list[Row]:
    w = f"ingest {workers}"
    target = ">= 120,000 rows/s, <= 400 MB peak"
    if figures is None:
        return [Row(f"{n:,}-row fresh file ingestion", w, "FAILED (see log)", target, None, before, after)]
    fresh = figures["passes"][0]
    notes = []
    if len(figures["passes"]) > 1:
        changed = figures["passes"][1]
        notes.append(
            f"second pass (1% changed): {changed['rows_per_second']:,.0f} rows/s, updated "
            f"{changed['counts'].get('updated', 0):,} of {figures['changed']:,} changed"
        )
    return [
        Row(
            f"{n:,}-row fresh file ingestion",
            w,
            f"{fresh['rows_per_second']:,.0f} rows/s ({fresh['seconds']:.1f} s), peak RSS "
            f"{', '.join(f'{mb:.0f}' for mb in fresh['worker_rss_mb'])} MB",
            target,
            fresh["rows_per_second"] >= 120_000 and fresh["peak_rss_mb"] <= 400,
            before,
            after,
            notes,
        ),
    ]


def print_table(rows: list[Row], header: str) -> None:
    print(f"\n{header}")
    print("| path | workers | measured | target | | loadavg before | loadavg after |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        verdict = "" if row.ok is None else ("ok" if row.ok else "MISSED")
        print(
            f"| {row.path} | {row.workers} | {row.measured} | {row.target} | {verdict} | "
            f"{row.load_before} | {row.load_after} |"
        )
    for row in rows:
        for note in row.notes:
            print(f"  {row.path} ({row.workers}): {note}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", type=Path, default=OWN_ROOT, help="checkout whose code is measured")
    parser.add_argument("--python", help="interpreter (default: REPO/.venv/bin/python, else this one)")
    parser.add_argument("--seconds", type=int, default=15, help="wrk seconds per side (full path, peer)")
    parser.add_argument("--customers", type=int, default=1_000_000, help="customers in the batch job")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the ingested file")
    parser.add_argument("--web-workers", type=worker_counts, default=[2], help="gunicorn worker counts, e.g. 1,2")
    parser.add_argument(
        "--job-workers",
        type=worker_counts,
        default=[2],
        help="Celery batch worker / ingestion process counts, e.g. 1,2",
    )
    parser.add_argument("--only", default="api,job,ingest", help="which scripts: api, job, ingest")
    parser.add_argument("--quick", action="store_true", help="--seconds 5 --customers 100000 --rows 50000")
    parser.add_argument("--db-suffix", default="", help="appended to the bench databases' names")
    parser.add_argument("--redis-base", type=int, default=50, help="first of three Redis indexes to use (emptied)")
    parser.add_argument("--log-dir", type=Path, help="where each script's output goes (default var/bench_logs/TIME)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the batch bench's customers from an earlier run of the same size"
    )
    parser.add_argument("--json", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.customers, args.rows = 5, 100_000, 50_000
    repo = args.repo.resolve()
    if not (repo / "manage.py").exists():
        parser.error(f"{repo} is not a checkout of the platform (no manage.py)")
    python = args.python or (str(repo / ".venv/bin/python") if (repo / ".venv/bin/python").exists() else sys.executable)
    log_dir = args.log_dir or OWN_ROOT / "var" / "bench_logs" / time.strftime("%Y%m%dT%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    only = {part.strip() for part in args.only.split(",")}
    head = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ}
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)  # each script sets its own; an inherited one would point at someone else's
    print(f"repo {repo} at {head}\nhost: {os.cpu_count()} CPUs; logs in {log_dir}", flush=True)

    rows: list[Row] = []
    common = {"repo": repo, "python": python, "log_dir": log_dir}
    if "api" in only:
        for workers in args.web_workers:
            figures, before, after = run_script(
                "bench_scoring_api.py",
                [
                    "--seconds",
                    str(args.seconds),
                    "--workers",
                    str(workers),
                    "--db-name",
                    f"churn_bench_api{args.db_suffix}",
                    "--redis-db",
                    str(args.redis_base),
                ],
                env=env,
                label=f"api-web{workers}",
                **common,
            )
            rows += api_rows(figures, workers, before, after)
    if "job" in only:
        job_env = {
            **env,
            "BENCH_DB_NAME": f"churn_bench_batch{args.db_suffix}",
            "BENCH_REDIS_URL": f"redis://127.0.0.1:6379/{args.redis_base + 1}",
            "BENCH_BROKER_URL": f"redis://127.0.0.1:6379/{args.redis_base + 2}",
        }
        for index, workers in enumerate(args.job_workers):
            # The customers are seeded once; later counts reuse them (same count, same database).
            reuse = ["--reuse"] if index or args.reuse else []
            figures, before, after = run_script(
                "bench_batch_scoring.py",
                ["--customers", str(args.customers), "--workers", str(workers), *reuse],
                env=job_env,
                label=f"job-workers{workers}",
                **common,
            )
            rows += job_rows(figures, args.customers, workers, before, after)
    if "ingest" in only:
        for workers in args.job_workers:
            figures, before, after = run_script(
                "bench_ingestion.py",
                [
                    "--rows",
                    str(args.rows),
                    "--parallel",
                    str(workers),
                    "--db-name",
                    f"churn_bench_ingestion{args.db_suffix}",
                ],
                env=env,
                label=f"ingest-workers{workers}",
                **common,
            )
            rows += ingestion_rows(figures, args.rows, workers, before, after)

    sizes = f"--seconds {args.seconds} --customers {args.customers:,} --rows {args.rows:,}"
    print_table(rows, f"## {repo.name} at {head} ({sizes}; {os.cpu_count()} CPUs, shared)")
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2))
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
