"""Every trained model version, its artifact and metrics, and which one serves."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import storages
from django.db import models


def _model_storage():  # type: ignore[no-untyped-def]
    return storages["models"]


class ModelStatus(models.TextChoices):
    TESTING = "testing", "Testing"
    ACTIVE = "active", "Active"
    DEPRECATED = "deprecated", "Deprecated"
    ARCHIVED = "archived", "Archived"
    FAILED = "failed", "Failed"


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def active(self) -> ModelVersionQuerySet:
        return self.filter(status=ModelStatus.ACTIVE)


class ModelVersion(models.Model):
    """A trained churn model: artifact with checksum, metrics, provenance and lifecycle status."""

    version = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=ModelStatus.choices, default=ModelStatus.TESTING, db_index=True)
    artifact = models.FileField(storage=_model_storage, upload_to="artifacts/", max_length=255, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_size = models.PositiveBigIntegerField(default=0)
    feature_spec_version = models.CharField(max_length=32)
    schema_version = models.CharField(max_length=32)
    training_data_sha256 = models.CharField(max_length=64, blank=True)
    training_rows = models.PositiveIntegerField(default=0)
    training_source = models.CharField(max_length=255, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    reference_stats = models.JSONField(default=dict, blank=True, help_text="Training distributions for drift checks.")
    holdout = models.FileField(
        storage=_model_storage,
        upload_to="holdout/",
        max_length=255,
        blank=True,
        help_text="The held-out rows and labels (gzipped JSON columns); the promotion gate scores them again.",
    )
    report = models.JSONField(
        default=dict, blank=True, help_text="Churn report of the held-out rows: lift, gains, calibration, backtest."
    )
    trained_by = models.CharField(max_length=200, blank=True)
    trained_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_by = models.CharField(max_length=200, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    previous_active = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The version that served before this one was promoted; roll back returns to it.",
    )
    notes = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="active"),
                name="modelversion_single_active",
                violation_error_message="Only one model version can be active.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.status})"

    @property
    def roc_auc(self) -> float | None:
        value = self.metrics.get("roc_auc")
        return float(value) if value is not None else None


class ModelEvent(models.Model):
    """Lifecycle history of a version (trained, promoted, rolled back, refused, load failures)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)
    actor_label = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model_version.version} {self.kind}"


# --- retraining -----------------------------------------------------------------------------


class TriggerKind(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    DRIFT = "drift", "Data drift (PSI)"
    ACCURACY = "accuracy", "Live accuracy"
    CONFIDENCE = "confidence", "Mean confidence"
    MANUAL = "manual", "Manual"


class TriggerDecision(models.TextChoices):
    OK = "ok", "Within threshold"
    TRIGGERED = "triggered", "Retraining started"
    COOLDOWN = "cooldown", "Beyond threshold; a retraining is running or ran recently"
    INSUFFICIENT_DATA = "insufficient_data", "Too little data to judge"
    NO_MODEL = "no_model", "No active model"


class RetrainingStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class RetrainingDecision(models.TextChoices):
    PROMOTED = "promoted", "Promoted"
    KEPT_TESTING = "kept_testing", "Kept as testing (policy: never)"
    NOT_BETTER = "not_better", "Not better than the active model"
    REFUSED = "refused", "Promotion refused by the registry"


class RetrainingRun(models.Model):
    """One retraining: why it ran, the candidate it produced, how it compared, what the policy decided."""

    trigger = models.CharField(max_length=12, choices=TriggerKind.choices)
    status = models.CharField(max_length=10, choices=RetrainingStatus.choices, default=RetrainingStatus.QUEUED)
    in_progress = models.BooleanField(default=True, help_text="True while queued or running; at most one such run.")
    policy = models.CharField(max_length=10, help_text="Promotion policy when the run was started.")
    margin = models.FloatField(default=0.0, help_text="ROC AUC by which the candidate must beat the active model.")
    active_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The model the candidate was compared with.",
    )
    candidate_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    candidate_auc = models.FloatField(null=True, blank=True, help_text="Held-out ROC AUC of the candidate.")
    active_auc = models.FloatField(null=True, blank=True, help_text="The active model's, on the same held-out rows.")
    training_rows = models.PositiveIntegerField(default=0)
    decision = models.CharField(max_length=12, choices=RetrainingDecision.choices, blank=True)
    decision_reason = models.TextField(blank=True)
    reason = models.TextField(blank=True, help_text="Why it was started (the trigger's figures).")
    requested_by = models.CharField(max_length=200, blank=True)
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True, help_text="Both models' held-out metrics.")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["in_progress"],
                condition=models.Q(in_progress=True),
                name="retrainingrun_one_in_progress",
                violation_error_message="A retraining is already queued or running.",
            )
        ]

    def __str__(self) -> str:
        return f"retraining {self.pk} ({self.trigger}, {self.status})"


