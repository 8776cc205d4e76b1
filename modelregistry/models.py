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
    trained_by = models.CharField(max_length=200, blank=True)
    trained_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_by = models.CharField(max_length=200, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    previous_active = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
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
