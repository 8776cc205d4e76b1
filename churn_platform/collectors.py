"""Metrics computed when Prometheus scrapes, and the registry that /metrics serves.

Some values are cheaper to read than to keep up to date: how many messages wait in each Celery
queue (a few LLENs on the broker), which model version the registry marks active (one indexed
query), and how much CPU this container has used against its limit (two small files under
/sys/fs/cgroup). ``PlatformCollector`` reads them on every scrape, so they can never be stale and
no periodic job has to run. Failures are counted in churn_metrics_collector_errors_total and the
affected series are left out of that scrape rather than reported as zero.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from churn_infra.metrics import METRICS_COLLECTOR_ERRORS
from churn_infra.queues import queue_depths

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def registry_active_versions() -> list[tuple[str, str]]:
    """(version, algorithm) of the versions the registry marks active: one, or none."""
    from modelregistry.models import ModelStatus, ModelVersion

    return list(ModelVersion.objects.filter(status=ModelStatus.ACTIVE).values_list("version", "algorithm"))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def container_cpu() -> tuple[float, float] | None:
    """(CPU seconds used by this container's cgroup, cores it may use), from cgroup v2 or v1."""
    cpu_stat = CGROUP_ROOT / "cpu.stat"
    if cpu_stat.exists():  # cgroup v2
        usage = None
        for line in cpu_stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                usage = int(value) / 1e6
        if usage is None:
            return None
        limit = None
        try:
            quota, period = (CGROUP_ROOT / "cpu.max").read_text().split()
            if quota != "max":
                limit = int(quota) / int(period)
        except (OSError, ValueError):
            limit = None
        return usage, limit or _available_cores()
    for folder in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):  # cgroup v1
        nanoseconds = _read_int(CGROUP_ROOT / folder / "cpuacct.usage")
        if nanoseconds is not None:
            break
    else:
        return None
    quota = _read_int(CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us")
    period = _read_int(CGROUP_ROOT / "cpu" / "cpu.cfs_period_us")
    limit = quota / period if quota and quota > 0 and period else None
    return nanoseconds / 1e9, limit or _available_cores()


def _available_cores() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return float(os.cpu_count() or 1)


class PlatformCollector:
    """Yields the scrape-time metrics. ``app_state`` adds the ones that need Django and the broker."""

    def __init__(self, *, app_state: bool = True) -> None:
        self.app_state = app_state

    def collect(self) -> Iterator[Metric]:
        yield from self._cpu()
        if self.app_state:
            yield from self._queues()
            yield from self._registry()
            yield from self._live()

    def _failed(self, collector: str) -> None:
        METRICS_COLLECTOR_ERRORS.labels(collector).inc()
        logger.warning("Metrics collector %s failed", collector, exc_info=True)

    def _cpu(self) -> Iterator[Metric]:
        try:
            cpu = container_cpu()
        except OSError:
            self._failed("container_cpu")
            return
        if cpu is None:
            return
        usage = CounterMetricFamily(
            "churn_container_cpu_usage_seconds", "CPU time used by this container (cgroup), all processes"
        )
        usage.add_metric([], cpu[0])
        limit = GaugeMetricFamily("churn_container_cpu_limit_cores", "CPU cores this container may use (cgroup quota)")
        limit.add_metric([], cpu[1])
        yield usage
        yield limit

    def _queues(self) -> Iterator[Metric]:
        try:
            depths = queue_depths()
        except Exception:  # a broker outage must not break the scrape
            self._failed("celery_queue_depth")
            return
        if depths is None:
            return
        family = GaugeMetricFamily("churn_celery_queue_depth", "Messages waiting in a Celery queue", labels=["queue"])
        for queue, depth in depths.items():
            family.add_metric([queue], depth)
        yield family

    def _registry(self) -> Iterator[Metric]:
        try:
            active = registry_active_versions()
        except Exception:  # a database outage must not break the scrape
            self._failed("model_registry")
            return
        count = GaugeMetricFamily(
            "churn_model_registry_active_versions", "Model versions the registry marks active (0 means none serves)"
        )
        count.add_metric([], len(active))
        info = GaugeMetricFamily(
            "churn_model_registry_active_info", "1 for the version the registry marks active",
            labels=["version", "algorithm"],
        )
        for version, algorithm in active:
            info.add_metric([version, algorithm], 1)
        yield count
        yield info


    def _live(self) -> Iterator[Metric]:
        """Each version's (and A/B arm's) live figures, as stored by the live performance refresh."""
        from modelregistry.live import live_rows

        try:
            rows = live_rows()
        except Exception:  # a database outage must not break the scrape
            self._failed("live_performance")
            return
        labels = ["model_version", "scope"]
        families = {
            ("realized", "roc_auc"): GaugeMetricFamily(
                "churn_model_realized_roc_auc", "ROC AUC on recorded outcomes within the horizon", labels=labels),
            ("realized", "accuracy"): GaugeMetricFamily(
                "churn_model_realized_accuracy", "Accuracy on recorded outcomes within the horizon", labels=labels),
            ("realized", "n"): GaugeMetricFamily(
                "churn_model_realized_outcomes", "Outcomes joined to the version's predictions", labels=labels),
            ("estimated", "roc_auc"): GaugeMetricFamily(
                "churn_model_estimated_roc_auc", "CBPE estimate of ROC AUC for predictions without outcome",
                labels=labels),
            ("estimated", "accuracy"): GaugeMetricFamily(
                "churn_model_estimated_accuracy", "CBPE estimate of accuracy for predictions without outcome",
                labels=labels),
        }
        for row in rows:
            for (part, key), family in families.items():
                value = (getattr(row, part) or {}).get(key)
                if value is not None:
                    family.add_metric([row.model_version.version, row.scope], float(value))
        yield from families.values()


class _ProcessRegistry:
    """Adapts this process's default registry into another registry (single-process mode)."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def scrape_registry(*, app_state: bool = True) -> CollectorRegistry:
    """What /metrics serves: every process's values (multiprocess mode) or this process's, plus
    the scrape-time metrics."""
    registry = CollectorRegistry(auto_describe=False)
    # First, so that a collector failure it counts is already in the totals read after it.
    registry.register(PlatformCollector(app_state=app_state))  # type: ignore[arg-type]
    if multiprocess_enabled():
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessRegistry())  # type: ignore[arg-type]
    return registry