class TriggerEvaluation(models.Model):
    """One check of a retraining trigger: the measured value, its threshold and the decision taken."""

    kind = models.CharField(max_length=12, choices=TriggerKind.choices)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    decision = models.CharField(max_length=20, choices=TriggerDecision.choices)
    sample_size = models.PositiveIntegerField(default=0)
    p_value = models.FloatField(
        null=True, blank=True, help_text="Drift: the chance of a PSI this large without drift (Bonferroni over fields)."
    )
    details = models.JSONField(default=dict, blank=True)
    retraining_run = models.ForeignKey(
        RetrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} vs {self.threshold}: {self.decision}"


# --- A/B tests ------------------------------------------------------------------------------


class ABTestStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class ABTest(models.Model):
    """A challenger version scoring a fixed share of customers next to the active model.

    Customers are split by a hash of customer_id, so each one always meets the same version while
    the test runs, and outcomes recorded later can be compared arm by arm.
    """

    challenger = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="ab_tests")
    champion = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+")
    traffic_percent = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=ABTestStatus.choices, default=ABTestStatus.RUNNING)
    started_by = models.CharField(max_length=200)
    stopped_by = models.CharField(max_length=200, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    conclusion = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "A/B test"
        constraints = [
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="running"),
                name="abtest_single_running",
                violation_error_message="Only one A/B test can run at a time.",
            ),
            models.CheckConstraint(
                condition=models.Q(traffic_percent__gte=1, traffic_percent__lte=50),
                name="abtest_traffic_range",
                violation_error_message="The challenger's share must be between 1 and 50 percent.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.challenger.version} at {self.traffic_percent}% vs {self.champion.version} ({self.status})"


# --- live performance -----------------------------------------------------------------------


class ModelLivePerformance(models.Model):
    """A version's figures on live data, written by predictions.live_performance.

    ``scope`` is "all" (every prediction of the version within the horizon) or
    "ab:<test id>:<arm>" (the arm's predictions while the test ran). ``realized``: outcomes
    joined to the version's latest prediction before each; ``estimated``: CBPE for predictions
    that have no outcome yet, with ``periods`` per month of prediction.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="live_performance")
    scope = models.CharField(max_length=40, default="all")
    ab_test = models.ForeignKey("ABTest", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    arm = models.CharField(max_length=12, blank=True)
    as_of = models.DateTimeField()
    horizon_days = models.PositiveIntegerField()
    predictions = models.PositiveBigIntegerField(default=0, help_text="Predictions of the version in the scope.")
    mean_probability = models.FloatField(null=True, blank=True)
    realized = models.JSONField(default=dict, blank=True)
    estimated = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict, blank=True, help_text="Lift, gains, calibration and cuts on live outcomes.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_version", "scope"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "scope"], name="modellive_one_per_version_scope")
        ]

    def __str__(self) -> str:
        return f"{self.model_version.version} {self.scope} as of {self.as_of:%Y-%m-%d %H:%M}"


# --- shadow scoring -------------------------------------------------------------------------


class ShadowStatus(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


class ShadowDeployment(models.Model):
    """A version scoring a share of single-record requests off the response path (modelregistry.shadow)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="shadows")
    share = models.FloatField()
    status = models.CharField(max_length=8, choices=ShadowStatus.choices, default=ShadowStatus.RUNNING)
    started_by = models.CharField(max_length=200)
    stopped_by = models.CharField(max_length=200, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="running"), name="shadow_single_running",
                violation_error_message="Only one shadow can run at a time.",
            ),
            models.CheckConstraint(
                condition=models.Q(share__gt=0, share__lte=1), name="shadow_share_range",
                violation_error_message="The share must be above 0 and at most 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"shadow {self.model_version.version} at {self.share:.0%} ({self.status})"


class ShadowPrediction(models.Model):
    """A shadow version's score of a request, next to the answer the active model gave.

    Never returned to clients, never read by campaigns; counted in metrics with source="shadow".
    """

    deployment = models.ForeignKey(ShadowDeployment, on_delete=models.CASCADE, related_name="predictions",
                                   db_constraint=False)
    customer_id = models.CharField(max_length=64)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    churn_probability = models.FloatField()
    risk_level = models.CharField(max_length=8)
    active_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="+", db_constraint=False)
    active_probability = models.FloatField()
    active_risk_level = models.CharField(max_length=8)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["deployment", "customer_id"], name="shadowprediction_customer_idx")]

    def __str__(self) -> str:
        return f"shadow {self.customer_id} {self.churn_probability:.3f}"
