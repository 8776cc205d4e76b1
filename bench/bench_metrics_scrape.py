"""How long a Prometheus scrape of /metrics takes under gunicorn in multiprocess mode.

Starts gunicorn (gunicorn.conf.py, WEB_CONCURRENCY workers) on a free 127.0.0.1 port against
DATABASE_URL (migrated), sends API requests with a fresh key so every worker has written metric
files, then times scrapes and API requests.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/churn REDIS_URL=redis://127.0.0.1:6379/5 \\
        .venv/bin/python bench/bench_metrics_scrape.py --workers 3 --requests 600 --scrapes 100
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--scrapes", type=int, default=100)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        sys.exit("set DATABASE_URL to a migrated database")

    port = free_port()
    multiproc = tempfile.mkdtemp(prefix="bench-prom-")
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(args.workers),
           "PROMETHEUS_MULTIPROC_DIR": multiproc, "GUNICORN_ACCESS_LOG": "", "DJANGO_ENV": "development",
           "DJANGO_DEBUG": "false", "CELERY_TASK_ALWAYS_EAGER": "false"}
    key = subprocess.run([sys.executable, "manage.py", "create_api_key", "--department", "bench", "--name",
                          f"bench-{port}"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    api_key = key.stdout.strip().splitlines()[-1]
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "churn_platform.wsgi:application", "-c",
                             "gunicorn.conf.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        session = requests.Session()
        session.headers["X-API-Key"] = api_key

        def call(_: int) -> float:
            started = time.perf_counter()
            assert session.get(base + "/api/v1/customers/", timeout=10).status_code == 200
            return time.perf_counter() - started

        with ThreadPoolExecutor(max_workers=args.workers * 2) as pool:
            api_times = list(pool.map(call, range(args.requests)))
        scrape_times = []
        size = 0
        for _ in range(args.scrapes):
            started = time.perf_counter()
            body = requests.get(base + "/metrics", timeout=10).content
            scrape_times.append(time.perf_counter() - started)
            size = len(body)
        files = len(list(Path(multiproc).glob("*.db")))
        print(f"gunicorn workers: {args.workers}, metric files: {files}, exposition: {size / 1024:.0f} KiB")
        print(f"/metrics scrape: p50 {statistics.median(scrape_times) * 1000:.1f} ms, "
              f"p95 {percentile(scrape_times, 0.95) * 1000:.1f} ms over {args.scrapes} scrapes")
        print(f"GET /api/v1/customers/: p50 {statistics.median(api_times) * 1000:.1f} ms, "
              f"p95 {percentile(api_times, 0.95) * 1000:.1f} ms over {args.requests} requests")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
