"""The audit log's two writers (audit_record, and audit_insert_select inside a caller's statement)
write the same entry."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import AuditLogEntry
from accounts.services import Actor, audit_insert_select, audit_record

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="audit_insert_select is PostgreSQL SQL"),
]

COMPARED = [f.attname for f in AuditLogEntry._meta.concrete_fields if f.attname not in {"id", "created_at"}]


def test_an_entry_written_in_a_callers_statement_equals_the_one_audit_record_writes(api_key, department):
    actor = Actor(api_key_id=api_key[0].pk, api_key_name="crm", department_id=department.pk,
                  department_name=department.name, ip="2001:db8::7", request_id="req-" + "x" * 80)  # fmt: skip
    details = {"source": "api:prediction", "department": department.name, "ünïcode": "✓"}
    audit_record(actor=actor, action="customer.create", object_type="customers.customer", object_id="C-9",
                 details=details)  # fmt: skip
    sql, params = audit_insert_select(
        source="changed", actions=("created", "customer.create", "customer.update"), actor=actor,
        object_type="customers.customer", object_id="C-9", details=details,
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"WITH changed AS (SELECT true AS created, 1 AS n UNION ALL SELECT false, 2) {sql}", params)

    entries = AuditLogEntry.objects.filter(object_id="C-9").order_by("pk").values(*COMPARED)
    first, by_sql_created, by_sql_updated = entries
    assert by_sql_created == first
    assert by_sql_updated == {**first, "action": "customer.update"}
