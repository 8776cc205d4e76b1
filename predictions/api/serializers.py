from __future__ import annotations

from typing import Any

from rest_framework import serializers

from churn_ml.scorer import stored_factor
from predictions.models import Prediction


class FactorSerializer(serializers.Serializer):
    """One of a prediction's top factors: its leading field, impact (logit units), fields and words."""

    feature = serializers.CharField()
    impact = serializers.FloatField()
    fields = serializers.ListField(child=serializers.CharField())
    label = serializers.CharField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return super().to_representation(stored_factor(instance))


class PredictionSerializer(serializers.ModelSerializer):
    """The contract's prediction object."""

    model_version = serializers.CharField(source="model_version.version")
    top_factors = FactorSerializer(many=True)
    recommendations = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Prediction
        fields = (
            "prediction_id",
            "customer_id",
            "churn_probability",
            "risk_level",
            "recommendations",
            "model_version",
            "top_factors",
            "created_at",
        )
        read_only_fields = fields
