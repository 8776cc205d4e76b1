"""Benchmark of the scoring paths of the ML core.

Prints, for a model trained on the bundled Telco file:

* ``score_one`` latency for one record dict (the API's single prediction): p50 / p99 in us;
* batch throughput of ``predict_proba`` over 1,000,000 customers (customers/s), and of
  ``explain`` over 100,000;
* the fitted sklearn Pipeline's latency for one row, the cost the compiled scorer avoids.

Usage: python bench/bench_ml_scoring.py [--algorithm logistic|gradient_boosting] [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from churn_ml.features import as_columns  # noqa: E402
from churn_ml.schema import load_telco_csv  # noqa: E402
from churn_ml.training import train  # noqa: E402


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="logistic", choices=["logistic", "gradient_boosting"])
    parser.add_argument("--rows", type=int, default=1_000_000, help="batch size for the throughput run")
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "telco_customer_churn.csv"))
    args = parser.parse_args()

    frame, labels = load_telco_csv(args.data)
    started = time.perf_counter()
    model = train(frame, labels, algorithm=args.algorithm)
    print(
        f"trained {model.algorithm} in {time.perf_counter() - started:.1f} s: "
        f"held-out ROC AUC {model.metrics['roc_auc']:.4f}, Brier {model.metrics['brier']:.4f}"
    )
    scorer = model.scorer
    columns = as_columns(frame)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")

    # score_one: warm up, then time every call separately for the percentiles.
    for record in records[:500]:
        scorer.score_one(record)
    timings = []
    for _ in range(3):
        for record in records:
            start = time.perf_counter_ns()
            scorer.score_one(record)
            timings.append(time.perf_counter_ns() - start)
    p50, p99 = percentiles(timings)
    print(f"score_one (probability + top-5 factors), {len(timings)} calls: p50 {p50:.1f} us, p99 {p99:.1f} us")

    # Batch: a million customers sampled from the demo rows.
    idx = np.random.default_rng(0).integers(0, len(frame), args.rows)
    big = {name: values[idx] for name, values in columns.items()}
    scorer.predict_proba({name: values[:10_000] for name, values in big.items()})
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        scorer.predict_proba(big)
        best = min(best, time.perf_counter() - start)
    print(f"predict_proba batch of {args.rows:,}: {best:.3f} s = {args.rows / best:,.0f} customers/s (best of 3)")

    n_explain = min(100_000, args.rows)
    part = {name: values[:n_explain] for name, values in big.items()}
    start = time.perf_counter()
    scorer.explain(part, top_k=5)
    elapsed = time.perf_counter() - start
    print(f"explain (top-5 factors) batch of {n_explain:,}: {elapsed:.3f} s = {n_explain / elapsed:,.0f} customers/s")

    # The sklearn Pipeline, one row at a time, as a request path without the compiled scorer.
    pipeline = model.pipeline
    rows = [frame.iloc[[i]] for i in range(300)]
    for row in rows[:20]:
        pipeline.predict_proba(row)
    timings = []
    for row in rows:
        start = time.perf_counter_ns()
        pipeline.predict_proba(row)
        timings.append(time.perf_counter_ns() - start)
    p50_pipe, p99_pipe = percentiles(timings)
    print(
        f"sklearn Pipeline.predict_proba, one row: p50 {p50_pipe:.0f} us, p99 {p99_pipe:.0f} us "
        f"({p50_pipe / p50:.0f}x score_one's p50)"
    )


if __name__ == "__main__":
    main()
