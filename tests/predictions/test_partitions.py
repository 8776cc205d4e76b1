"""The predictions table in monthly partitions (PostgreSQL), and retention by partition."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from accounts.models import AuditLogEntry
from predictions.models import Prediction
from predictions.partitions import (
    LOWER_PARTITION,
    UPPER_PARTITION,
    add_months,
    month_start,
    monthly_partitions,
    partition_name_for,
    prediction_partitions_ensure,
)
from predictions.retention import predictions_purge_expired
from predictions.tasks import prediction_partitions_ensure as ensure_task
from tests.campaigns.factories import PredictionFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the table is partitioned on PostgreSQL only")


def stored_in(prediction: Prediction) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM predictions_prediction WHERE id = %s", [prediction.pk])
        return cursor.fetchone()[0]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def bounds() -> dict[str, tuple[datetime | str, datetime | str]]:
    """Each partition's (from, to): a datetime, or "MINVALUE"/"MAXVALUE"; a DEFAULT partition fails."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c "
            "ON c.oid = i.inhrelid WHERE i.inhparent = 'predictions_prediction'::regclass"
        )
        rows = cursor.fetchall()
    out = {}
    for name, bound in rows:
        match = re.fullmatch(r"FOR VALUES FROM \((.+)\) TO \((.+)\)", bound)
        assert match, f"{name}: {bound}"
        out[name] = tuple(
            v if v in ("MINVALUE", "MAXVALUE") else datetime.fromisoformat(v.strip("'")).astimezone(UTC)
            for v in match.groups()
        )
    return out


def assert_every_date_has_a_partition() -> dict[str, tuple[datetime | str, datetime | str]]:
    """The partitions chain from MINVALUE to MAXVALUE: no gap where a row could fail to land."""
    found = bounds()
    chain = sorted(found.items(), key=lambda item: (item[1][0] != "MINVALUE", str(item[1][0])))
    assert (chain[0][0], chain[0][1][0]) == (LOWER_PARTITION, "MINVALUE")
    assert (chain[-1][0], chain[-1][1][1]) == (UPPER_PARTITION, "MAXVALUE")
    for (_name, (_lo, hi)), (name, (lo, _hi)) in pairwise(chain):
        assert lo == hi, f"gap or overlap before {name}"
    months = [name for name, _ in chain[1:-1]]
    assert months == [p.name for p in monthly_partitions()]
    return found


