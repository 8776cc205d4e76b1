from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.context import actor_for_request
from modelregistry.api.serializers import (
    ABTestReportSerializer,
    ABTestStartSerializer,
    ABTestStopSerializer,
    ModelReportSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    ReasonSerializer,
    RetrainingRunDetailSerializer,
    RetrainingRunSerializer,
    ShadowReportSerializer,
    ShadowStartSerializer,
    TrainRequestSerializer,
    TriggerEvaluationSerializer,
)
from modelregistry.live import live_rows_of
from modelregistry.models import (
    ABTest,
    ModelEvent,
    ModelStatus,
    ModelVersion,
    RetrainingRun,
    ShadowDeployment,
    TriggerEvaluation,
)
from modelregistry.services import (
    PromotionRefused,
    ab_test_report,
    ab_test_start,
    ab_test_stop,
    model_promote,
    model_rollback,
    model_version_set_status,
)
from modelregistry.shadow import shadow_report, shadow_start, shadow_stop


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the registry's state."


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The model registry: every trained version with metrics and status; operators promote and roll back."""

    lookup_field = "version"
    lookup_value_regex = r"[A-Za-z0-9_.:\-]+"

    def required_scope(self, request: Request) -> str:
        return "customers:read" if request.method == "GET" else "models:manage"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = ModelVersion.objects.select_related("previous_active")
        if self.action == "retrieve":
            qs = qs.prefetch_related(Prefetch("events", queryset=ModelEvent.objects.order_by("-created_at", "-pk")))
        status_filter = self.request.query_params.get("status")
        return qs.filter(status=status_filter) if status_filter else qs

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return ModelVersionDetailSerializer if self.action == "retrieve" else ModelVersionSerializer

    @extend_schema(request=PromoteSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, version: str | None = None) -> Response:
        target = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            promoted = model_promote(version=target.version, actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(promoted).data)

    @extend_schema(request=ReasonSerializer, responses=ModelVersionSerializer)
    @action(detail=False, methods=["post"])
    def rollback(self, request: Request) -> Response:
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            restored = model_rollback(actor=actor_for_request(request), reason=body.validated_data["reason"])
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(restored).data)

    @extend_schema(request=ReasonSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def deprecate(self, request: Request, version: str | None = None) -> Response:
        target = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            row = model_version_set_status(
                version=target.version,
                status=ModelStatus.DEPRECATED,
                actor=actor_for_request(request),
                reason=body.validated_data["reason"],
            )
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ModelVersionSerializer(row).data)

    @extend_schema(responses=ModelReportSerializer)
    @action(detail=True, methods=["get"])
    def report(self, request: Request, version: str | None = None) -> Response:
        """Lift, gains, calibration and risk-level cuts of the held-out rows, the backtest, and the
        same on live outcomes."""
        target = self.get_object()
        held_out = dict(target.report or {})
        if not held_out:
            raise NotFound(f"{target.version} has no report: it was registered without held-out rows.")
        backtest = held_out.pop("backtest", None) or {}
        live = next((r.report for r in live_rows_of(target) if r.scope == "all" and r.report), None)
        body = {
            "version": target.version,
            **held_out,
            "backtest": backtest.get("result"),
            "backtest_reason": backtest.get("reason", ""),
            "live": live,
        }
        return Response(ModelReportSerializer(body).data)

    @extend_schema(request=ShadowStartSerializer, responses={201: ShadowReportSerializer})
    @action(detail=True, methods=["post"], url_path="shadow")
    def start_shadow(self, request: Request, version: str | None = None) -> Response:
        """Let this version score a share of single-record requests in the shadow (off the response path)."""
        target = self.get_object()
        body = ShadowStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            deployment = shadow_start(
                version=target.version, share=body.validated_data["share"], actor=actor_for_request(request)
            )
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ShadowReportSerializer(shadow_report(deployment=deployment)).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(responses=ShadowReportSerializer)
    @action(detail=False, methods=["get"], url_path="shadow")
    def shadow(self, request: Request) -> Response:
        """The running shadow (or the last one) next to the active model on the same requests."""
        deployment = ShadowDeployment.objects.select_related("model_version").first()
        if deployment is None:
            raise NotFound("No shadow has been run.")
        return Response(ShadowReportSerializer(shadow_report(deployment=deployment)).data)

    @extend_schema(request=None, responses=ShadowReportSerializer)
    @action(detail=False, methods=["post"], url_path="shadow/stop")
    def stop_shadow(self, request: Request) -> Response:
        """Stop the running shadow."""
        try:
            deployment = shadow_stop(actor=actor_for_request(request))
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ShadowReportSerializer(shadow_report(deployment=deployment)).data)

    @extend_schema(request=ABTestStartSerializer, responses={201: ABTestReportSerializer})
    @action(detail=True, methods=["post"], url_path="ab-test")
    def start_ab_test(self, request: Request, version: str | None = None) -> Response:
        """Let this version score a share of customers (by customer_id) next to the active model."""
        target = self.get_object()
        body = ABTestStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            test = ab_test_start(version=target.version, actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ab_test_report(test=test), status=status.HTTP_201_CREATED)

    @extend_schema(responses=ABTestReportSerializer)
    @action(detail=False, methods=["get"], url_path="ab-test")
    def ab_test(self, request: Request) -> Response:
        """The running A/B test (or the last one) with each arm's predictions and live metrics."""
        test = ABTest.objects.select_related("champion", "challenger").order_by("-created_at", "-pk").first()
        if test is None:
            raise NotFound("No A/B test has been run.")
        return Response(ab_test_report(test=test))

    @extend_schema(request=ABTestStopSerializer, responses=ABTestReportSerializer)
    @action(detail=False, methods=["post"], url_path="ab-test/stop")
    def stop_ab_test(self, request: Request) -> Response:
        """End the running A/B test; with "promote" the challenger becomes the active model."""
        body = ABTestStopSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            test = ab_test_stop(actor=actor_for_request(request), **body.validated_data)
        except PromotionRefused as exc:
            raise Conflict(str(exc)) from None
        return Response(ab_test_report(test=test))

    @extend_schema(
        request=TrainRequestSerializer,
        responses={202: inline_serializer("TrainQueued", {"task_id": serializers.CharField()})},
    )
    @action(detail=False, methods=["post"])
    def train(self, request: Request) -> Response:
        """Queue training on the stored customers and their recorded outcomes."""
        from modelregistry.tasks import train_model

        body = TrainRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actor = actor_for_request(request)
        result = train_model.delay(**body.validated_data, requested_by_user_id=actor.user_id)
        return Response({"task_id": result.id}, status=status.HTTP_202_ACCEPTED)


class RetrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Retraining runs: why each ran, the candidate, both models' figures on the same rows, the decision."""

    queryset = RetrainingRun.objects.select_related("active_version", "candidate_version").order_by(
        "-created_at", "-pk"
    )

    def required_scope(self, request: Request) -> str:
        return "customers:read"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = self.queryset
        if self.action == "retrieve":
            qs = qs.prefetch_related(
                Prefetch("evaluations", queryset=TriggerEvaluation.objects.select_related("model_version"))
            )
        for name in ("status", "trigger", "decision"):
            if value := self.request.query_params.get(name):
                qs = qs.filter(**{name: value})
        return qs

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return RetrainingRunDetailSerializer if self.action == "retrieve" else RetrainingRunSerializer


class TriggerEvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every trigger check with its value, threshold, p-value, evidence and decision."""

    queryset = TriggerEvaluation.objects.select_related("model_version").order_by("-created_at", "-pk")
    serializer_class = TriggerEvaluationSerializer

    def required_scope(self, request: Request) -> str:
        return "customers:read"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = self.queryset
        for name in ("kind", "decision"):
            if value := self.request.query_params.get(name):
                qs = qs.filter(**{name: value})
        return qs
