"""Scoring API speed, next to a bare peer measured in the same run.

Starts the platform the way production does (gunicorn, PostgreSQL, Redis, DJANGO_ENV=production)
on a fresh database with the demo data and an active model, then drives it with wrk at 16
concurrent clients: the full path (API-key auth, validation, scoring with factors, the stored
Prediction row). The peer is a FastAPI app calling the sklearn Pipeline directly. Also times
1,000-customer batch requests and in-process scoring of 1,000,000 customers.

    .venv/bin/python bench/bench_scoring_api.py [--seconds 15] [--workers 2]
    .venv/bin/python bench/bench_scoring_api.py --shadow-share 1.0 [--seconds 10]

With --shadow-share, a second version runs in the shadow for that share of requests: the full
path is timed without the shadow, with it, and without it again (bracketing the noise of a
shared machine), and only those figures are printed.

It reads the resident memory (VmRSS, and PSS, which counts the pages a worker shares copy-on-write
with the preloaded master once) of every gunicorn worker after the single-score traffic (the model
loaded) and again after the batch requests (which load pandas in the worker).
--json PATH also writes the figures to PATH (bench/run_table.py reads them). BENCH_ROOT=CHECKOUT
runs this same script against another checkout's code (its manage.py, gunicorn.conf.py, data).

Needs: PostgreSQL and Redis on 127.0.0.1, wrk (apt-get install wrk), fastapi and uvicorn
(pip install -r bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# BENCH_ROOT: the checkout whose code is measured (default this one); the bench scripts stay these.
ROOT = Path(os.environ.get("BENCH_ROOT") or BENCH_DIR.parent).resolve()
PY = sys.executable
DB_NAME = "churn_bench_api"

RECORD = {
    "customer_id": "BENCH-1",
    "gender": "female",
    "senior_citizen": False,
    "partner": True,
    "dependents": False,
    "tenure_months": 12,
    "phone_service": True,
    "multiple_lines": "No",
    "internet_service": "Fiber optic",
    "online_security": "No",
    "online_backup": "No",
    "device_protection": "No",
    "tech_support": "No",
    "streaming_tv": "Yes",
    "streaming_movies": "Yes",
    "contract_type": "Month-to-month",
    "paperless_billing": True,
    "payment_method": "Electronic check",
    "monthly_charges": 85.0,
    "total_charges": 1020.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sh(*args: str, env: dict | None = None, check: bool = True) -> str:
    return subprocess.run(args, cwd=ROOT, env=env, check=check, capture_output=True, text=True).stdout


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, body: dict, headers: dict, seconds: int, connections: int = 16) -> dict:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 - wrk reads it by name
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
        f'wrk.headers["Content-Type"] = "application/json"\n{header_lines}'
    )
    script.close()
    out = sh("wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url)
    os.unlink(script.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p90": ms("90"),
        "p99": ms("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gunicorn-config", default="gunicorn.conf.py")
    # On a shared host, give each concurrent run its own database and Redis index (both are wiped).
    parser.add_argument("--db-name", default=DB_NAME)
    parser.add_argument("--redis-db", type=int, default=9)

    parser.add_argument("--shadow-share", type=float, default=0.0, help="time a shadow at this share")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    db_name, redis_db = args.db_name, str(args.redis_db)
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")

    var = Path(tempfile.mkdtemp(prefix="churn-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "CHURN_VAR_DIR": str(var),
        "LOG_LEVEL": "WARNING",
        "API_KEY_RATE_LIMIT_PER_MINUTE": "100000000",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {db_name}")
    sh("psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {db_name}")
    sh("redis-cli", "-n", redis_db, "flushdb")
    print("preparing: migrate, demo data, model ...", flush=True)
    sh(PY, "manage.py", "migrate", "--no-input", "-v0", env=env)
    sh(PY, "manage.py", "import_telco_csv", "data/telco_customer_churn.csv", env=env)
    sh(
        PY,
        "manage.py",
        "train_model",
        "--data",
        "data/telco_customer_churn.csv",
        "--activate",
        "--algorithm",
        "logistic",
        env=env,
    )
    if args.shadow_share:
        sh(PY, "manage.py", "train_model", "--data", "data/telco_customer_churn.csv", "--algorithm", "logistic",
           "--seed", "7", env=env)
    key = (
        sh(PY, "manage.py", "create_api_key", "--department", "bench", "--name", "bench", env=env)
        .strip()
        .splitlines()[-1]
    )
    artifact = next((var / "models" / "artifacts").glob("*.zip"))

    web_port, peer_port = free_port(), free_port()
    web_url, peer_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{peer_port}"
    procs = []
    try:
        web = subprocess.Popen(
            [
                str(Path(PY).parent / "gunicorn"),
                "churn_platform.wsgi:application",
                "-c",
                args.gunicorn_config,
                "-b",
                f"127.0.0.1:{web_port}",
                "-w",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        procs.append(web)
        peer = subprocess.Popen(
            [
                str(Path(PY).parent / "uvicorn"),
                "peer_app:app",
                "--app-dir",
                str(BENCH_DIR),
                "--host",
                "127.0.0.1",
                "--port",
                str(peer_port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            # --app-dir puts bench/ on the path, PYTHONPATH the measured checkout (churn_ml).
            env={**env, "PEER_ARTIFACT": str(artifact), "PYTHONPATH": str(ROOT)},
            start_new_session=True,
        )
        procs.append(peer)
        wait_http(f"{web_url}/healthz")
        wait_http(f"{peer_url}/docs")

        headers = {"X-API-Key": key}
        if args.shadow_share:
            shadow_bench(web_url, headers, args, env)
            return
        wrk(f"{web_url}/api/v1/predictions/", RECORD, headers, 3)  # warm up both
        wrk(f"{peer_url}/predict", RECORD, {}, 3)
        full = wrk(f"{web_url}/api/v1/predictions/", RECORD, headers, args.seconds)
        bare = wrk(f"{peer_url}/predict", RECORD, {}, args.seconds)
        # After single-score traffic only: the model is loaded; a batch request loads more (pandas).
        scoring_memory = [process_memory_mb(pid) for pid in child_pids(web.pid)]

        batch_body = json.dumps(
            {
                "customers": [
                    {
                        **RECORD,
                        "customer_id": f"B-{i}",
                        "tenure_months": i % 72,
                        "total_charges": 85.0 * (i % 72) or None,
                    }
                    for i in range(1000)
                ]
            }
        ).encode()
        timings = []
        for _ in range(25):
            request = urllib.request.Request(
                f"{web_url}/api/v1/predictions/batch/",
                data=batch_body,
                method="POST",
                headers={"Content-Type": "application/json", **headers},
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
            timings.append((time.perf_counter() - started) * 1000)  # the server's time, not the client's parse
            payload = json.loads(raw)
            assert len(payload["predictions"]) == 1000, payload["errors"][:3]
        batch_ms = statistics.median(timings[5:])
        batch_memory = [process_memory_mb(pid) for pid in child_pids(web.pid)]
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
        if args.shadow_share:
            shutil.rmtree(var, ignore_errors=True)

    inproc = subprocess.run(
        [
            PY,
            "-c",
            f"""
