from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from modelregistry.live import live_performance_of
from modelregistry.models import ModelEvent, ModelVersion


class ModelEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelEvent
        fields = ("kind", "actor_label", "details", "created_at")
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    previous_active = serializers.CharField(source="previous_active.version", default=None)

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


class RealizedSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    positives = serializers.IntegerField()
    roc_auc = serializers.FloatField(allow_null=True)
    roc_auc_ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    brier = serializers.FloatField(allow_null=True)
    ece = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)


class EstimatedPeriodSerializer(serializers.Serializer):
    period = serializers.CharField(help_text="Month of the predictions, YYYY-MM.")
    n = serializers.IntegerField()
    roc_auc = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)


class EstimatedSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    roc_auc = serializers.FloatField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    method = serializers.CharField(help_text='"cbpe" (confidence-based performance estimation).')
    calibration_ece = serializers.FloatField(
        allow_null=True, help_text="The model's held-out ECE: the estimate is only as good as the calibration."
    )
    periods = EstimatedPeriodSerializer(many=True, required=False)


class LiveSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(allow_null=True)
    horizon_days = serializers.IntegerField()
    realized = RealizedSerializer()
    estimated = EstimatedSerializer()


class ModelVersionDetailSerializer(ModelVersionSerializer):
    events = ModelEventSerializer(many=True, read_only=True)
    live = serializers.SerializerMethodField()

    class Meta(ModelVersionSerializer.Meta):
        fields = (*ModelVersionSerializer.Meta.fields, "live", "events")
        read_only_fields = fields

    @extend_schema_field(LiveSerializer)
    def get_live(self, obj: ModelVersion) -> dict:
        return LiveSerializer(live_performance_of(obj)).data


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


class ABTestComparisonSerializer(serializers.Serializer):
    """Challenger minus champion on each arm's outcomes (DeLong's test for independent samples)."""

    metric = serializers.CharField(help_text='"roc_auc".')
    difference = serializers.FloatField(allow_null=True, help_text="Challenger minus champion; null until both arms "
                                        "have churners and stayers among their outcomes.")
    ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True, min_length=2, max_length=2)
    p_value = serializers.FloatField(allow_null=True, help_text="Two-sided.")
    p_worse = serializers.FloatField(allow_null=True, help_text='One-sided, for "the challenger is worse".')
    significantly_worse = serializers.BooleanField(help_text="p_worse below AB_TEST_ALPHA: stop-with-promote "
                                                   "refuses unless forced with a reason.")
    n = serializers.DictField(child=serializers.IntegerField(), help_text="Outcomes per arm.")
    needed_n = serializers.IntegerField(allow_null=True, help_text="Outcomes each arm needs to detect "
                                        "detectable_difference at alpha with power.")
    detectable_difference = serializers.FloatField()
    alpha = serializers.FloatField()
    power = serializers.FloatField()
    method = serializers.CharField()


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
    comparison = ABTestComparisonSerializer()
