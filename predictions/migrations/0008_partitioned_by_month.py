"""The predictions table becomes partitioned by month of created_at on PostgreSQL (issue 13).

About a million rows a night: a year is ~365M rows, and retention by DELETE left the table and its
indexes bloated and the purge running for hours. A partition per month lets retention drop whole
months and keeps each month's indexes the size of one month.

On PostgreSQL the first operation rebuilds the table: the old one is renamed, a partitioned table
with the same columns takes its name, with one partition per month from the first month that has
rows (or the first month within PREDICTION_RETENTION_DAYS, if older) to PREDICTION_PARTITIONS_AHEAD
months after this one, contiguous, and two range catch-alls before and after them (a row of any
date lands; not a DEFAULT partition, which would stop PostgreSQL reading the months in order,
predictions.partitions); the rows are copied, the
identity sequence moved on past them, the old table dropped, and the indexes of the new model
state built once, after the copy. The database's primary key becomes (id, created_at), as a
partitioned table requires; Django keeps ``id`` as the pk. The state changes after it (the
indexes and the unique constraint that name created_at) are what that rebuild makes, so on
PostgreSQL they change only Django's state; SQLite (``make run``) keeps a plain table and applies
them as ordinary schema changes.

The table is locked for the copy: on a large table, run it in a maintenance window (about a
minute per 10M rows measured on the bench machine, docs/OPERATIONS.md).
"""

import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

TABLE = "predictions_prediction"
OLD = "predictions_prediction_unpartitioned"

# The indexes of the new state, built on the partitioned parent (each becomes one index per
# partition). Names match the model's Meta, so that later migrations can alter them.
INDEXES = (
    f'ALTER TABLE "{TABLE}" ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY ("id", "created_at")',
    f'CREATE INDEX "prediction_customer_latest_idx" ON "{TABLE}" ("customer_id", "created_at" DESC)',
    f'CREATE INDEX "prediction_created_idx" ON "{TABLE}" ("created_at")',
    f'CREATE INDEX "prediction_prediction_id_idx" ON "{TABLE}" ("prediction_id")',
    # The foreign key's own index (db_index, Django's name for it): the registry's per-version
    # reads and the PROTECT check if a model version were ever deleted.
    f'CREATE INDEX "predictions_prediction_model_version_id_db340f9b" ON "{TABLE}" ("model_version_id")',
    f'CREATE INDEX "prediction_department_idx" ON "{TABLE}" ("department_id") WHERE "department_id" IS NOT NULL',
    f'CREATE INDEX "prediction_api_key_idx" ON "{TABLE}" ("requested_by_key_id") '
    'WHERE "requested_by_key_id" IS NOT NULL',
    f'CREATE INDEX "prediction_user_idx" ON "{TABLE}" ("requested_by_user_id") WHERE "requested_by_user_id" IS NOT NULL',
    f'CREATE INDEX "prediction_risk_increased_idx" ON "{TABLE}" ("created_at" DESC) WHERE "risk_increased"',
    f'CREATE UNIQUE INDEX "prediction_one_per_customer_per_job" ON "{TABLE}" ("batch_job_id", "customer_id", '
    '"created_at") WHERE "batch_job_id" IS NOT NULL',
)


def _month(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def _rename_sequence(cursor) -> None:
    # LIKE ... INCLUDING IDENTITY made a new sequence named after the table it was created as.
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [TABLE])
    sequence = cursor.fetchone()[0]
    if sequence and sequence.split(".")[-1].strip('"') != f"{TABLE}_id_seq":
        cursor.execute(f'ALTER SEQUENCE {sequence} RENAME TO "{TABLE}_id_seq"')


def _move_sequence_past_rows(cursor) -> None:
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE(MAX(id), 0) + 1, false) FROM \"{TABLE}\"",
        [TABLE],
    )


