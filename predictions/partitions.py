"""The monthly partitions of the predictions table (PostgreSQL; SQLite keeps one plain table).

``predictions_prediction`` is declaratively partitioned by range of ``created_at``, one partition
per calendar month in UTC (``predictions_prediction_y2026m12``), contiguous, plus two range
catch-alls: ``predictions_prediction_before`` FROM (MINVALUE) TO (the first month) and
``predictions_prediction_after`` FROM (the month after the last) TO (MAXVALUE). A write of any
date always lands (tests and imports write old dates). Writers insert into the parent table;
PostgreSQL routes each row.

Why two range catch-alls and not a DEFAULT partition: with a DEFAULT partition PostgreSQL cannot
read the months in order (a DEFAULT partition's rows may sort between any two months), so every
per-customer ``ORDER BY created_at DESC LIMIT 1`` probed every month's index and merged them
(Merge Append); with range partitions only it reads the newest month first (ordered Append) and
stops there. The price: the months must stay contiguous (a gap would be a range where a row
cannot land), so creating a month beyond the last (or before the first) creates every month in
between and re-bounds the catch-all on that side (``_create_month``).

Beat runs ``prediction_partitions_ensure`` daily (PREDICTION_PARTITIONS_CRON): this month's and
the next PREDICTION_PARTITIONS_AHEAD months' partitions exist before their first row, so the
upper catch-all normally stays empty. Creating a month whose rows already sit in a catch-all
moves them into the new partition.

Retention (predictions.retention) drops whole partitions (moving the lower catch-all's bound up to
the new first month, so the dropped month's range still takes rows) and deletes rows only in the
boundary month and the lower catch-all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from predictions.models import Prediction

LOWER_PARTITION = f"{Prediction._meta.db_table}_before"
UPPER_PARTITION = f"{Prediction._meta.db_table}_after"
_MONTHLY = re.compile(rf"^{Prediction._meta.db_table}_y(\d{{4}})m(\d{{2}})$")
# Re-bounding a catch-all detaches it, which takes an ACCESS EXCLUSIVE lock on the parent until
# the transaction commits (as does dropping a partition): wait this long for it, else give up and
# let the next run try, rather than queue every reader of the table behind the DDL.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime  # inclusive
    end: datetime  # exclusive


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of the month ``moment`` falls in."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(start: datetime, months: int) -> datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name_for(created_at: datetime) -> str:
    """The monthly partition a row with this ``created_at`` belongs to (whether it exists or not).

    Writers insert into the parent table and PostgreSQL routes the rows: a 300,000-row COPY took
    the same time into the parent as straight into the month's partition (4.5-5.9 s either way on
    the bench machine). A partition has no identity default of its own (PostgreSQL 15 keeps it on
    the parent), so a direct writer would also have to supply ``id``.
    """
    start = month_start(created_at)
    return f"{Prediction._meta.db_table}_y{start.year:04d}m{start.month:02d}"


def is_partitioned() -> bool:
    """Whether the predictions table is partitioned here (PostgreSQL after migration 0008)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [Prediction._meta.db_table],
        )
        return cursor.fetchone() is not None


