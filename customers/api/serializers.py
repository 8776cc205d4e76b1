from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.fields import SkipField, empty

from accounts.api.serializers import PublicActorLabelField
from churn_ml.schema import FIELD_ORDER
from customers.models import Customer, CustomerEvent, EventStatus, Outcome
from customers.ports import latest_prediction


class QualitySerializer(serializers.Serializer):
    completeness = serializers.FloatField(source="quality_completeness")
    warnings = serializers.ListField(child=serializers.CharField(), source="quality_warnings")


class CustomerSerializer(serializers.ModelSerializer):
    """A stored customer in the contract's field names, with its data-quality result."""

    quality = QualitySerializer(source="*", read_only=True)

    class Meta:
        model = Customer
        fields = ("customer_id", *FIELD_ORDER, "quality", "source", "created_at", "updated_at")
        read_only_fields = fields


class CustomerEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerEvent
        fields = ("event_type", "occurred_at", "data", "changed", "created_at")
        read_only_fields = fields


class CustomerDetailSerializer(CustomerSerializer):
    latest_prediction = serializers.SerializerMethodField()
    latest_outcome = serializers.SerializerMethodField()
    recent_events = serializers.SerializerMethodField()

    class Meta(CustomerSerializer.Meta):
        fields = (*CustomerSerializer.Meta.fields, "latest_prediction", "latest_outcome", "recent_events")
        read_only_fields = fields

    def get_recent_events(self, obj: Customer) -> list[dict[str, Any]]:
        """The last 10 events applied from event streams (payment failed, ticket opened, changes)."""
        events = obj.events.filter(status=EventStatus.APPLIED).order_by("-created_at", "-pk")[:10]
        return CustomerEventSerializer(events, many=True).data

    def get_latest_prediction(self, obj: Customer) -> dict[str, Any] | None:
        return latest_prediction(obj)

    def get_latest_outcome(self, obj: Customer) -> dict[str, Any] | None:
        outcome = obj.outcomes.order_by("-observed_at", "-pk").first()
        return OutcomeSerializer(outcome).data if outcome is not None else None


class CustomerRecordSerializer(serializers.Serializer):
    """Documents the input record; validation itself is churn_ml.schema's column validator."""

    customer_id = serializers.CharField(max_length=64)
    gender = serializers.ChoiceField(choices=["female", "male"], required=False, allow_null=True)
    senior_citizen = serializers.BooleanField(required=False)
    partner = serializers.BooleanField()
    dependents = serializers.BooleanField()
    tenure_months = serializers.IntegerField(min_value=0, max_value=600)
    phone_service = serializers.BooleanField()
    multiple_lines = serializers.ChoiceField(choices=["Yes", "No", "No phone service"])
    internet_service = serializers.ChoiceField(choices=["DSL", "Fiber optic", "No"])
    online_security = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    online_backup = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    device_protection = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    tech_support = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    streaming_tv = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    streaming_movies = serializers.ChoiceField(choices=["Yes", "No", "No internet service"])
    contract_type = serializers.ChoiceField(choices=["Month-to-month", "One year", "Two year"])
    paperless_billing = serializers.BooleanField()
    payment_method = serializers.ChoiceField(
        choices=["Electronic check", "Mailed check", "Bank transfer", "Credit card"]
    )
    monthly_charges = serializers.FloatField(min_value=0, max_value=10000)
    total_charges = serializers.FloatField(min_value=0, allow_null=True, required=False)
    age = serializers.IntegerField(min_value=18, max_value=120, allow_null=True, required=False)
    income = serializers.FloatField(min_value=0, allow_null=True, required=False)


class BulkCustomersSerializer(serializers.Serializer):
    customers = CustomerRecordSerializer(many=True)


class RejectedRowSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    customer_id = serializers.CharField(allow_null=True)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    rejected = RejectedRowSerializer(many=True)


class OutcomeSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.customer_id", read_only=True)
    # Customers are company-wide: another department reads this outcome (issue 11, finding 8).
    recorded_by = PublicActorLabelField()

    class Meta:
        model = Outcome
        fields = ("id", "customer_id", "churned", "observed_at", "source", "recorded_by", "created_at")
        read_only_fields = fields


class OutcomeInputSerializer(serializers.Serializer):
    customer_id = serializers.CharField(max_length=64)
    churned = serializers.BooleanField()
    observed_at = serializers.DateTimeField()
    source = serializers.CharField(max_length=100, required=False, default="api")

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in sorted(unknown)})
        return super().to_internal_value(data)


def outcome_items(items: list[Any]) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, dict[str, list[str]]]]:
    """Validate bulk outcome items with OutcomeInputSerializer's fields: ([(index, data)], {index: errors}).

    The fields are bound once and run item by item: a serializer instance per item deep-copies its
    fields, which made 10,000 items take seconds.
    """
    fields = OutcomeInputSerializer().fields
    names = set(fields)
    valid: list[tuple[int, dict[str, Any]]] = []
    rejected: dict[int, dict[str, list[str]]] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            rejected[i] = {"non_field_errors": ["Expected a JSON object."]}
            continue
        errors: dict[str, list[str]] = {name: ["Unknown field."] for name in sorted(set(item) - names)}
        data: dict[str, Any] = {}
        for name, field in fields.items():
            try:
                data[name] = field.run_validation(item.get(name, empty))
            except serializers.ValidationError as exc:
                errors[name] = [str(m) for m in exc.detail]
            except SkipField:
                continue
        if errors:
            rejected[i] = errors
        else:
            valid.append((i, data))
    return valid, rejected


class BulkOutcomesSerializer(serializers.Serializer):
    outcomes = OutcomeInputSerializer(many=True)


class BulkOutcomesResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Observations recorded before with the other churned value.")
    unchanged = serializers.IntegerField(help_text="Observations recorded before with the same value: nothing written.")
    rejected = RejectedRowSerializer(many=True)
