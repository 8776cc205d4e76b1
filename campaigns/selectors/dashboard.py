"""The dashboard's figures: customers per risk level, new high risk per day, population snapshot, open work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from accounts.services import Actor
from campaigns.models import (
    OPEN_FOLLOW_UP_STATUSES,
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    TargetGroup,
)
from customers.models import Customer
from predictions.models import Prediction, RiskLevel

_LATEST_LEVEL_SQL = {
    # DISTINCT ON walks the (customer_id, created_at) index; the window form is for SQLite (make run).
    "postgresql": "SELECT risk_level, COUNT(*) FROM (SELECT DISTINCT ON (customer_id) risk_level FROM {table} "
    "ORDER BY customer_id, created_at DESC, id DESC) latest GROUP BY risk_level",
    "default": "SELECT risk_level, COUNT(*) FROM (SELECT risk_level, ROW_NUMBER() OVER (PARTITION BY customer_id "
    "ORDER BY created_at DESC, id DESC) AS rn FROM {table}) ranked WHERE rn = 1 GROUP BY risk_level",
}

# Each customer's first prediction at a level, counted per day of that first prediction. Grouped
# in the database: bucketing tens of thousands of timestamps in Python cost ~200 ms.
_NEW_AT_LEVEL_SQL = (
    "SELECT risk_level, DATE(first_at), COUNT(*) FROM (SELECT customer_id, risk_level, MIN(created_at) AS first_at "
    "FROM {table} WHERE risk_level IN (%s, %s) GROUP BY customer_id, risk_level) firsts "
    "WHERE first_at >= %s GROUP BY risk_level, DATE(first_at)"
)


def _prediction_table() -> str:
    return connection.ops.quote_name(Prediction._meta.db_table)


def customers_by_risk_level() -> dict[str, int]:
    """How many customers each risk level holds by their latest prediction; 'unscored' for the rest."""
    counts = {level.value: 0 for level in RiskLevel}
    sql = _LATEST_LEVEL_SQL.get(connection.vendor, _LATEST_LEVEL_SQL["default"]).format(table=_prediction_table())
    with connection.cursor() as cursor:
        cursor.execute(sql)
        counts.update(dict(cursor.fetchall()))
    counts["unscored"] = max(0, Customer.objects.count() - sum(counts.values()))
    return counts


def new_high_risk_per_day(*, days: int = 30, now: datetime | None = None) -> list[tuple[date, int, int]]:
    """(day, new high, new critical) for the last ``days`` days (UTC days, as TIME_ZONE is UTC).

    A customer is new at a level on the day of their first prediction at that level.
    """
    now = now or timezone.now()
    first_day = timezone.localdate(now) - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    per_day: dict[date, list[int]] = {first_day + timedelta(days=i): [0, 0] for i in range(days)}
    with connection.cursor() as cursor:
        cursor.execute(
            _NEW_AT_LEVEL_SQL.format(table=_prediction_table()), [RiskLevel.HIGH.value, RiskLevel.CRITICAL.value, since]
        )
        for level, day, n in cursor.fetchall():
            day = date.fromisoformat(day) if isinstance(day, str) else day  # SQLite returns text
            if day in per_day:
                per_day[day][0 if level == RiskLevel.HIGH else 1] += n
    return [(day, high, critical) for day, (high, critical) in sorted(per_day.items())]


# The population charts scan every prediction (~100 ms per 100,000 customers, growing with the
# history), too slow to compute on each page view. They are served from a snapshot in the shared
# cache that beat refreshes every few minutes (campaigns.tasks.refresh_population_stats); a stale
# snapshot is still served while one refresh is queued.
POPULATION_CACHE_KEY = "campaigns:population-stats:v1"
POPULATION_FRESH_SECONDS = 300
POPULATION_KEEP_SECONDS = 24 * 3600
_POPULATION_REFRESH_LOCK = "campaigns:population-stats:refreshing"


@dataclass(frozen=True)
class PopulationStats:
    risk: dict[str, int]
    new_high: list[tuple[date, int, int]]
    computed_at: datetime

    @property
    def total(self) -> int:
        return sum(self.risk.values())

    @property
    def new_high_total(self) -> int:
        return sum(high + critical for _, high, critical in self.new_high)


def population_stats_refresh(*, now: datetime | None = None) -> PopulationStats:
    """Compute the population figures and store them as the current snapshot."""
    now = now or timezone.now()
    stats_ = PopulationStats(customers_by_risk_level(), new_high_risk_per_day(days=30, now=now), now)
    cache.set(
        POPULATION_CACHE_KEY,
        {"risk": stats_.risk, "new_high": stats_.new_high, "computed_at": stats_.computed_at},
        POPULATION_KEEP_SECONDS,
    )
    return stats_


def population_stats(*, now: datetime | None = None) -> PopulationStats:
    """The latest snapshot; computed now when there is none, refreshed in the background when stale."""
    now = now or timezone.now()
    cached = cache.get(POPULATION_CACHE_KEY)
    if cached is None:
        return population_stats_refresh(now=now)
    snapshot = PopulationStats(cached["risk"], cached["new_high"], cached["computed_at"])
    if (now - snapshot.computed_at).total_seconds() > POPULATION_FRESH_SECONDS and cache.add(
        _POPULATION_REFRESH_LOCK, 1, 60
    ):
        from campaigns.tasks import refresh_population_stats

        refresh_population_stats.delay()
    return snapshot


@dataclass(frozen=True)
class OpenWork:
    open: int
    overdue: int
    mine: int
    mine_overdue: int
    unassigned: int
    by_status: dict[str, int]


def open_follow_ups(*, actor: Actor, today: date | None = None) -> OpenWork:
    today = today or timezone.localdate()
    qs = CampaignTarget.objects.filter(group=TargetGroup.TREATMENT, campaign__status=CampaignStatus.ACTIVE)
    if not actor.is_superuser:
        qs = qs.filter(campaign__department_id=actor.department_id)
    rows = (
        qs.values("follow_up_status")
        .annotate(
            n=Count("pk"),
            overdue=Count("pk", filter=Q(due_date__lt=today)),
            mine=Count("pk", filter=Q(assignee_id=actor.user_id)),
            mine_overdue=Count("pk", filter=Q(assignee_id=actor.user_id, due_date__lt=today)),
            unassigned=Count("pk", filter=Q(assignee__isnull=True)),
        )
        .order_by()
    )
    by_status = {s.value: 0 for s in FollowUpStatus}
    totals = dict.fromkeys(("open", "overdue", "mine", "mine_overdue", "unassigned"), 0)
    for row in rows:
        by_status[row["follow_up_status"]] = row["n"]
        if row["follow_up_status"] in OPEN_FOLLOW_UP_STATUSES:
            totals["open"] += row["n"]
            for name in ("overdue", "mine", "mine_overdue", "unassigned"):
                totals[name] += row[name]
    return OpenWork(by_status=by_status, **totals)
