"""Customers as the contract describes them, and the outcomes recorded for them."""

from __future__ import annotations

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
                condition=models.Q(tenure_months__lte=600), name="customer_tenure_range",
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
                fields=["customer", "observed_at", "source"], name="outcome_unique_observation",
                violation_error_message="This outcome has already been recorded.",
            )
        ]
        indexes = [models.Index(fields=["customer", "-observed_at"], name="outcome_customer_latest_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} {'churned' if self.churned else 'stayed'} at {self.observed_at:%Y-%m-%d}"