def monthly_partitions() -> list[Partition]:
    """The monthly partitions that exist, oldest first (the catch-alls are not listed)."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [Prediction._meta.db_table],
        )
        names = [row[0] for row in cursor.fetchall()]
    out = []
    for name in names:
        match = _MONTHLY.match(name)
        if match:
            start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
            out.append(Partition(name, start, add_months(start, 1)))
    return sorted(out, key=lambda p: p.start)


def _create_month(cursor, start: datetime, *, below: bool) -> int:  # type: ignore[no-untyped-def]
    """Create the month next to the first (``below``) or last monthly partition; returns the rows moved.

    The catch-all on that side covers the month now. In the caller's transaction: detach it, build
    the month with its rows taken out of the catch-all, attach the month, attach the catch-all
    again with its bound moved past the month. Detaching locks the parent (ACCESS EXCLUSIVE) to
    the commit, so readers wait those milliseconds (normally no row moves: beat creates months
    ahead of their rows); the catch-all keeps its indexes while detached and they are attached to
    the parent's indexes again with it.
    """
    quote = connection.ops.quote_name
    parent = quote(Prediction._meta.db_table)
    catch_all = quote(LOWER_PARTITION if below else UPPER_PARTITION)
    name = quote(partition_name_for(start))
    check = quote(partition_name_for(start) + "_bounds")
    end = add_months(start, 1)
    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # Built detached with a CHECK of its bounds, then attached: the CHECK spares the attach a scan
    # of the new table, and the parent's indexes are created on it and attached to their parent.
    cursor.execute(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING STORAGE)")
    cursor.execute(f"ALTER TABLE {name} ADD CONSTRAINT {check} CHECK (created_at >= %s AND created_at < %s)",
                   [start, end])
    cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {catch_all}")
    cursor.execute(
        f"WITH moved AS (DELETE FROM {catch_all} WHERE created_at >= %s AND created_at < %s RETURNING *) "  # noqa: S608
        f"INSERT INTO {name} SELECT * FROM moved",
        [start, end],
    )
    moved = cursor.rowcount
    cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])
    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {check}")
    # The re-attach checks the catch-all's rows against its new bound (a scan of what is left in
    # it: normally nothing above the months ahead, only not-yet-purged rows below the first).
    if below:
        cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {catch_all} FOR VALUES FROM (MINVALUE) TO (%s)",
                       [start])
    else:
        cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {catch_all} FOR VALUES FROM (%s) TO (MAXVALUE)",
                       [end])
    return moved


def raise_lower_bound(cursor, to: datetime) -> None:  # type: ignore[no-untyped-def]
    """Move the lower catch-all's upper bound to ``to`` (retention, after dropping the first month).

    A dropped first month would otherwise leave a range no partition takes: a row dated in it
    (an import of old predictions) would fail to insert. In the caller's transaction, which holds
    the parent's ACCESS EXCLUSIVE lock; the re-attach scans the catch-all (retention deletes its
    expired rows first, so it is normally empty).
    """
    quote = connection.ops.quote_name
    parent, catch_all = quote(Prediction._meta.db_table), quote(LOWER_PARTITION)
    cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {catch_all}")
    cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {catch_all} FOR VALUES FROM (MINVALUE) TO (%s)", [to])


def prediction_partitions_ensure(*, months_ahead: int | None = None, now: datetime | None = None) -> list[str]:
    """Create this month's and the next ``months_ahead`` months' partitions that are missing.

    The months stay contiguous: a month past the last partition (or before the first, for an
    import of old predictions with ``now`` in the past) comes with every month in between.
    Idempotent; returns the names created, oldest first (each audited). Each month is created in
    its own transaction, so a lock timeout on one leaves the others done and the next run retries.
    """
    if not is_partitioned():
        return []
    ahead = settings.PREDICTION_PARTITIONS_AHEAD if months_ahead is None else months_ahead
    wanted_first = month_start(now or timezone.now())
    wanted_last = add_months(wanted_first, ahead)
    existing = monthly_partitions()
    first, last = existing[0].start, existing[-1].start  # the migration leaves at least this month
    steps: list[tuple[datetime, bool]] = []
    start = last
    while start < wanted_last:
        start = add_months(start, 1)
        steps.append((start, False))
    start = first
    while start > wanted_first:
        start = add_months(start, -1)
        steps.append((start, True))
    for start, below in steps:
        with transaction.atomic(), connection.cursor() as cursor:
            moved = _create_month(cursor, start, below=below)
            audit_record(actor=SYSTEM, action="predictions.partition_create", object_type="predictions.prediction",
                         object_id=partition_name_for(start),
                         details={"partition": partition_name_for(start), "from": start.isoformat(),
                                  "to": add_months(start, 1).isoformat(),
                                  "catch_all": LOWER_PARTITION if below else UPPER_PARTITION, "rows_moved": moved})
    return [partition_name_for(start) for start, _below in sorted(steps)]


def prediction_partitions_report() -> list[dict[str, object]]:
    """Each partition (lower catch-all, months oldest first, upper catch-all) with its bounds, estimated rows, size."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid), pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
            "ORDER BY c.relname",
            [Prediction._meta.db_table],
        )
        rows = cursor.fetchall()
    report = [
        {"name": name, "estimated_rows": max(rows_, 0), "bytes": size, "bounds": bounds}
        for name, rows_, size, bounds in rows
    ]
    order = {LOWER_PARTITION: 0, UPPER_PARTITION: 2}
    return sorted(report, key=lambda r: (order.get(str(r["name"]), 1), r["name"]))
