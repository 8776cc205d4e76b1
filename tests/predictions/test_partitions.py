"""The predictions table in monthly partitions (PostgreSQL), and retention by partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLogEntry
from predictions.models import Prediction
from predictions.partitions import (
    DEFAULT_PARTITION,
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


def test_the_table_is_partitioned_by_month_of_created_at_with_a_default_partition():
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
    assert table_exists(DEFAULT_PARTITION)
    # the migration made this month and the ones ahead
    this_month = month_start(timezone.now())
    assert {add_months(this_month, k) for k in range(4)} <= {p.start for p in monthly_partitions()}


def test_a_prediction_of_any_date_lands_and_reads_back():
    now = PredictionFactory(created_at=timezone.now())
    old = PredictionFactory(created_at=datetime(1999, 5, 17, 12, tzinfo=UTC))
    far = PredictionFactory(created_at=datetime(2150, 1, 1, tzinfo=UTC))
    assert stored_in(now) == partition_name_for(now.created_at)
    assert stored_in(old) == stored_in(far) == DEFAULT_PARTITION
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


def test_a_month_created_after_its_rows_arrived_takes_them_out_of_the_default_partition():
    this_month = month_start(timezone.now())
    later = add_months(this_month, 9)
    early = PredictionFactory(created_at=later + timedelta(days=3))
    assert stored_in(early) == DEFAULT_PARTITION
    created = prediction_partitions_ensure(months_ahead=9)
    assert created == [partition_name_for(add_months(this_month, k)) for k in range(4, 10)]
    assert stored_in(early) == partition_name_for(later)
    assert Prediction.objects.filter(pk=early.pk).exists()


def test_retention_drops_whole_months_and_deletes_the_rows_of_the_boundary_month(settings):
    settings.PREDICTION_RETENTION_DAYS = 30
    three_back = add_months(month_start(timezone.now()), -3)
    prediction_partitions_ensure(months_ahead=2, now=three_back)
    cutoff = add_months(three_back, 1) + timedelta(days=10)
    expired_month = PredictionFactory(created_at=three_back + timedelta(days=5))
    boundary_old = PredictionFactory(created_at=cutoff - timedelta(hours=1))
    boundary_kept = PredictionFactory(created_at=cutoff + timedelta(hours=1))
    in_default = PredictionFactory(created_at=datetime(1999, 1, 1, tzinfo=UTC))
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
    assert left.isdisjoint({expired_month.pk, boundary_old.pk, in_default.pk})
    # nothing left to do the next time
    assert predictions_purge_expired(now=cutoff + timedelta(days=30)) == 0


def test_the_command_lists_the_partitions_and_creates_missing_months(capsys):
    from django.core.management import call_command

    this_month = month_start(timezone.now())
    call_command("prediction_partitions", "--ensure", "--months-ahead", "5")
    out = capsys.readouterr().out
    assert f"Created {partition_name_for(add_months(this_month, 4))}, {partition_name_for(add_months(this_month, 5))}."\
        in out
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed[-1] == DEFAULT_PARTITION
    assert partition_name_for(add_months(this_month, 5)) in listed