def partition(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    ahead = getattr(settings, "PREDICTION_PARTITIONS_AHEAD", 3)
    now = datetime.now(UTC)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        cursor.execute(
            f'CREATE TABLE "{TABLE}" (LIKE "{OLD}" INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING STORAGE) '
            'PARTITION BY RANGE ("created_at")'
        )
        cursor.execute(
            f"SELECT MIN(created_at AT TIME ZONE 'UTC') FROM \"{OLD}\""  # noqa: S608
        )
        oldest = cursor.fetchone()[0]
        first = _month(now.year, now.month)
        if oldest is not None:
            first = min(first, _month(oldest.year, oldest.month))
        days = getattr(settings, "PREDICTION_RETENTION_DAYS", 0)
        if days > 0:
            # Months retention would drop at its next run are not worth a partition each (a row
            # in 1999 would otherwise bring 300 of them): their rows wait in the lower catch-all,
            # which retention purges by row.
            horizon = now - timedelta(days=days)
            first = max(first, _month(horizon.year, horizon.month))
        last = _month(now.year, now.month + ahead)
        cursor.execute(
            f'CREATE TABLE "{TABLE}_before" PARTITION OF "{TABLE}" FOR VALUES FROM (MINVALUE) TO (%s)', [first]
        )
        start = first
        while start <= last:
            end = _month(start.year, start.month + 1)
            cursor.execute(
                f'CREATE TABLE "{TABLE}_y{start.year:04d}m{start.month:02d}" PARTITION OF "{TABLE}" '
                "FOR VALUES FROM (%s) TO (%s)",
                [start, end],
            )
            start = end
        cursor.execute(f'CREATE TABLE "{TABLE}_after" PARTITION OF "{TABLE}" FOR VALUES FROM (%s) TO (MAXVALUE)', [start])
        cursor.execute(f'INSERT INTO "{TABLE}" SELECT * FROM "{OLD}"')  # noqa: S608 - same columns (LIKE)
        _move_sequence_past_rows(cursor)
        # campaigns 0010 (run before this) dropped the one foreign key that referenced the table.
        cursor.execute(f'DROP TABLE "{OLD}"')
        _rename_sequence(cursor)
        for statement in INDEXES:
            cursor.execute(statement)
        cursor.execute(f'ANALYZE "{TABLE}"')


def unpartition(apps, schema_editor) -> None:
    """Back to one plain table with the indexes of migration 0007 (``apps`` is that state)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    model = apps.get_model("predictions", "Prediction")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f'LOCK TABLE "{TABLE}" IN ACCESS EXCLUSIVE MODE')
        cursor.execute(f'ALTER TABLE "{TABLE}" RENAME TO "{OLD}"')
        # The old state's index names are free once the partitioned ones are gone.
        cursor.execute(f'ALTER TABLE "{OLD}" DROP CONSTRAINT "{TABLE}_pkey"')
        for statement in INDEXES[1:]:
            cursor.execute(f'DROP INDEX IF EXISTS "{statement.split(chr(34))[1]}"')
    schema_editor.create_model(model)
    with schema_editor.connection.cursor() as cursor:
        columns = ", ".join(f'"{f.column}"' for f in model._meta.concrete_fields)
        cursor.execute(f'INSERT INTO "{TABLE}" ({columns}) SELECT {columns} FROM "{OLD}"')  # noqa: S608
        _move_sequence_past_rows(cursor)
        cursor.execute(f'DROP TABLE "{OLD}" CASCADE')  # with its partitions
        _rename_sequence(cursor)


class NotOnPostgreSQL(Operation):
    """A schema change applied as usual except on PostgreSQL, where ``partition`` already built its result."""

    reversible = True

    def __init__(self, operation: Operation) -> None:
        self.operation = operation

    def deconstruct(self):  # type: ignore[no-untyped-def]
        return (self.__class__.__qualname__, [self.operation], {})

    def state_forwards(self, app_label, state) -> None:  # type: ignore[no-untyped-def]
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{self.operation.describe()} (PostgreSQL: built by the partitioning)"


class Migration(migrations.Migration):
    # The rebuild copies the whole table in one transaction.
    atomic = True

    dependencies = [
        ("accounts", "0001_initial"),
        ("modelregistry", "0007_shadow_scoring"),
        ("predictions", "0007_prediction_json_as_text"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(partition, unpartition, elidable=False),
        NotOnPostgreSQL(migrations.RemoveConstraint(model_name="prediction", name="prediction_one_per_customer_per_job")),
        NotOnPostgreSQL(migrations.RemoveIndex(model_name="prediction", name="prediction_level_idx")),
        NotOnPostgreSQL(migrations.AlterField(model_name="prediction", name="created_at", field=models.DateTimeField())),
        NotOnPostgreSQL(
            migrations.AlterField(
                model_name="prediction", name="prediction_id", field=models.UUIDField(default=uuid.uuid4, editable=False)
            )
        ),
        NotOnPostgreSQL(
            migrations.AddIndex(
                model_name="prediction", index=models.Index(fields=["created_at"], name="prediction_created_idx")
            )
        ),
        NotOnPostgreSQL(
            migrations.AddIndex(
                model_name="prediction",
                index=models.Index(fields=["prediction_id"], name="prediction_prediction_id_idx"),
            )
        ),
        NotOnPostgreSQL(
            migrations.AddConstraint(
                model_name="prediction",
                constraint=models.UniqueConstraint(
                    condition=models.Q(("batch_job__isnull", False)),
                    fields=("batch_job", "customer_id", "created_at"),
                    name="prediction_one_per_customer_per_job",
                    violation_error_message="A batch job scores each customer once.",
                ),
            )
        ),
    ]
