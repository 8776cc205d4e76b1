"""Customers as the contract describes them, and the outcomes recorded for them."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from churn_ml import schema


def _choices(name: str) -> list[tuple[str, str]]:
    return [(v, v) for v in schema.ENUM_FIELDS[name]]


class Customer(models.Model):
    """One subscriber, upserted by its natural key customer_id."""

    customer_id = models.CharField(max_length=64, unique=True)
    gender = models.CharField(max_length=6, choices=_choices("gender"), null=True, blank=True)
    senior_citizen = models.BooleanField(default=False)
    partner = models.BooleanField()
    dependents = models.BooleanField()
    tenure_months = models.PositiveSmallIntegerField()
    phone_service = models.BooleanField()
    multiple_lines = models.CharField(max_length=16, choices=_choices("multiple_lines"))
    internet_service = models.CharField(max_length=11, choices=_choices("internet_service"))
    online_security = models.CharField(max_length=19, choices=_choices("online_security"))
    online_backup = models.CharField(max_length=19, choices=_choices("online_backup"))
    device_protection = models.CharField(max_length=19, choices=_choices("device_protection"))
    tech_support = models.CharField(max_length=19, choices=_choices("tech_support"))
    streaming_tv = models.CharField(max_length=19, choices=_choices("streaming_tv"))
    streaming_movies = models.CharField(max_length=19, choices=_choices("streaming_movies"))
    contract_type = models.CharField(max_length=14, choices=_choices("contract_type"))
    paperless_billing = models.BooleanField()
    payment_method = models.CharField(max_length=16, choices=_choices("payment_method"))
    # Floats, not decimals: every consumer (validation, scoring, drift) computes in float64, and
    # the contract's ranges hold cents comfortably within float precision.
    monthly_charges = models.FloatField()
    total_charges = models.FloatField(null=True, blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    income = models.FloatField(null=True, blank=True)

    quality_completeness = models.FloatField(default=100.0, help_text="Share of the record's fields with a value, %.")
    quality_warnings = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=100, help_text="Where the last write came from.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["customer_id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(tenure_months__lte=600),
                name="customer_tenure_range",
                violation_error_message="tenure_months must be between 0 and 600.",
            ),
            models.CheckConstraint(
                condition=models.Q(monthly_charges__gte=0, monthly_charges__lte=10_000),
                name="customer_monthly_charges_range",
                violation_error_message="monthly_charges must be between 0 and 10000.",
            ),
            models.CheckConstraint(
                condition=models.Q(total_charges__isnull=True) | models.Q(total_charges__gte=0),
                name="customer_total_charges_range",
                violation_error_message="total_charges must be >= 0.",
            ),
        ]
        indexes = [models.Index(fields=["contract_type"], name="customer_contract_idx")]

    def __str__(self) -> str:
        return self.customer_id


DATA_FIELDS = schema.FIELD_ORDER


class Outcome(models.Model):
    """What really happened to a customer: churned or stayed, as observed at a time, from a source."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="outcomes")
    churned = models.BooleanField()
    observed_at = models.DateTimeField()
    source = models.CharField(max_length=100)
    recorded_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-observed_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "observed_at", "source"],
                name="outcome_unique_observation",
                violation_error_message="This outcome has already been recorded.",
            )
        ]
        indexes = [models.Index(fields=["customer", "-observed_at"], name="outcome_customer_latest_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} {'churned' if self.churned else 'stayed'} at {self.observed_at:%Y-%m-%d}"


# --- ingestion ------------------------------------------------------------------------------


class SourceKind(models.TextChoices):
    FILE = "file", "File"
    POSTGRESQL = "postgresql", "PostgreSQL"
    MYSQL = "mysql", "MySQL / MariaDB"
    MONGODB = "mongodb", "MongoDB"
    HTTP = "http", "HTTP API"
    STREAM = "stream", "Redis event stream"


class DataSource(models.Model):
    """A database, HTTP API or Redis stream that customer records are pulled from, on demand or on a schedule."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=[c for c in SourceKind.choices if c[0] != SourceKind.FILE])
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.PROTECT, related_name="data_sources"
    )
    enabled = models.BooleanField(default=True, help_text="Disabled sources are skipped by their schedule.")
    description = models.TextField(blank=True)

    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=255, blank=True)
    username = models.CharField(max_length=255, blank=True)
    secret_encrypted = models.TextField(
        blank=True, editable=False, help_text="Password or HTTP auth header value, encrypted with Fernet."
    )
    url = models.URLField(max_length=2000, blank=True, help_text="HTTP sources: the first page's address.")
    auth_header = models.CharField(
        max_length=100, blank=True, default="Authorization", help_text="HTTP sources: header that carries the secret."
    )
    query = models.TextField(
        blank=True, help_text="SQL sources: a SELECT. MongoDB: a JSON filter document (empty: every document)."
    )
    collection = models.CharField(
        max_length=255, blank=True, help_text="MongoDB: the collection. Redis streams: the stream key."
    )
    records_path = models.CharField(
        max_length=255, blank=True, help_text='HTTP sources: dotted path to the list of records, e.g. "results".'
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Kind-specific settings: pagination for HTTP, sslmode/authSource for databases, "
        "group and dead_letter_stream for streams.",
    )
    column_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text='Source column -> contract field (or "churned" for an outcome label, "" to ignore). '
        "Unmapped columns named like contract fields or Telco columns are used as they are.",
    )
    cursor_field = models.CharField(
        max_length=255, blank=True, help_text="Incremental pulls: read only rows whose value here is >= the last seen."
    )
    cursor_value = models.JSONField(null=True, blank=True, help_text="The largest cursor value already ingested.")
    page_size = models.PositiveIntegerField(default=5_000)
    timeout_seconds = models.PositiveIntegerField(default=30)
    max_retries = models.PositiveSmallIntegerField(default=3)
    schedule = models.CharField(
        max_length=100, blank=True, help_text='Cron expression run by Celery beat, e.g. "*/30 * * * *"; empty: manual.'
    )
    rescore_on_change = models.BooleanField(
        default=False, help_text="Ask the scoring service to re-score customers this source creates or changes."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(page_size__gte=1, page_size__lte=100_000),
                name="datasource_page_size_range",
                violation_error_message="page_size must be between 1 and 100000.",
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gte=1, timeout_seconds__lte=3600),
                name="datasource_timeout_range",
                violation_error_message="timeout_seconds must be between 1 and 3600.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        from customers.ingestion.sources import configuration_errors

        errors = configuration_errors(self)
        if errors:
            raise ValidationError(errors)


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded", "Partially succeeded"
    FAILED = "failed", "Failed"


FINISHED_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.PARTIALLY_SUCCEEDED, RunStatus.FAILED})


def _upload_path(run: IngestionRun, filename: str) -> str:
    return f"ingestion/{run.pk}/{filename}"


class IngestionRun(models.Model):
    """One pass of one source into the customers: what was read, what it changed, what was refused and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    source_name = models.CharField(max_length=100, help_text="Recorded as each written customer's source.")
    data_source = models.ForeignKey(DataSource, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by = models.CharField(max_length=200, blank=True, help_text="The actor as it was at the time.")
    started_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_by_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    file = models.FileField(upload_to=_upload_path, max_length=500, blank=True)
    file_path = models.CharField(max_length=1000, blank=True, help_text="A local file imported from the command line.")
    file_name = models.CharField(max_length=255, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    forced = models.BooleanField(default=False, help_text="Processed although the same file had been ingested.")

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED)
    error = models.TextField(blank=True)
    read_count = models.PositiveBigIntegerField(default=0)
    created_count = models.PositiveBigIntegerField(default=0)
    updated_count = models.PositiveBigIntegerField(default=0)
    unchanged_count = models.PositiveBigIntegerField(default=0)
    rejected_count = models.PositiveBigIntegerField(default=0)
    progress = models.FloatField(default=0.0, help_text="0..1; for files, the share of bytes read.")
    quality = models.JSONField(default=dict, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Format, layout, columns ignored, notes.")
    checkpoint = models.JSONField(
        default=dict,
        blank=True,
        help_text="State a resumed run needs besides its committed chunks (anomaly reference).",
    )
    worker = models.CharField(max_length=100, blank=True, help_text="The process that holds the run.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["department", "-created_at"], name="ingestionrun_department_idx"),
            models.Index(fields=["status", "heartbeat_at"], name="ingestionrun_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress__gte=0, progress__lte=1),
                name="ingestionrun_progress_range",
                violation_error_message="progress must be between 0 and 1.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_name} {self.created_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def counts(self) -> dict[str, int]:
        return {
            "read": self.read_count,
            "created": self.created_count,
            "updated": self.updated_count,
            "unchanged": self.unchanged_count,
            "rejected": self.rejected_count,
        }

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class IngestionChunk(models.Model):
    """One committed chunk of a run, written in the chunk's own transaction: a resumed run skips exactly these.

    Counts are what the chunk added to the run's (a later chunk that supersedes a row of this
    one moves that row's count, so a chunk's own figure may be negative).
    """

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    read = models.BigIntegerField(default=0)
    created = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    unchanged = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    sums = models.JSONField(default=dict, help_text="The chunk's share of the quality report's running sums.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "index"],
                name="ingestionchunk_unique_index",
                violation_error_message="This chunk of the run has already been committed.",
            )
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.run_id}"


class QuarantineReason(models.TextChoices):
    INVALID = "invalid", "Invalid values"
    SUPERSEDED = "superseded", "Superseded by a later row for the same customer"
    MALFORMED = "malformed", "Could not be read as a record"


class QuarantinedRow(models.Model):
    """A row a run did not store, kept as it arrived with every reason, for download, repair and re-upload."""

    run = models.ForeignKey(IngestionRun, on_delete=models.CASCADE, related_name="quarantined_rows")
    line = models.PositiveBigIntegerField(help_text="Line in the file (header = 1), or position in the source.")
    customer_id = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=10, choices=QuarantineReason.choices, default=QuarantineReason.INVALID)
    raw = models.JSONField(help_text='The row as read: column -> text, the source object, or {"_text": line}.')
    errors = models.JSONField(help_text="Field -> messages.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "line", "pk"]
        indexes = [models.Index(fields=["run", "line"], name="quarantinedrow_run_line_idx")]

    def __str__(self) -> str:
        return f"line {self.line} of {self.run_id}: {self.customer_id or '?'}"


class EventType(models.TextChoices):
    CUSTOMER_UPDATED = "customer.updated", "Customer updated"
    PLAN_CHANGED = "plan.changed", "Plan changed"
    CONTRACT_CHANGED = "contract.changed", "Contract changed"
    PAYMENT_FAILED = "payment.failed", "Payment failed"
    SUPPORT_TICKET_OPENED = "support.ticket_opened", "Support ticket opened"


class EventStatus(models.TextChoices):
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected (dead-lettered)"


class CustomerEvent(models.Model):
    """One stream entry as processed and what it did; unique per entry, so a redelivered entry is harmless."""

    stream = models.CharField(max_length=255)
    entry_id = models.CharField(max_length=64, help_text="The Redis stream entry id.")
    event_type = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=EventStatus.choices)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    customer_key = models.CharField(max_length=200, blank=True, help_text="customer_id as the event gave it.")
    occurred_at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=dict, blank=True)
    changed = models.BooleanField(default=False, help_text="Whether the customer record changed.")
    run = models.ForeignKey(IngestionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream", "entry_id"],
                name="customerevent_unique_entry",
                violation_error_message="This stream entry has already been processed.",
            )
        ]
        indexes = [models.Index(fields=["customer", "-occurred_at"], name="customerevent_customer_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.customer_key} ({self.status})"
