"""Predictions, and the recommendation each risk level carries."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


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
            )
        ]

    def __str__(self) -> str:
        return self.risk_level


class PredictionSource(models.TextChoices):
    API = "api", "API"
    BATCH_REQUEST = "api_batch", "API batch"
    JOB = "job", "Batch job"
    RESCORE = "rescore", "Re-score after a data change"


class Prediction(models.Model):
    """One score for one customer by one model version, with its explanation and provenance."""

    prediction_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer_id = models.CharField(max_length=64)
    churn_probability = models.FloatField()
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices)
    recommendations = models.JSONField(default=list)
    top_factors = models.JSONField(default=list)
    model_version = models.ForeignKey("modelregistry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=10, choices=PredictionSource.choices, default=PredictionSource.API)
    latency_ms = models.FloatField(null=True, blank=True)
    inputs = models.JSONField(null=True, blank=True, help_text="The record scored, for drift checks and audits.")
    department = models.ForeignKey("accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requested_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["customer_id", "-created_at"], name="prediction_customer_latest_idx"),
            models.Index(fields=["risk_level", "-created_at"], name="prediction_level_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.churn_probability:.3f} ({self.risk_level})"