import time, numpy as np
from churn_ml.artifact import load_artifact, sha256_hex
from churn_ml.schema import load_telco_csv
data = open({str(artifact)!r}, 'rb').read()
scorer = load_artifact(data, sha256_hex(data), load_pipeline=False).scorer
frame, _ = load_telco_csv('data/telco_customer_churn.csv')
idx = np.random.default_rng(0).integers(0, len(frame), 1_000_000)
cols = {{c: frame[c].to_numpy()[idx] for c in frame.columns}}
scorer.predict_proba(cols)
t = time.perf_counter(); scorer.predict_proba(cols); proba = time.perf_counter() - t
t = time.perf_counter(); scorer.contributions(cols); contrib = time.perf_counter() - t
print(f"{{1e6 / proba:.0f}} {{1e6 / contrib:.0f}}")
""",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    proba_rate, contrib_rate = map(float, inproc.stdout.split())
    shutil.rmtree(var, ignore_errors=True)

    ratio = full["rps"] / bare["rps"]
    rows = [
        ("full path requests/s @16 clients", f"{full['rps']:.0f}", ">= 500", full["rps"] >= 500),
        ("bare peer (FastAPI + sklearn Pipeline) requests/s", f"{bare['rps']:.0f}", "", True),
        ("full path / bare peer", f"{ratio:.1f}x", ">= 3x", ratio >= 3),
        ("full path p50 latency", f"{full['p50']:.1f} ms", "<= 30 ms", full["p50"] <= 30),
        ("full path p90 latency", f"{full['p90']:.1f} ms", "", True),
        ("full path p99 latency", f"{full['p99']:.1f} ms", "<= 80 ms", full["p99"] <= 80),
        ("bare peer p50 / p99", f"{bare['p50']:.1f} / {bare['p99']:.1f} ms", "", True),
        ("1,000-customer batch request (median of 20)", f"{batch_ms:.1f} ms", "<= 80 ms", batch_ms <= 80),
        ("in-process predict_proba, customers/s", f"{proba_rate:,.0f}", ">= 1,000,000", proba_rate >= 1e6),
        ("in-process contributions (explanations), customers/s", f"{contrib_rate:,.0f}", "", True),
        ("non-2xx responses (full / peer)", f"{full['non2xx']} / {bare['non2xx']}", "0", full["non2xx"] == 0),
    ]
    for label, memory in (("model loaded", scoring_memory), ("after batch requests", batch_memory)):
        rss = ", ".join(f"{m['rss']:.0f}" for m in memory)
        pss = ", ".join(f"{m['pss']:.0f}" for m in memory)
        rows.append((f"RSS / PSS per gunicorn worker, {label}", f"{rss} / {pss} MB", "", True))
    print(f"\ngunicorn workers={args.workers} threads={args.threads}, wrk -t2 -c16 -d{args.seconds}s, 2-core machine")
    for name, value, target, ok in rows:
        print(f"{name:<55} {value:>16}  {target:<14} {'' if not target else ('ok' if ok else 'MISSED')}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "web_workers": args.workers,
                    "seconds": args.seconds,
                    "full": full,
                    "peer": bare,
                    "full_over_peer": ratio,
                    "batch_request_ms": {"median": batch_ms, "samples": timings[5:]},
                    "proba_per_second": proba_rate,
                    "contributions_per_second": contrib_rate,
                    "worker_memory_mb": scoring_memory,
                    "worker_memory_after_batch_mb": batch_memory,
                },
                indent=2,
            )
        )


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is pid (gunicorn's workers)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def process_memory_mb(pid: int) -> dict:
    """VmRSS, VmHWM and PSS of a process in MB. PSS splits copy-on-write pages among their sharers."""
    figures = {"pid": pid, "rss": 0.0, "hwm": 0.0, "pss": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            figures["rss" if line.startswith("VmRSS") else "hwm"] = int(line.split()[1]) / 1024
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                figures["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return figures


def shadow_bench(web_url: str, headers: dict, args: argparse.Namespace, env: dict) -> None:
    """The full path without a shadow, with one at ``args.shadow_share``, and without again."""
    url = f"{web_url}/api/v1/predictions/"
    toggle = (
        "from accounts.services import SYSTEM\n"
        "from modelregistry.models import ModelVersion\n"
        "from modelregistry.shadow import shadow_start, shadow_stop\n"
    )
    start = toggle + (
        "v = ModelVersion.objects.filter(status='testing').first()\n"
        f"shadow_start(version=v.version, share={args.shadow_share}, actor=SYSTEM)\n"
    )
    wrk(url, RECORD, headers, 3)
    before = wrk(url, RECORD, headers, args.seconds)
    sh(PY, "manage.py", "shell", "-c", start, env=env)
    time.sleep(1.5)  # each process re-reads the shadow configuration within a second
    wrk(url, RECORD, headers, 2)
    shadowed = wrk(url, RECORD, headers, args.seconds)
    count = sh(PY, "manage.py", "shell", "-c",
               "from modelregistry.models import ShadowPrediction; print(ShadowPrediction.objects.count())", env=env)
    sh(PY, "manage.py", "shell", "-c", toggle + "shadow_stop(actor=SYSTEM)\n", env=env)
    time.sleep(1.5)
    after = wrk(url, RECORD, headers, args.seconds)
    base_rps = (before["rps"] + after["rps"]) / 2
    base_p50 = (before["p50"] + after["p50"]) / 2
    cost = 1 - shadowed["rps"] / base_rps
    print(f"\nshadow share {args.shadow_share}, gunicorn workers={args.workers}, wrk -t2 -c16 -d{args.seconds}s, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'full path requests/s: before / with shadow / after':<55} "
          f"{before['rps']:.0f} / {shadowed['rps']:.0f} / {after['rps']:.0f}")
    print(f"{'p50 latency ms: before / with shadow / after':<55} "
          f"{before['p50']:.1f} / {shadowed['p50']:.1f} / {after['p50']:.1f}")
    print(f"{'p99 latency ms: before / with shadow / after':<55} "
          f"{before['p99']:.1f} / {shadowed['p99']:.1f} / {after['p99']:.1f}")
    print(f"{'shadow predictions stored (some may still be buffered)':<55} {count.strip().splitlines()[-1]}")
    print(f"{'throughput cost of the shadow':<55} {cost:+.1%}  (<= 15%: {'ok' if cost <= 0.15 else 'MISSED'})")
    print(f"{'p50 latency change':<55} {shadowed['p50'] / base_p50 - 1:+.1%}")


if __name__ == "__main__":
    main()
