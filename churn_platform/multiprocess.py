"""Housekeeping of PROMETHEUS_MULTIPROC_DIR for gunicorn and Celery workers.

Each process writes its metric values to files named after its pid in that directory and
/metrics sums them. The directory must start empty (files from an earlier run would be added
in), and a process that exits must have its live gauges removed. Imports prometheus_client only
inside the functions: the environment variable must be set before that package is first imported.
"""

from __future__ import annotations

import os
from pathlib import Path


def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def reset_multiprocess_dir() -> None:
    """Create the directory, or empty it of metric files left by a previous run."""
    directory = multiprocess_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def mark_dead(pid: int) -> None:
    """Drop the live-only gauges of a process that exited; its counters stay in the totals."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
