from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.context import actor_for_request
from churn_infra.api import require_object, require_record_list, row_errors
from churn_ml.record import check_record
from churn_ml.schema import validate_records
from customers.api.filters import CustomerFilter
from customers.api.serializers import (
    BulkCustomersSerializer,
    BulkOutcomesResultSerializer,
    BulkOutcomesSerializer,
    BulkResultSerializer,
    CustomerDetailSerializer,
    CustomerRecordSerializer,
    CustomerSerializer,
    OutcomeInputSerializer,
    OutcomeSerializer,
    outcome_items,
)
from customers.erasure import CustomerNotFound, customer_erase
from customers.models import Outcome
from customers.selectors import customer_list
from customers.services import (
    OutcomeInput,
    UnknownCustomer,
    customer_upsert,
    customers_bulk_upsert,
    outcome_record,
    outcomes_record,
)


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers by their natural key. POST upserts one: 201 when created, 200 when updated."""

    lookup_field = "customer_id"
    lookup_value_regex = r"[A-Za-z0-9_.:\-]{1,64}"
    filterset_class = CustomerFilter
    required_scopes = {"GET": "customers:read", "POST": "customers:write", "DELETE": "customers:erase"}

    def required_scope(self, request: Request) -> str | None:
        # DELETE exists on one customer only: on the list it is a 405, not a missing-scope 403.
        if request.method == "DELETE" and self.action != "destroy":
            return None
        return self.required_scopes.get(request.method)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return customer_list()

    @extend_schema(responses={204: None}, description="Erase the customer's personal data (scope customers:erase).")
    def destroy(self, request: Request, customer_id: str) -> Response:
        try:
            customer_erase(customer_id=customer_id, actor=actor_for_request(request))
        except CustomerNotFound:
            raise NotFound(f"No customer with customer_id {customer_id!r}.") from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        return CustomerDetailSerializer if self.action == "retrieve" else CustomerSerializer

    @extend_schema(request=CustomerRecordSerializer, responses={200: CustomerSerializer, 201: CustomerSerializer})
    def create(self, request: Request) -> Response:
        check = check_record(require_object(request.data))
        if check.errors:
            raise ValidationError(check.errors)
        customer, created = customer_upsert(check=check, source="api", actor=actor_for_request(request))
        return Response(
            CustomerSerializer(customer).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class CustomerBulkView(APIView):
    """Upsert up to 10,000 customers; valid records are stored even when others are rejected."""

    required_scopes = {"POST": "customers:write"}

    @extend_schema(request=BulkCustomersSerializer, responses=BulkResultSerializer)
    def post(self, request: Request) -> Response:
        records = require_record_list(request.data, key="customers", limit=settings.BULK_MAX_RECORDS)
        result = validate_records(records)
        counts, errors = customers_bulk_upsert(result=result, source="api:bulk", actor=actor_for_request(request))
        return Response(
            {
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": row_errors(result, errors, records),
            }
        )


class OutcomeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Recorded outcomes: what really happened to customers. Feeds live accuracy and campaigns."""

    serializer_class = OutcomeSerializer
    required_scopes = {"GET": "customers:read", "POST": "customers:write"}

    def get_queryset(self):  # type: ignore[no-untyped-def]
        qs = Outcome.objects.select_related("customer")
        customer_id = self.request.query_params.get("customer_id")
        return qs.filter(customer__customer_id=customer_id) if customer_id else qs

    @extend_schema(request=OutcomeInputSerializer, responses={201: OutcomeSerializer, 200: OutcomeSerializer})
    def create(self, request: Request) -> Response:
        body = OutcomeInputSerializer(data=require_object(request.data))
        body.is_valid(raise_exception=True)
        try:
            outcome, created = outcome_record(**body.validated_data, channel="api", actor=actor_for_request(request))
        except UnknownCustomer:
            raise ValidationError({"customer_id": ["No customer with this customer_id."]}) from None
        return Response(
            OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class OutcomeBulkView(APIView):
    """Record up to 10,000 outcomes; valid items are stored even when others are rejected."""

    required_scopes = {"POST": "customers:write"}

    @extend_schema(request=BulkOutcomesSerializer, responses=BulkOutcomesResultSerializer)
    def post(self, request: Request) -> Response:
        items = require_record_list(request.data, key="outcomes", limit=settings.BULK_MAX_RECORDS)
        checked, rejected = outcome_items(items)
        positions = [i for i, _ in checked]  # input index of each valid item
        written = outcomes_record(
            outcomes=[OutcomeInput(**data) for _, data in checked], channel="bulk", actor=actor_for_request(request)
        )
        for k in written.unknown:
            rejected[positions[k]] = {"customer_id": ["No customer with this customer_id."]}
        for k, later in written.superseded.items():
            rejected[positions[k]] = {
                "observed_at": [
                    f"The same observation appears again later in this batch (index {positions[later]}); "
                    "the later item was used."
                ]
            }
        return Response(
            {
                "created": written.created,
                "updated": written.updated,
                "unchanged": written.unchanged,
                "rejected": [
                    {"index": i, "customer_id": _given_id(items[i]), "errors": rejected[i]} for i in sorted(rejected)
                ],
            }
        )


def _given_id(item: Any) -> str | None:
    value = item.get("customer_id") if isinstance(item, dict) else None
    return value[:64] if isinstance(value, str) else None
