"""PREDICTION_RETENTION_DAYS: predictions older than that are removed by a beat task.

On PostgreSQL the table is partitioned by month (predictions.partitions): a month entirely
older than the cutoff goes as a whole (DROP TABLE of its partition: no dead rows to vacuum, no
index churn, seconds instead of the hours a DELETE of ~30M rows took), and the lower catch-all's
bound moves up to the next month so that the dropped month's range still takes a row (an import
of old predictions). Only the rows of the boundary month (the one the cutoff falls in) and of the
lower catch-all are deleted row by row, in batches. SQLite (``make run``) has one plain table and
takes the row path only.

Before any prediction goes, ``predictions_expiring`` lets the apps above clear their references
to it (campaign targets keep a copy of what the prediction said, and drop the link), in the same
transaction: a dropped partition runs no ORM ``on_delete``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from predictions.models import Prediction
from predictions.partitions import LOCK_TIMEOUT, Partition, monthly_partitions, raise_lower_bound
from predictions.signals import predictions_expiring

# Rows per transaction on the row path: short row locks, and campaigns' references cleared by
# a 10,000-id lookup per batch.
DELETE_BATCH_SIZE = 10_000


def _clear_references(predictions, cleared: Counter) -> None:  # type: ignore[no-untyped-def]
    for _receiver, response in predictions_expiring.send(sender=Prediction, predictions=predictions):
        cleared.update(response or {})


def _drop_partition(partition: Partition, cleared: Counter) -> int:
    """Drop the first monthly partition, wholly expired; returns its row count.

    The lower catch-all then ends where the next month starts, in the same transaction: no range
    is left without a partition.
    """
    quote = connection.ops.quote_name
    name = quote(partition.name)
    # Counted before the lock: an expired month takes no writes, and the scan (~1 s per 10M
    # rows) would otherwise hold every reader of the table behind the exclusive lock.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {name}")  # noqa: S608 - a partition name from the catalog, quoted
        rows = cursor.fetchone()[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # The lock DROP TABLE needs, taken first: no campaign enrols on one of the partition's
        # predictions between the references being cleared and the drop, and no reader holding
        # the table can deadlock with us (locking only the partition first could: the reader
        # waits for the partition, we for the table). Readers wait for the few milliseconds of
        # the unlink and the drop; a lock timeout fails the task, which beat's retries repeat.
        cursor.execute(f"LOCK TABLE {quote(Prediction._meta.db_table)} IN ACCESS EXCLUSIVE MODE")
        _clear_references(
            Prediction.objects.filter(created_at__gte=partition.start, created_at__lt=partition.end), cleared
        )
        cursor.execute(f"DROP TABLE {name}")
        raise_lower_bound(cursor, partition.end)
    return rows


def _delete_rows(cutoff: datetime, cleared: Counter) -> int:
    """Delete the rows older than ``cutoff`` that are left (boundary month, lower catch-all)."""
    table = connection.ops.quote_name(Prediction._meta.db_table)
    expired = Prediction.objects.filter(created_at__lt=cutoff)
    deleted = 0
    while True:
        with transaction.atomic():
            pks = list(expired.order_by().values_list("pk", flat=True)[:DELETE_BATCH_SIZE])
            if not pks:
                return deleted
            _clear_references(expired.filter(pk__in=pks), cleared)
            # Raw, not QuerySet.delete(): the ORM would load every row (its JSON included) to run
            # on_delete, which the signal has done, then delete by id alone, which on PostgreSQL
            # probes every partition's primary key; the created_at condition keeps it to the
            # boundary month and the lower catch-all.
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute(f"DELETE FROM {table} WHERE created_at < %s AND id = ANY(%s)", [cutoff, pks])  # noqa: S608
                else:
                    marks = ", ".join(["%s"] * len(pks))
                    cursor.execute(f"DELETE FROM {table} WHERE created_at < %s AND id IN ({marks})", [cutoff, *pks])  # noqa: S608
                deleted += cursor.rowcount


def predictions_purge_expired(*, now: datetime | None = None) -> int:
    """Remove predictions past the retention period (0 keeps them all); audited with the count."""
    days = settings.PREDICTION_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    cleared: Counter = Counter()
    dropped: list[str] = []
    from_partitions = 0
    by_row = 0
    partitions = monthly_partitions()
    # Oldest first; the last month stays whatever the cutoff (the catch-alls' bounds hang on it).
    expired = [p for p in partitions[:-1] if p.end <= cutoff]
    if expired:
        # The lower catch-all's rows (all older than the first month) go first, so that moving its
        # bound up after each drop scans an empty table under the exclusive lock.
        by_row += _delete_rows(expired[0].start, cleared)
    for partition in expired:
        from_partitions += _drop_partition(partition, cleared)
        dropped.append(partition.name)
    by_row += _delete_rows(cutoff, cleared)
    deleted = from_partitions + by_row
    if deleted or dropped:
        audit_record(actor=SYSTEM, action="predictions.retention_purge", object_type="predictions.prediction",
                     details={"deleted": deleted, "older_than": cutoff.isoformat(), "retention_days": days,
                              "partitions_dropped": dropped, "rows_in_dropped_partitions": from_partitions,
                              "rows_deleted": by_row, "references_cleared": dict(cleared)})
    return deleted
