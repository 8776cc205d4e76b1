from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.context import actor_for_request
from churn_infra.api import require_object, require_record_list, row_errors
from customers.api.serializers import BulkCustomersSerializer, CustomerRecordSerializer
from predictions.api.filters import PredictionFilter
from predictions.api.serializers import PredictionHistorySerializer, PredictionSerializer
from predictions.selectors import prediction_list
from predictions.services import prediction_score, predictions_score_batch

STORE_PARAMETER = OpenApiParameter(
    "store",
    bool,
    OpenApiParameter.QUERY,
    required=False,
    default=True,
    description=(
        "false: a what-if. The record is scored and nothing is stored: neither the customer nor the "
        "prediction (its prediction_id is null); the answer is 200. Default true: the prediction is "
        "stored with its inputs and a full record also upserts its customer (source api:prediction)."
    ),
)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def store_requested(request: Request) -> bool:
    """The ``store`` query parameter (default true); 400 naming it when it is not a boolean."""
    raw = request.query_params.get("store")
    if raw is None:
        return True
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError({"store": [f"Must be true or false; got {raw[:20]!r}."]})


class PredictionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Prediction history, newest first. POST scores one customer record (or a stored customer)."""

    serializer_class = PredictionHistorySerializer
    filterset_class = PredictionFilter
    lookup_field = "prediction_id"
    lookup_value_regex = r"[0-9a-fA-F-]{32,36}"
    required_scopes = {"GET": "customers:read", "POST": "predictions:write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return prediction_list(actor=actor_for_request(self.request))

    @extend_schema(
        request=CustomerRecordSerializer,
        parameters=[STORE_PARAMETER],
        responses={
            201: OpenApiResponse(PredictionSerializer, description="Scored and stored (the default)."),
            200: OpenApiResponse(PredictionSerializer, description="?store=false: scored, nothing stored."),
        },
        description=(
            'A full customer record, or {"customer_id": "..."} to score a stored customer. A full record '
            "also upserts the customer (source api:prediction) with the checks and quality report of "
            "POST customers/, in the prediction's transaction."
        ),
    )
    def create(self, request: Request) -> Response:
        store = store_requested(request)
        prediction = prediction_score(body=require_object(request.data), actor=actor_for_request(request), store=store)
        return Response(prediction, status=status.HTTP_201_CREATED if store else status.HTTP_200_OK)


class PredictionBatchView(APIView):
    """Score up to 1,000 records in one call; results and per-item errors in input order."""

    required_scopes = {"POST": "predictions:write"}

    @extend_schema(
        request=BulkCustomersSerializer,
        responses=inline_serializer(
            "PredictionBatchResult",
            {
                "predictions": PredictionSerializer(many=True),
                "errors": serializers.ListField(child=serializers.DictField()),
            },
        ),
        parameters=[STORE_PARAMETER],
        description=(
            '{"customers": [...]}: records or {"customer_id"} references. Full records also upsert their '
            "customers (source api:prediction; the last record of a customer_id wins), in the "
            "predictions' transaction. 200 whether stored or not (?store=false)."
        ),
    )
    def post(self, request: Request) -> Response:
        store = store_requested(request)
        items = require_record_list(request.data, key="customers", limit=settings.BATCH_PREDICTION_MAX_RECORDS)
        outcome = predictions_score_batch(items=items, actor=actor_for_request(request), store=store)
        return Response(
            {"predictions": outcome.predictions, "errors": row_errors(outcome.result, outcome.errors, items)}
        )
