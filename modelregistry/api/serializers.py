from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api.serializers import PublicActorLabelField
from modelregistry.live import live_performance_of
from modelregistry.models import ModelEvent, ModelVersion, RetrainingRun, TriggerEvaluation


class ModelEventSerializer(serializers.ModelSerializer):
    # The registry is company-wide: every department reads these (issue 11, finding 8).
    actor_label = PublicActorLabelField()

    class Meta:
        model = ModelEvent
        fields = ("kind", "actor_label", "details", "created_at")
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    previous_active = serializers.CharField(source="previous_active.version", default=None, allow_null=True)
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


# --- retraining records (issue 12, point 8) ---------------------------------------------------


class TriggerEvaluationSerializer(serializers.ModelSerializer):
    """One check of a retraining trigger with its evidence.

    ``details`` by kind: drift has ``psi``, ``thresholds`` and ``p_values`` per field, ``worst``,
    ``drifted`` and ``sources``; accuracy has ``auc`` (live ROC AUC), ``positive_rate`` and
    ``brier``; every kind may have ``blocked`` (why no retraining started) and ``minimum_samples``.
    """

    model_version = serializers.CharField(source="model_version.version", default=None)
    retraining_run = serializers.IntegerField(source="retraining_run_id", allow_null=True)
    live = serializers.SerializerMethodField()

    class Meta:
        model = TriggerEvaluation
        fields = ("id", "kind", "model_version", "value", "threshold", "p_value", "decision", "sample_size",
                  "details", "live", "retraining_run", "created_at")
        read_only_fields = fields

    @extend_schema_field(LiveSerializer(allow_null=True))
    def get_live(self, obj: TriggerEvaluation) -> dict | None:
        """The version's current live and CBPE-estimated figures (null without a version)."""
        if obj.model_version is None:
            return None
        return LiveSerializer(live_performance_of(obj.model_version)).data


class RetrainingRunSerializer(serializers.ModelSerializer):
    active_version = serializers.CharField(source="active_version.version", default=None)
    candidate_version = serializers.CharField(source="candidate_version.version", default=None)

    class Meta:
        model = RetrainingRun
        fields = ("id", "trigger", "status", "policy", "margin", "reason", "active_version", "candidate_version",
                  "candidate_auc", "active_auc", "training_rows", "decision", "decision_reason", "details",
                  "requested_by", "error", "started_at", "finished_at", "duration_seconds", "created_at")
        read_only_fields = fields


class RetrainingRunDetailSerializer(RetrainingRunSerializer):
    evaluations = TriggerEvaluationSerializer(many=True, read_only=True)

    class Meta(RetrainingRunSerializer.Meta):
        fields = (*RetrainingRunSerializer.Meta.fields, "evaluations")
        read_only_fields = fields


# --- the churn report (issue 12, point 6) -----------------------------------------------------


class LiftRowSerializer(serializers.Serializer):
    top_share = serializers.FloatField()
    n = serializers.IntegerField()
    lift = serializers.FloatField(allow_null=True)
    captured = serializers.FloatField(allow_null=True)


class GainsPointSerializer(serializers.Serializer):
    share = serializers.FloatField(help_text="Share of customers contacted, highest risk first.")
    captured = serializers.FloatField(allow_null=True, help_text="Share of the churners among them.")


class CalibrationBinSerializer(serializers.Serializer):
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    n = serializers.IntegerField()
    mean_predicted = serializers.FloatField(allow_null=True)
    observed = serializers.FloatField(allow_null=True)


class ThresholdRowSerializer(serializers.Serializer):
    risk_level = serializers.CharField()
    threshold = serializers.FloatField()
    flagged = serializers.IntegerField()
    share_flagged = serializers.FloatField(allow_null=True)
    precision = serializers.FloatField(allow_null=True)
    recall = serializers.FloatField(allow_null=True)


class ChurnCurvesSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    positives = serializers.IntegerField()
    roc_auc = serializers.FloatField(allow_null=True)
    lift = LiftRowSerializer(many=True)
    gains = GainsPointSerializer(many=True)
    calibration = CalibrationBinSerializer(many=True)
    threshold_table = ThresholdRowSerializer(many=True)


class ModelReportSerializer(ChurnCurvesSerializer):
    version = serializers.CharField()
    source = serializers.CharField(help_text='"held_out": the version\'s held-out rows at training time.')
    backtest = serializers.DictField(allow_null=True, help_text="Older-to-newer result, or null (see backtest_reason).")
    backtest_reason = serializers.CharField()
    live = ChurnCurvesSerializer(allow_null=True, help_text="The same, recomputed on live outcomes.")


# --- shadow scoring (issue 12, point 5) -------------------------------------------------------


class ShadowStartSerializer(serializers.Serializer):
    share = serializers.FloatField(min_value=0.0, max_value=1.0, help_text="Share of single-record requests, (0, 1].")

    def validate_share(self, value: float) -> float:
        if value <= 0:
            raise serializers.ValidationError("The share must be above 0.")
        return value


class ShadowComparisonSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    positives = serializers.IntegerField()
    shadow_roc_auc = serializers.FloatField()
    active_roc_auc = serializers.FloatField()
    difference = serializers.FloatField(help_text="Shadow minus active, on the same customers.")
    ci95 = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    p_value = serializers.FloatField()
    p_worse = serializers.FloatField()
    method = serializers.CharField()


class ShadowPairedSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="Requests the shadow scored.")
    shadow_mean_probability = serializers.FloatField(allow_null=True)
    active_mean_probability = serializers.FloatField(allow_null=True)
    risk_level_disagreement = serializers.FloatField(allow_null=True, help_text="Share with a different risk level.")
    outcomes = serializers.IntegerField(help_text="Shadow predictions followed by an outcome within the horizon.")
    comparison = ShadowComparisonSerializer(allow_null=True, help_text="DeLong paired test once outcomes arrive.")


class ShadowReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField()
    share = serializers.FloatField()
    status = serializers.CharField()
    started_by = serializers.CharField()
    started_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    paired = ShadowPairedSerializer()
