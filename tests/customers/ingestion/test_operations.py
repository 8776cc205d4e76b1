"""What operators use: the admin pages, schedules, commands, the data source API and metrics."""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask
from prometheus_client import REGISTRY

from accounts.services import SYSTEM
from customers.ingestion.secrets import decrypt_secret
from customers.ingestion.services import data_source_delete, data_source_save
from customers.models import Customer, DataSource, IngestionRun, RunStatus, SourceKind
from tests.customers.ingestion.conftest import telco, telco_csv
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- admin ------------------------------------------------------------------------------------


def test_admin_upload_shows_the_run_and_downloads_its_rejected_rows(
    client, admin_user, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    data = telco_csv([telco("AD-1"), telco("AD-2", Contract="Weekly")])
    assert client.get("/admin/customers/ingestionrun/add/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/customers/ingestionrun/add/", {"file": SimpleUploadedFile("a.csv", data)})

    run = IngestionRun.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/admin/customers/ingestionrun/{run.pk}/change/")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"Download the 1 rejected rows as CSV" in page.content
    download = client.get(f"/admin/customers/ingestionrun/{run.pk}/rejected.csv")
    table = list(csv.DictReader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert table[0]["customerID"] == "AD-2"
    assert "contract_type" in table[0]["_errors"]

    binary = client.post("/admin/customers/ingestionrun/add/", {"file": SimpleUploadedFile("x.xlsx", b"PK\x03\x04..")})
    assert binary.status_code == 200
    assert b"ZIP archive" in binary.content


def test_admin_customer_pages_filter_search_and_validate_edits(client, admin_user):
    client.force_login(admin_user)
    CustomerFactory(customer_id="CA-1", quality_warnings=["anomaly: monthly_charges 9000 ..."])
    CustomerFactory(customer_id="CA-2")
    listing = client.get("/admin/customers/customer/", {"warnings": "yes", "q": "CA"})
    assert b"CA-1" in listing.content
    assert b"CA-2" not in listing.content

    form = client.get("/admin/customers/customer/add/")
    assert form.status_code == 200
    fields = {
        "customer_id": "CA-3", "gender": "female", "partner": "on", "tenure_months": "5", "phone_service": "on",
        "multiple_lines": "No", "internet_service": "No", "online_security": "No",
        "online_backup": "No internet service",
        "device_protection": "No internet service", "tech_support": "No internet service",
        "streaming_tv": "No internet service", "streaming_movies": "No internet service",
        "contract_type": "One year", "payment_method": "Mailed check", "monthly_charges": "20", "total_charges": "100",
    }  # fmt: skip
    for prefix in ("outcomes", "events"):
        fields |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    refused = client.post("/admin/customers/customer/add/", fields)
    assert refused.status_code == 200
    assert b"No internet service" in refused.content  # the contract's consistency rule, from the validator
    assert not Customer.objects.filter(customer_id="CA-3").exists()
    fields["online_security"] = "No internet service"
    saved = client.post("/admin/customers/customer/add/", fields)
    assert saved.status_code == 302
    assert Customer.objects.get(customer_id="CA-3").source == "admin"


def test_admin_data_source_keeps_the_password_encrypted_and_runs_now(
    client, admin_user, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    fields = {
        "name": "crm", "kind": "postgresql", "enabled": "on", "host": "127.0.0.1", "port": "1", "database": "x",
        "username": "u", "password": "hunter2", "query": "SELECT 1", "options": "{}", "column_mapping": "{}",
        "cursor_value": "null", "page_size": "100", "timeout_seconds": "1", "max_retries": "0", "schedule": "",
    }  # fmt: skip
    response = client.post("/admin/customers/datasource/add/", fields)
    assert response.status_code == 302, response.content
    source = DataSource.objects.get(name="crm")
    assert "hunter2" not in source.secret_encrypted
    assert decrypt_secret(source.secret_encrypted) == "hunter2"

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/customers/datasource/",
            {"action": "run_now", "_selected_action": [source.pk]},
        )
    run = source.runs.get()
    assert run.status == RunStatus.FAILED
    assert run.error == "Could not connect to 127.0.0.1."


# --- schedules and commands -------------------------------------------------------------------


def test_a_schedule_is_a_beat_periodic_task_kept_in_step_with_the_source():
    source = data_source_save(
        source=DataSource(name="nightly", kind=SourceKind.HTTP, url="http://127.0.0.1:9/x", schedule="30 2 * * *"),
        actor=SYSTEM,
    )
    task = PeriodicTask.objects.get(name=f"data-source:{source.pk}")
    assert task.task == "customers.tasks.data_source_run"
    assert json.loads(task.args) == [source.pk]
    assert (task.crontab.minute, task.crontab.hour) == ("30", "2")
    assert task.enabled

    source.enabled = False
    data_source_save(source=source, actor=SYSTEM)
    assert not PeriodicTask.objects.get(name=f"data-source:{source.pk}").enabled
    source.schedule = ""
    data_source_save(source=source, actor=SYSTEM)
    assert not PeriodicTask.objects.filter(name=f"data-source:{source.pk}").exists()
    source.schedule = "0 * * * *"
    data_source_save(source=source, actor=SYSTEM)
    data_source_delete(source=source, actor=SYSTEM)
    assert not PeriodicTask.objects.filter(name__startswith="data-source:").exists()


def test_scheduled_task_skips_disabled_sources():
    from customers.tasks import data_source_run

    source = data_source_save(
        source=DataSource(name="off", kind=SourceKind.HTTP, url="http://127.0.0.1:9/x", enabled=False), actor=SYSTEM
    )
    assert data_source_run.apply(args=[source.pk]).get() is None
    assert not source.runs.exists()


def test_import_telco_csv_leaves_a_run_and_prints_the_counts(tmp_path, capsys):
    path = Path(tmp_path) / "telco.csv"
    path.write_bytes(telco_csv([telco("IM-1", Churn="Yes"), telco("IM-2"), telco("IM-3", tenure="x")]))

    call_command("import_telco_csv", str(path), source="demo")
    out = capsys.readouterr()
    assert "created 2, updated 0, unchanged 0, rejected 1, outcomes recorded 2" in out.out
    assert "line 4: invalid" in out.err
    run = IngestionRun.objects.get()
    assert (run.source_name, run.file_name, run.status) == ("demo", "telco.csv", RunStatus.PARTIALLY_SUCCEEDED)
    assert Customer.objects.get(customer_id="IM-1").outcomes.get().churned is True

    call_command("import_telco_csv", str(path), source="demo")
    assert "already imported" in capsys.readouterr().out
    assert IngestionRun.objects.count() == 1


def test_run_source_command_for_a_database_source(capsys):
    source = data_source_save(
        source=DataSource(
            name="dead-db", kind=SourceKind.MYSQL, host="127.0.0.1", port=1, query="SELECT 1", timeout_seconds=1
        ),
        actor=SYSTEM,
    )
    with pytest.raises(Exception, match=r"Could not connect to 127\.0\.0\.1\.$"):
        call_command("run_source", source.name)
    assert source.runs.get().status == RunStatus.FAILED


# --- data source API and metrics --------------------------------------------------------------


def test_data_source_api_hides_the_password_and_scopes_by_department(
    key_client, department, django_capture_on_commit_callbacks
):
    body = {
        "name": f"api-{uuid.uuid4().hex[:4]}",
        "kind": "http",
        "url": "http://127.0.0.1:9/customers",
        "password": "Bearer abc",
        "options": {"pagination": "none"},
    }
    created = key_client.post("/api/v1/data-sources/", body, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert "password" not in data
    assert data["has_password"] is True
    assert data["department"] == department.pk
    bad = key_client.post("/api/v1/data-sources/", {**body, "name": "b", "schedule": "soon"}, format="json")
    assert bad.status_code == 400
    assert "schedule" in bad.json()["errors"]

    with django_capture_on_commit_callbacks(execute=True):
        started = key_client.post(f"/api/v1/data-sources/{data['id']}/run/")
    assert started.status_code == 202
    run = key_client.get(f"/api/v1/ingestions/{started.json()['id']}/").json()
    assert run["status"] == "failed"
    assert run["source"] == body["name"]


def test_rows_and_runs_are_counted_in_the_metrics(upload):
    created = metric("churn_ingestion_rows_total", source_kind="file", outcome="created")
    rejected = metric("churn_ingestion_rows_total", source_kind="file", outcome="rejected")
    partial = metric("churn_ingestion_runs_total", source_kind="file", status="partially_succeeded")

    upload(telco_csv([telco("MT-1"), telco("MT-2"), telco("MT-3", tenure="-1")]))

    assert metric("churn_ingestion_rows_total", source_kind="file", outcome="created") == created + 2
    assert metric("churn_ingestion_rows_total", source_kind="file", outcome="rejected") == rejected + 1
    assert metric("churn_ingestion_runs_total", source_kind="file", status="partially_succeeded") == partial + 1


def test_a_source_set_to_re_score_asks_for_it_after_the_commit(django_capture_on_commit_callbacks, settings):
    from customers.ingestion.services import data_source_run_now

    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # the broker path; send_task is mocked below

    source = data_source_save(
        source=DataSource(name="rs", kind=SourceKind.HTTP, url="http://127.0.0.1:9/x", rescore_on_change=True),
        actor=SYSTEM,
    )
    records = [dict(zip(("customer_id",), (f"RS-{i}",), strict=True)) for i in range(2)]
    from tests.factories import record

    pages = [{"results": [record(customer_id=r["customer_id"]) for r in records], "next": None}]
    with (
        mock.patch("customers.ingestion.sources.http.HttpReader.fetch", side_effect=[(pages[0], {})]),
        mock.patch("customers.ingestion.pipeline.current_app.send_task") as send_task,
        django_capture_on_commit_callbacks(execute=True),
    ):
        source.records_path = "results"
        data_source_save(source=source, actor=SYSTEM)
        run = data_source_run_now(source_id=source.pk)

    assert run.counts["created"] == 2
    send_task.assert_called_once_with(
        "predictions.tasks.rescore_customers", kwargs={"customer_ids": ["RS-0", "RS-1"], "reason": "ingestion:rs"}
    )


def test_every_admin_list_and_page_renders(client, admin_user, upload):
    client.force_login(admin_user)
    run = upload(telco_csv([telco("PG-1"), telco("PG-2", tenure="x")]))
    data_source_save(source=DataSource(name="page", kind=SourceKind.HTTP, url="http://127.0.0.1:9/x"), actor=SYSTEM)
    for model in ("customer", "outcome", "ingestionrun", "quarantinedrow", "datasource", "customerevent"):
        assert client.get(f"/admin/customers/{model}/").status_code == 200, model
    row = run.quarantined_rows.get()
    assert client.get(f"/admin/customers/quarantinedrow/{row.pk}/change/").status_code == 200
    customer = Customer.objects.get(customer_id="PG-1")
    assert client.get(f"/admin/customers/customer/{customer.pk}/change/").status_code == 200
    source = DataSource.objects.get(name="page")
    assert client.get(f"/admin/customers/datasource/{source.pk}/change/").status_code == 200
