"""Predictions, and the recommendation each risk level carries."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connections, models
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from churn_infra.db import JSONTextField
from churn_ml.inputs import snapshot_fields
from churn_ml.stored_factors import expand_factors


class RiskLevel(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class RiskTierAction(models.Model):
    """What the business does at a risk level: the texts and the offer operators edit without a deploy."""

    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, unique=True)
    recommendations = models.JSONField(default=list, help_text="Texts returned with each prediction at this level.")
    offer_discount_percent = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True, help_text="Discount offered at this level, if any."
    )
    offer_months = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Months the discount is given for; set exactly when there is a discount."
    )
    updated_at = models.DateTimeField(auto_now=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(offer_discount_percent__isnull=True)
                | models.Q(offer_discount_percent__gte=0, offer_discount_percent__lte=100),
                name="risktieraction_offer_range",
                violation_error_message="The discount must be between 0 and 100 percent.",
            ),
            models.CheckConstraint(
                condition=models.Q(offer_discount_percent__isnull=True, offer_months__isnull=True)
                | models.Q(offer_discount_percent__isnull=False, offer_months__gte=1, offer_months__lte=120),
                name="risktieraction_offer_months",
                violation_error_message="An offer needs its months (1 to 120); a tier without a discount has none.",
            ),
        ]

    def __str__(self) -> str:
        return self.risk_level


class PredictionSource(models.TextChoices):
    API = "api", "API"
    BATCH_REQUEST = "api_batch", "API batch"
    JOB = "job", "Batch job"
    RESCORE = "rescore", "Re-score after a data change"


# A job's predictions are stamped when their chunk is scored, after the job row was created; a
# day of margin covers clocks of worker hosts that run behind the web host's.
JOB_CLOCK_MARGIN = timedelta(days=1)


class PredictionQuerySet(models.QuerySet["Prediction"]):
    def of_job(self, job: BatchJob) -> PredictionQuerySet:
        """The job's predictions, bounded below in time so that PostgreSQL reads only the monthly
        partitions from the job's on (by job alone it asks every partition's index, and a page of
        the job's risk increases took 1 s instead of 1 ms at 10M rows)."""
        return self.filter(batch_job=job, created_at__gte=job.created_at - JOB_CLOCK_MARGIN)

    def latest_per_customer(self) -> PredictionQuerySet:
        """Each customer's most recent prediction among these rows (ties broken by the later row)."""
        if connections[self.db].vendor == "postgresql":
            # DISTINCT ON walks the (customer_id, created_at) index: 3x faster than the window below.
            latest = self.order_by("customer_id", "-created_at", "-pk").distinct("customer_id").values("pk")
        else:
            latest = (
                self.annotate(
                    rank=Window(
                        RowNumber(), partition_by=[F("customer_id")], order_by=[F("created_at").desc(), F("pk").desc()]
                    )
                )
                .filter(rank=1)
                .values("pk")
            )
        return self.model.objects.filter(pk__in=latest)