def attached_indexes(table: str) -> int:
    """The table's indexes that are partitions of one of the parent's indexes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM pg_index x JOIN pg_inherits i ON i.inhrelid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass",
            [table],
        )
        return cursor.fetchone()[0]


def test_the_table_is_partitioned_by_month_of_created_at_with_range_catch_alls_on_both_sides():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pt.partstrat, a.attname FROM pg_partitioned_table pt "
            "JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0] "
            "WHERE pt.partrelid = 'predictions_prediction'::regclass"
        )
        assert cursor.fetchall() == [("r", "created_at")]
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'predictions_prediction'::regclass AND contype = 'p'")
        assert cursor.fetchone()[0] == "PRIMARY KEY (id, created_at)"
    # no DEFAULT partition (it would stop PostgreSQL reading the months in order)
    found = assert_every_date_has_a_partition()
    # the migration made this month and the ones ahead
    this_month = month_start(timezone.now())
    assert {add_months(this_month, k) for k in range(4)} <= {p.start for p in monthly_partitions()}
    assert found[UPPER_PARTITION] == (add_months(this_month, 4), "MAXVALUE")


def test_a_prediction_of_any_date_lands_and_reads_back():
    now = PredictionFactory(created_at=timezone.now())
    old = PredictionFactory(created_at=datetime(1999, 5, 17, 12, tzinfo=UTC))
    far = PredictionFactory(created_at=datetime(2150, 1, 1, tzinfo=UTC))
    assert stored_in(now) == partition_name_for(now.created_at)
    assert stored_in(old) == LOWER_PARTITION
    assert stored_in(far) == UPPER_PARTITION
    assert Prediction.objects.get(prediction_id=old.prediction_id).created_at.year == 1999
    assert list(Prediction.objects.order_by("created_at").values_list("pk", flat=True)) == [old.pk, now.pk, far.pk]


def test_the_beat_task_creates_the_months_ahead_once(settings):
    settings.PREDICTION_PARTITIONS_AHEAD = 6
    this_month = month_start(timezone.now())
    created = ensure_task.delay().get()
    # the migration made this month and three ahead; the task adds the fourth to the sixth
    assert created == [partition_name_for(add_months(this_month, k)) for k in (4, 5, 6)]
    assert ensure_task.delay().get() == []
    assert {add_months(this_month, k) for k in range(7)} <= {p.start for p in monthly_partitions()}
    audited = AuditLogEntry.objects.filter(action="predictions.partition_create")
    assert sorted(audited.values_list("object_id", flat=True)) == created
    # a new month takes the indexes of the table
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM pg_indexes WHERE tablename = %s", [created[-1]])
        assert cursor.fetchone()[0] == 10
    # the upper catch-all now starts after the last month, with its indexes still the parent's
    assert assert_every_date_has_a_partition()[UPPER_PARTITION] == (add_months(this_month, 7), "MAXVALUE")
    assert attached_indexes(UPPER_PARTITION) == attached_indexes(created[-1]) == 10


def test_a_month_created_after_its_rows_arrived_takes_them_out_of_the_upper_catch_all():
    this_month = month_start(timezone.now())
    later = add_months(this_month, 9)
    early = PredictionFactory(created_at=later + timedelta(days=3))
    beyond = PredictionFactory(created_at=add_months(later, 1))
    assert stored_in(early) == stored_in(beyond) == UPPER_PARTITION
    created = prediction_partitions_ensure(months_ahead=9)
    assert created == [partition_name_for(add_months(this_month, k)) for k in range(4, 10)]
    assert stored_in(early) == partition_name_for(later)
    assert stored_in(beyond) == UPPER_PARTITION
    assert set(Prediction.objects.values_list("pk", flat=True)) == {early.pk, beyond.pk}
    assert AuditLogEntry.objects.get(object_id=partition_name_for(later)).details["rows_moved"] == 1
    assert_every_date_has_a_partition()


def test_months_before_the_first_one_move_the_lower_catch_all_down_and_take_its_rows():
    first = monthly_partitions()[0].start
    older = add_months(first, -2)
    imported = PredictionFactory(created_at=older + timedelta(days=20))
    ancient = PredictionFactory(created_at=datetime(1999, 5, 17, tzinfo=UTC))
    assert stored_in(imported) == stored_in(ancient) == LOWER_PARTITION

    created = prediction_partitions_ensure(months_ahead=0, now=older)

    # the month in between comes too: a gap would be a range no partition takes
    assert created == [partition_name_for(older), partition_name_for(add_months(first, -1))]
    assert stored_in(imported) == partition_name_for(older)
    assert stored_in(ancient) == LOWER_PARTITION
    assert assert_every_date_has_a_partition()[LOWER_PARTITION] == ("MINVALUE", older)
    assert attached_indexes(LOWER_PARTITION) == 10
    assert prediction_partitions_ensure(months_ahead=0, now=older) == []


def test_a_lock_held_by_a_reader_makes_the_ensure_give_up_and_change_nothing(monkeypatch):
    from predictions import partitions

    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    before = bounds()
    # A reader in the middle of a query on the table (its ACCESS SHARE lock), on a connection of its own.
    reader = connection.copy()
    try:
        reader.set_autocommit(False)
        with reader.cursor() as cursor:
            cursor.execute("LOCK TABLE predictions_prediction IN ACCESS SHARE MODE")
        with pytest.raises(OperationalError, match="lock timeout"):
            prediction_partitions_ensure(months_ahead=6)
    finally:
        reader.rollback()
        reader.close()
    assert bounds() == before
    assert not AuditLogEntry.objects.filter(action="predictions.partition_create").exists()


def test_retention_drops_whole_months_and_deletes_the_rows_of_the_boundary_month(settings):
    settings.PREDICTION_RETENTION_DAYS = 30
    three_back = add_months(month_start(timezone.now()), -3)
    prediction_partitions_ensure(months_ahead=2, now=three_back)
    cutoff = add_months(three_back, 1) + timedelta(days=10)
    expired_month = PredictionFactory(created_at=three_back + timedelta(days=5))
    boundary_old = PredictionFactory(created_at=cutoff - timedelta(hours=1))
    boundary_kept = PredictionFactory(created_at=cutoff + timedelta(hours=1))
    in_lower = PredictionFactory(created_at=datetime(1999, 1, 1, tzinfo=UTC))
    recent = PredictionFactory(created_at=timezone.now())
    assert stored_in(boundary_old) == stored_in(boundary_kept) == partition_name_for(cutoff)

    removed = predictions_purge_expired(now=cutoff + timedelta(days=30))

    assert removed == 3
    assert not table_exists(partition_name_for(three_back))
    assert table_exists(partition_name_for(cutoff))
    assert set(Prediction.objects.values_list("pk", flat=True)) == {boundary_kept.pk, recent.pk}
    details = AuditLogEntry.objects.get(action="predictions.retention_purge").details
    assert details["deleted"] == 3
    assert details["partitions_dropped"] == [partition_name_for(three_back)]
    assert (details["rows_in_dropped_partitions"], details["rows_deleted"]) == (1, 2)
    left = set(Prediction.objects.values_list("pk", flat=True))
    assert left.isdisjoint({expired_month.pk, boundary_old.pk, in_lower.pk})
    # the lower catch-all now ends where the first month left starts: rows of any date still land
    assert assert_every_date_has_a_partition()[LOWER_PARTITION] == ("MINVALUE", month_start(cutoff))
    landed = [PredictionFactory(created_at=datetime(1999, 5, 17, tzinfo=UTC)),
              PredictionFactory(created_at=three_back + timedelta(days=5)),
              PredictionFactory(created_at=datetime(2150, 1, 1, tzinfo=UTC))]
    assert [stored_in(p) for p in landed] == [LOWER_PARTITION, LOWER_PARTITION, UPPER_PARTITION]
    assert list(Prediction.objects.filter(pk__in=[p.pk for p in landed]).order_by("created_at")
                .values_list("prediction_id", flat=True)) == [p.prediction_id for p in landed]
    # nothing left to do the next time but the rows just written in the expired range
    assert predictions_purge_expired(now=cutoff + timedelta(days=30)) == 2
    assert predictions_purge_expired(now=cutoff + timedelta(days=30)) == 0


def test_the_command_lists_the_partitions_and_creates_missing_months(capsys):
    from django.core.management import call_command

    this_month = month_start(timezone.now())
    call_command("prediction_partitions", "--ensure", "--months-ahead", "5")
    out = capsys.readouterr().out
    assert f"Created {partition_name_for(add_months(this_month, 4))}, {partition_name_for(add_months(this_month, 5))}."\
        in out
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert (listed[0], listed[-1]) == (LOWER_PARTITION, UPPER_PARTITION)
    assert "MINVALUE" in out.splitlines()[1]
    assert "MAXVALUE" in out.splitlines()[-1]
    assert partition_name_for(add_months(this_month, 5)) in listed
