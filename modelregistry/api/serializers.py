from __future__ import annotations

from rest_framework import serializers

from accounts.api.serializers import PublicActorLabelField
from modelregistry.models import ModelEvent, ModelVersion


class ModelEventSerializer(serializers.ModelSerializer):
    # The registry is company-wide: every department reads these (issue 11, finding 8).
    actor_label = PublicActorLabelField()

    class Meta:
        model = ModelEvent
        fields = ("kind", "actor_label", "details", "created_at")
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    previous_active = serializers.CharField(source="previous_active.version", default=None)
    trained_by = PublicActorLabelField()
    promoted_by = PublicActorLabelField()

    class Meta:
        model = ModelVersion
        fields = (
            "version",
            "algorithm",
            "status",
            "metrics",
            "artifact_sha256",
            "artifact_size",
            "feature_spec_version",
            "schema_version",
            "training_data_sha256",
            "training_rows",
            "training_source",
            "trained_by",
            "promoted_by",
            "promoted_at",
            "previous_active",
            "notes",
            "error",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ModelVersionDetailSerializer(ModelVersionSerializer):
    events = ModelEventSerializer(many=True, read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = (*ModelVersionSerializer.Meta.fields, "events")
        read_only_fields = fields


class PromoteSerializer(serializers.Serializer):
    force = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class TrainRequestSerializer(serializers.Serializer):
    activate = serializers.BooleanField(default=False)
    algorithm = serializers.ChoiceField(choices=["auto", "logistic", "gradient_boosting"], default="auto")


class ABTestStartSerializer(serializers.Serializer):
    traffic_percent = serializers.IntegerField(min_value=1, max_value=50, default=10)


class ABTestStopSerializer(serializers.Serializer):
    promote = serializers.BooleanField(default=False)
    force = serializers.BooleanField(default=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class ABTestArmSerializer(serializers.Serializer):
    version = serializers.CharField()
    predictions = serializers.IntegerField()
    mean_probability = serializers.FloatField(allow_null=True)
    outcomes = serializers.IntegerField()
    live_accuracy = serializers.FloatField(allow_null=True)
    live_roc_auc = serializers.FloatField(allow_null=True)
    live_brier = serializers.FloatField(allow_null=True)
    held_out_roc_auc = serializers.FloatField(allow_null=True)


class ABTestReportSerializer(serializers.Serializer):
    """Documents the A/B report (built by modelregistry.services.ab_test_report)."""

    id = serializers.IntegerField()
    status = serializers.CharField()
    traffic_percent = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    started_by = serializers.CharField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    conclusion = serializers.CharField()
    arms = serializers.DictField(child=ABTestArmSerializer())