class Prediction(models.Model):
    """One score for one customer by one model version, with its explanation and provenance."""

    # Not unique in the database: on the partitioned table (PostgreSQL, predictions.partitions) a
    # unique index must include created_at, which would guarantee nothing about the id alone. The
    # writers mint time-ordered version-7 ids (74 random bits per millisecond); the index below
    # serves GET /predictions/{prediction_id}/.
    prediction_id = models.UUIDField(default=uuid.uuid4, editable=False)
    customer_id = models.CharField(max_length=64)
    churn_probability = models.FloatField()
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices)
    # The JSON columns are text (JSONTextField): a million-row job spent most of its write time in
    # PostgreSQL parsing them into jsonb, and nothing queries inside them.
    recommendations = JSONTextField(default=list)
    offer = JSONTextField(
        null=True, blank=True, help_text='The tier\'s offer when scored: {"discount_percent", "months"}, or null.'
    )
    top_factors = JSONTextField(
        default=list, help_text="[feature, impact] pairs (churn_ml.stored_factors); read through .factors.",
    )
    # The foreign keys of this append-only table carry no database constraint: PostgreSQL checks
    # each one per inserted row with a trigger query at commit, which cost ~15 ms of a 1,000-row
    # batch request. Django still applies PROTECT / SET_NULL when the ORM deletes the referenced
    # row, and model versions are never deleted (the registry archives them).
    model_version = models.ForeignKey(
        "modelregistry.ModelVersion", on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    source = models.CharField(max_length=10, choices=PredictionSource.choices, default=PredictionSource.API)
    latency_ms = models.FloatField(null=True, blank=True)
    inputs = JSONTextField(
        null=True, blank=True,
        help_text="The inputs scored, as a compact snapshot (churn_ml.inputs); null on rows older than snapshots.",
    )
    # The three provenance keys are null on every batch-job row; their indexes are partial (below)
    # because indexing a million nulls per nightly job cost ~2 s of the job's COPY time.
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )
    requested_by_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False,
        db_constraint=False,
    )
    request_id = models.CharField(max_length=64, blank=True)
    batch_job = models.ForeignKey(
        "predictions.BatchJob", null=True, blank=True, on_delete=models.PROTECT, related_name="predictions",
        # The unique (batch_job, customer_id, created_at) index below serves every lookup by job. No database
        # constraint: its per-row check cost ~5 s of a million-row job's COPY, and the only writer
        # is the chunk task holding a lock on the job's chunk; the ORM still PROTECTs the job.
        db_index=False, db_constraint=False,
    )
    previous_risk_level = models.CharField(
        max_length=8, choices=RiskLevel.choices, blank=True, default="",
        help_text="Batch jobs: the customer's level in their prediction before this one ('' when none).",
    )
    risk_increased = models.BooleanField(
        default=False, help_text="Batch jobs: the level is higher than in the previous prediction (campaign flag).",
    )
    # The partition key on PostgreSQL: one partition per month (predictions.partitions), and the
    # database's primary key is (id, created_at) while Django keeps ``id`` as the pk.
    created_at = models.DateTimeField()

    objects = PredictionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        # Each index is there for a query the product runs (docs/OPERATIONS.md lists them with
        # their plans and times at 10M rows, bench/bench_prediction_queries.py measures them); on
        # PostgreSQL each is a partitioned index, one per monthly partition.
        indexes = [
            # Latest prediction per customer (DISTINCT ON; campaigns, dashboard), a customer's
            # history, the previous level of batch scoring, the follow-up list's current risk.
            models.Index(fields=["customer_id", "-created_at"], name="prediction_customer_latest_idx"),
            # The paged history newest first (API list, admin), and the registry's recent windows
            # (recent inputs, confidence, scored summary): the months' indexes are read newest
            # month first, one after the other (ordered Append: range catch-alls, no DEFAULT).
            # A BRIN index would serve the windows but not the ORDER BY ... LIMIT of the pages.
            models.Index(fields=["created_at"], name="prediction_created_idx"),
            models.Index(fields=["prediction_id"], name="prediction_prediction_id_idx"),
            # (risk_level, -created_at) is gone: only the API's ?risk_level= filter used it, and
            # the created_at index serves that page by reading newest first (measured in the bench).
            models.Index(fields=["department"], condition=models.Q(department__isnull=False),
                         name="prediction_department_idx"),
            models.Index(fields=["requested_by_key"], condition=models.Q(requested_by_key__isnull=False),
                         name="prediction_api_key_idx"),
            models.Index(fields=["requested_by_user"], condition=models.Q(requested_by_user__isnull=False),
                         name="prediction_user_idx"),
            models.Index(fields=["-created_at"], condition=models.Q(risk_increased=True),
                         name="prediction_risk_increased_idx"),
        ]
        constraints = [
            # A batch job's results (by job, in customer_id order) read off this index, and it
            # refuses a chunk's rows written twice. On the partitioned table a unique index must
            # hold the partition key: a chunk's rows share one created_at, so a second write of
            # the same rows is still refused; that two chunks never hold one customer is the
            # planner's guarantee (plan.py), and a chunk is written once under its row lock.
            models.UniqueConstraint(
                fields=["batch_job", "customer_id", "created_at"], condition=models.Q(batch_job__isnull=False),
                name="prediction_one_per_customer_per_job",
                violation_error_message="A batch job scores each customer once.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.churn_probability:.3f} ({self.risk_level})"

    @property
    def scored_fields(self) -> dict[str, Any] | None:
        """The record's data fields as they were scored (from ``inputs``); None when not kept."""
        return snapshot_fields(self.inputs)

    @property
    def factors(self) -> list[dict[str, Any]]:
        """The contract's factor objects, expanded from the stored ``[feature, impact]`` pairs."""
        return expand_factors(self.top_factors)


# --- batch scoring jobs ---------------------------------------------------------------------


class BatchJobScope(models.TextChoices):
    ALL = "all", "All customers"
    FILTER = "filter", "Customers matching a filter"
    IDS = "ids", "A list of customer ids"
    FILE = "file", "Records in an uploaded file"


class BatchJobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_SUCCEEDED = "partially_succeeded", "Partially succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_JOB_STATUSES = (
    BatchJobStatus.SUCCEEDED, BatchJobStatus.PARTIALLY_SUCCEEDED, BatchJobStatus.FAILED, BatchJobStatus.CANCELLED,
)


class BatchJobOrigin(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SCHEDULE = "schedule", "Schedule"
    COMMAND = "command", "Command"


class BatchJob(models.Model):
    """Scoring many customers at once: its scope, model version, progress, counts, timings and output."""

    scope = models.CharField(max_length=8, choices=BatchJobScope.choices)
    filters = models.JSONField(default=dict, blank=True, help_text="Scope filter: the customer list's filters.")
    customer_ids = models.JSONField(default=list, blank=True, help_text="Scope ids: the customer ids asked for.")
    input_file = models.FileField(upload_to="batch_jobs/inputs/", max_length=255, blank=True)
    input_name = models.CharField(max_length=255, blank=True, help_text="Scope file: the uploaded file's name.")
    model_version = models.ForeignKey("modelregistry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=BatchJobStatus.choices, default=BatchJobStatus.QUEUED,
                              db_index=True)
    origin = models.CharField(max_length=10, choices=BatchJobOrigin.choices, default=BatchJobOrigin.API)
    chunk_size = models.PositiveIntegerField()
    chunk_count = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0, help_text="Chunks finished, scored or failed.")
    total = models.PositiveBigIntegerField(default=0, help_text="Customers or rows in scope.")
    scored = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    risk_increased = models.PositiveBigIntegerField(default=0, help_text="Customers whose risk level rose.")
    requested_by = models.CharField(max_length=200, blank=True)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output_file = models.FileField(upload_to="batch_jobs/results/", max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="Unknown ids, rejected rows, per-worker figures.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(chunk_size__gt=0), name="batchjob_chunk_size_positive",
                violation_error_message="The chunk size must be positive.",
            )
        ]

    def __str__(self) -> str:
        return f"batch job {self.pk} ({self.scope}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES

    @property
    def progress(self) -> float:
        """Share of the scope handled, 0..1."""
        if self.is_finished and self.status != BatchJobStatus.CANCELLED:
            return 1.0
        if not self.total:
            return 0.0
        return min(1.0, round((self.scored + self.failed) / self.total, 4))


class BatchChunkStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class BatchChunk(models.Model):
    """One slice of a batch job, scored by one task: a customer pk range, a pk list, or a file part.

    Its status row makes the task safe to deliver twice: the chunk's predictions are written in
    the same transaction that marks it done, under a lock on this row.
    """

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    index = models.PositiveIntegerField()
    pk_low = models.BigIntegerField(null=True, blank=True)
    pk_high = models.BigIntegerField(null=True, blank=True)
    customer_pks = models.JSONField(null=True, blank=True)
    part_name = models.CharField(max_length=255, blank=True, help_text="Scope file: this chunk's part in storage.")
    size = models.PositiveIntegerField(default=0, help_text="Rows expected when the job was planned.")
    status = models.CharField(max_length=10, choices=BatchChunkStatus.choices, default=BatchChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    risk_increased = models.PositiveIntegerField(default=0)
    errors = models.JSONField(
        default=list, blank=True, help_text="Rejected rows (a sample): line, customer_id, errors."
    )
    worker = models.CharField(max_length=200, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds spent reading, scoring and writing.")
    error = models.TextField(blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "index"], name="batchchunk_unique_index",
                violation_error_message="A job has one chunk per index.",
            )
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} chunk {self.index} ({self.status})"
