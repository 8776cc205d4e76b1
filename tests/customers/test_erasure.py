"""Erasing a customer: everything personal goes, in one transaction, audited without the values;
campaign results keep their counts. Retention purges old predictions and quarantined rows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import api_key_create
from campaigns.models import CampaignTarget, TargetGroup, TargetNote, TargetOutcome
from campaigns.selectors.effectiveness import campaign_effectiveness
from customers.erasure_signals import customer_erased
from customers.models import Customer, IngestionRun, Outcome, QuarantinedRow
from predictions.models import Prediction
from tests.campaigns.factories import CampaignFactory, PredictionFactory, TargetFactory
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

GONE = "C-ERASE-ME"


@pytest.fixture
def erasable(department):
    """A customer with a scored snapshot, an outcome, a quarantined row and a campaign target with a note."""
    customer = CustomerFactory(customer_id=GONE, age=41, income=52000.0)
    keep = CustomerFactory(customer_id="C-KEEP")
    snapshot = {"customer_id": GONE, "age": 41, "income": 52000.0, "tenure_months": 3}
    PredictionFactory(customer_id=GONE, inputs=snapshot)
    PredictionFactory(customer_id="C-KEEP", inputs={"customer_id": "C-KEEP"})
    Outcome.objects.create(customer=customer, churned=True, observed_at=timezone.now())
    run = IngestionRun.objects.create(source_kind="file", source_name="upload")
    QuarantinedRow.objects.create(run=run, line=2, customer_id=GONE, raw={"customerID": GONE, "age": "x"},
                                  errors={"age": ["not a number"]})
    QuarantinedRow.objects.create(run=run, line=3, customer_id="C-KEEP", raw={}, errors={})
    campaign = CampaignFactory(department=department)
    target = TargetFactory(campaign=campaign, customer=customer, outcome=TargetOutcome.CHURNED)
    TargetFactory(campaign=campaign, customer=keep, outcome=TargetOutcome.RETAINED)
    TargetFactory(campaign=campaign, customer=CustomerFactory(), group=TargetGroup.CONTROL)
    TargetNote.objects.create(target=target, author_label="alice", text=f"{GONE} asked about a cheaper plan")
    return campaign


def _erase_key(department, scopes):
    return api_key_create(department=department, name="erasure", scopes=scopes)[1]


def test_delete_erases_everything_personal_and_keeps_campaign_counts(api_client, department, erasable):
    before = campaign_effectiveness(campaign=erasable)
    api_client.credentials(HTTP_X_API_KEY=_erase_key(department, ["customers:read", "customers:erase"]))

    response = api_client.delete(f"/api/v1/customers/{GONE}/")

    assert response.status_code == 204, response.content
    assert api_client.get(f"/api/v1/customers/{GONE}/").status_code == 404
    assert not Customer.objects.filter(customer_id=GONE).exists()
    assert not Outcome.objects.filter(customer__customer_id=GONE).exists()
    assert list(QuarantinedRow.objects.values_list("customer_id", flat=True)) == ["C-KEEP"]
    assert list(Prediction.objects.filter(customer_id=GONE).values_list("inputs", flat=True)) == [None]
    assert Prediction.objects.get(customer_id="C-KEEP").inputs == {"customer_id": "C-KEEP"}
    assert not TargetNote.objects.exists()
    anonymised = CampaignTarget.objects.get(campaign=erasable, customer=None)
    assert anonymised.outcome == TargetOutcome.CHURNED
    after = campaign_effectiveness(campaign=erasable)
    assert (after.treatment, after.control, after.targets) == (before.treatment, before.control, before.targets)
    entry = AuditLogEntry.objects.get(action="customer.erase")
    assert entry.details["rows"]["prediction_inputs"] == 1
    assert entry.details["rows"]["quarantined_rows"] == 1
    assert entry.details["rows"]["campaign_targets_anonymised"] == 1
    everything = json.dumps([entry.object_id, entry.object_type, entry.details])
    assert GONE not in everything
    assert "52000" not in everything
    assert "cheaper plan" not in everything


def test_erasure_needs_its_own_scope_which_new_keys_do_not_get(api_client, department, erasable):
    api_client.credentials(HTTP_X_API_KEY=_erase_key(department, None))  # the default scopes
    response = api_client.delete(f"/api/v1/customers/{GONE}/")
    assert response.status_code == 403
    assert "customers:erase" in json.dumps(response.json())
    assert Customer.objects.filter(customer_id=GONE).exists()
    missing = _erase_key(department, ["customers:erase"])
    api_client.credentials(HTTP_X_API_KEY=missing)
    assert api_client.delete("/api/v1/customers/C-NOBODY/").status_code == 404


def test_a_failing_part_rolls_the_whole_erasure_back(department, erasable):
    def broken(**kwargs):
        raise RuntimeError("campaign store unavailable")

    customer_erased.connect(broken, dispatch_uid="test.broken")
    try:
        with pytest.raises(RuntimeError):
            call_command("erase_customer", GONE)
    finally:
        customer_erased.disconnect(dispatch_uid="test.broken")
    assert Customer.objects.filter(customer_id=GONE).exists()
    assert Prediction.objects.get(customer_id=GONE).inputs is not None
    assert TargetNote.objects.count() == 1
    assert not AuditLogEntry.objects.filter(action="customer.erase").exists()


def test_the_command_erases_and_says_what(erasable, capsys):
    call_command("erase_customer", GONE, "--reason", "ticket 123")
    assert "customers 1" in capsys.readouterr().out
    assert not Customer.objects.filter(customer_id=GONE).exists()
    assert AuditLogEntry.objects.get(action="customer.erase").details["reason"] == "ticket 123"


def test_retention_purges_old_predictions_and_quarantined_rows(settings):
    from customers.tasks import quarantine_purge_expired
    from predictions.tasks import predictions_purge_expired

    settings.PREDICTION_RETENTION_DAYS = 30
    settings.QUARANTINE_RETENTION_DAYS = 7
    old = PredictionFactory(created_at=timezone.now() - timedelta(days=31))
    recent = PredictionFactory(created_at=timezone.now() - timedelta(days=29))
    run = IngestionRun.objects.create(source_kind="file", source_name="upload")
    stale = QuarantinedRow.objects.create(run=run, line=2, raw={}, errors={})
    QuarantinedRow.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=8))
    fresh = QuarantinedRow.objects.create(run=run, line=3, raw={}, errors={})

    assert predictions_purge_expired.delay().get() == 1
    assert quarantine_purge_expired.delay().get() == 1

    assert list(Prediction.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Prediction.objects.filter(pk=old.pk).exists()
    assert list(QuarantinedRow.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert AuditLogEntry.objects.filter(action="predictions.retention_purge").get().details["deleted"] == 1


def test_retention_runs_on_beat():
    from django_celery_beat.models import PeriodicTask

    tasks = set(PeriodicTask.objects.filter(enabled=True).values_list("task", flat=True))
    assert {"predictions.tasks.predictions_purge_expired", "customers.tasks.quarantine_purge_expired"} <= tasks


def test_campaign_pages_exports_and_the_api_still_answer_after_an_erasure(client, staff_user, department, key_client):
    from accounts.services import SYSTEM
    from customers.erasure import customer_erase
    from tests.campaigns.factories import CampaignFactory, TargetFactory, scored_customer

    campaign = CampaignFactory(department=department, status="active")
    TargetFactory(campaign=campaign, customer=scored_customer("ERASE-ME", 0.8), assignee=staff_user)
    customer_erase(customer_id="ERASE-ME", actor=SYSTEM, reason="request")
    client.force_login(staff_user)

    assert client.get(f"/staff/campaigns/{campaign.pk}/").status_code == 200
    assert b"Erased customer" in client.get(f"/staff/campaigns/{campaign.pk}/").content
    assert client.get(f"/staff/campaigns/{campaign.pk}/targets.csv").status_code == 200
    body = key_client.get(f"/api/v1/campaigns/{campaign.pk}/targets/").json()
    assert [t["customer_id"] for t in body["results"]] == [None]
