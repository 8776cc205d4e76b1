from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from churn_ml.stored_factors import expand_factor
from predictions.models import Prediction


class FactorSerializer(serializers.Serializer):
    """One of a prediction's top factors: its leading field, impact (logit units), fields and words."""

    feature = serializers.CharField()
    impact = serializers.FloatField()
    fields = serializers.ListField(child=serializers.CharField())
    label = serializers.CharField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return super().to_representation(expand_factor(instance))


class OfferSerializer(serializers.Serializer):
    discount_percent = serializers.FloatField()
    months = serializers.IntegerField()


class PredictionSerializer(serializers.ModelSerializer):
    """The contract's prediction object."""

    model_version = serializers.CharField(source="model_version.version")
    top_factors = FactorSerializer(many=True)
    recommendations = serializers.ListField(child=serializers.CharField())
    offer = OfferSerializer(allow_null=True, help_text="The tier's offer when scored; null for a tier without one.")

    class Meta:
        model = Prediction
        fields = (
            "prediction_id",
            "customer_id",
            "churn_probability",
            "risk_level",
            "recommendations",
            "offer",
            "model_version",
            "top_factors",
            "created_at",
        )
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "additionalProperties": True,
        "description": "The record as it was scored: customer_id and every data field of the customer record. "
        "Null for predictions stored before inputs were kept.",
    }
)
class InputsField(serializers.Field):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, prediction: Prediction) -> dict[str, Any] | None:
        fields = prediction.scored_fields
        return None if fields is None else {"customer_id": prediction.customer_id, **fields}


class PredictionHistorySerializer(PredictionSerializer):
    """A stored prediction (history and GET predictions/{id}/): the contract object and its ``inputs``."""

    inputs = InputsField()

    class Meta(PredictionSerializer.Meta):
        fields = (*PredictionSerializer.Meta.fields, "inputs")
        read_only_fields = fields
