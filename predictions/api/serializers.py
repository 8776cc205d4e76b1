from __future__ import annotations

from rest_framework import serializers

from predictions.models import Prediction


class FactorSerializer(serializers.Serializer):
    feature = serializers.CharField()
    impact = serializers.FloatField()


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
