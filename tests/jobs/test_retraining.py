"""Retraining on a schedule and on evidence: stored trigger evaluations, the run, the promotion policy."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from accounts.models import AuditLogEntry
from customers.models import Customer, Outcome
from modelregistry.models import (
    ModelStatus,
    ModelVersion,
    RetrainingDecision,
    RetrainingRun,
    RetrainingStatus,
    TriggerDecision,
    TriggerEvaluation,
    TriggerKind,
)
from modelregistry.retraining import retraining_run_start, retraining_scheduled, retraining_triggers_evaluate
from predictions.models import Prediction, PredictionSource

pytestmark = pytest.mark.django_db

PAYMENTS = ("Electronic check", "Mailed check", "Bank transfer", "Credit card")


@pytest.fixture(autouse=True)
def _retraining_settings(settings):
    settings.RETRAIN_MIN_SAMPLES = 50
    settings.RETRAIN_ALGORITHM = "logistic"  # "auto" would also fit boosting: slower, same checks
    settings.RETRAIN_PROMOTION_POLICY = "never"
    settings.RETRAIN_PROMOTION_MARGIN = 0.005


def store_drifted(n: int = 600, seed: int = 3) -> list[str]:
    """Customers unlike the Telco training data, with outcomes the Telco model cannot know.

    Everyone is a new month-to-month fibre customer paying 90-118 a month (training data: tenure
    spread over 0-72 months, a third on long contracts); whether they left depends on how they
    pay, which barely mattered in the training data.
    """
    rng = np.random.default_rng(seed)
    customers = []
    churned = []
    for i in range(n):
        tenure = int(rng.integers(0, 4))
        monthly = round(float(rng.uniform(90, 118)), 2)
        payment = PAYMENTS[int(rng.integers(0, 4))]
        customers.append(Customer(
            customer_id=f"D-{i:05d}", gender="female" if i % 2 else "male", senior_citizen=False,
            partner=bool(rng.integers(0, 2)), dependents=False, tenure_months=tenure, phone_service=True,
            multiple_lines="No", internet_service="Fiber optic", online_security="No", online_backup="No",
            device_protection="No", tech_support="No", streaming_tv="Yes", streaming_movies="Yes",
            contract_type="Month-to-month" if rng.random() < 0.9 else "One year", paperless_billing=True,
            payment_method=payment, monthly_charges=monthly, total_charges=round(monthly * max(tenure, 1), 2),
            source="tests",
        ))
        leave = 0.85 if payment in ("Mailed check", "Credit card") else 0.1
        churned.append(bool(rng.random() < leave))
    Customer.objects.bulk_create(customers)
    pks = dict(Customer.objects.filter(customer_id__startswith="D-").values_list("customer_id", "pk"))
    now = timezone.now()
    Outcome.objects.bulk_create([
        Outcome(customer_id=pks[c.customer_id], churned=y, observed_at=now, source="tests")
        for c, y in zip(customers, churned, strict=True)
    ])
    return [c.customer_id for c in customers]


def evaluations_by_kind(evaluations):  # type: ignore[no-untyped-def]
    return {e.kind: e for e in evaluations}


# --- drift --------------------------------------------------------------------------------------


def test_drifted_data_triggers_a_retraining_that_stays_testing_under_the_default_policy(
    active_version, django_capture_on_commit_callbacks
):
    store_drifted()
    # when the triggers are evaluated (the retraining runs when its message is delivered)
    with django_capture_on_commit_callbacks(execute=True):
        evaluations = evaluations_by_kind(retraining_triggers_evaluate())
    # then drift fired, with its value, threshold and the fields that moved, and the rest had no data
    drift = evaluations[TriggerKind.DRIFT]
    assert drift.decision == TriggerDecision.TRIGGERED
    worst = drift.details["worst"]
    assert drift.threshold == drift.details["thresholds"][worst]
    assert drift.value == drift.details["psi"][worst] > drift.threshold
    assert drift.p_value < 0.01
    assert drift.sample_size == 600
    assert {"tenure_months", "contract_type"} <= set(drift.details["drifted"])
    assert drift.model_version == active_version
    assert evaluations[TriggerKind.ACCURACY].decision == TriggerDecision.INSUFFICIENT_DATA
    assert evaluations[TriggerKind.CONFIDENCE].decision == TriggerDecision.INSUFFICIENT_DATA
    # and the run trained on the stored customers, compared both models on the same rows,
    run = drift.retraining_run
    run.refresh_from_db()
    assert (run.trigger, run.status, run.in_progress) == (TriggerKind.DRIFT, RetrainingStatus.SUCCEEDED, False)
    assert run.training_rows == 600
    assert run.candidate_auc > run.active_auc + 0.1
    assert run.details["candidate"]["n"] == run.details["active"]["n"] == 120
    # registered the candidate as a testing version and left the active model alone
    assert run.decision == RetrainingDecision.KEPT_TESTING
    assert run.candidate_version.status == ModelStatus.TESTING
    assert ModelVersion.objects.active().get() == active_version
    assert AuditLogEntry.objects.filter(action="model.retrain.start").count() == 1
    assert AuditLogEntry.objects.filter(action="model.retrain.finish").count() == 1


def test_the_if_better_policy_promotes_a_candidate_that_beats_the_active_model_on_the_same_rows(
    active_version, settings, django_capture_on_commit_callbacks
):
    settings.RETRAIN_PROMOTION_POLICY = "if_better"
    store_drifted()
    with django_capture_on_commit_callbacks(execute=True):
        evaluations = evaluations_by_kind(retraining_triggers_evaluate())
    run = RetrainingRun.objects.get(pk=evaluations[TriggerKind.DRIFT].retraining_run_id)
    assert run.decision == RetrainingDecision.PROMOTED
    assert "same rows" in run.decision_reason
    active = ModelVersion.objects.active().get()
    assert active == run.candidate_version
    assert active.previous_active == active_version
    promoted = AuditLogEntry.objects.get(action="model.promote", object_id=active.version)
    # The registry's gate compares on the same rows too now, so the policy no longer forces.
    assert promoted.details["forced"] is False
    assert promoted.details["comparison"]["decision"] == "pass"
    assert "policy if_better" in promoted.details["reason"]


def test_the_if_better_policy_keeps_a_candidate_that_does_not_beat_the_active_model_by_the_margin(
    active_version, settings, django_capture_on_commit_callbacks
):
    settings.RETRAIN_PROMOTION_POLICY = "if_better"
    settings.RETRAIN_PROMOTION_MARGIN = 0.5  # no model can be better by half the AUC range
    store_drifted()
    with django_capture_on_commit_callbacks(execute=True):
        run = retraining_run_start(trigger=TriggerKind.MANUAL)
    run.refresh_from_db()
    assert run.decision == RetrainingDecision.NOT_BETTER
    assert run.candidate_version.status == ModelStatus.TESTING
    assert ModelVersion.objects.active().get() == active_version


def test_data_like_the_training_data_triggers_nothing(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    from predictions.batch_jobs.create import batch_job_create

    store_customers(400)
    with django_capture_on_commit_callbacks(execute=True):
        batch_job_create(scope="all")  # the active model's recent predictions
    evaluations = evaluations_by_kind(retraining_triggers_evaluate())
    drift = evaluations[TriggerKind.DRIFT]
    assert drift.decision == TriggerDecision.OK
    assert drift.value < 0.1
    # The threshold is the sample-size-aware one, stored with its p-value and every field's.
    assert drift.value <= drift.threshold
    assert drift.p_value > 0.01
    assert set(drift.details["thresholds"]) == set(drift.details["psi"])
    confidence = evaluations[TriggerKind.CONFIDENCE]
    assert (confidence.decision, confidence.threshold, confidence.sample_size) == (TriggerDecision.OK, 0.7, 400)
    assert 0.7 < confidence.value < 1.0
    assert evaluations[TriggerKind.ACCURACY].decision == TriggerDecision.INSUFFICIENT_DATA
    assert not RetrainingRun.objects.exists()


# --- accuracy and confidence ---------------------------------------------------------------------


def test_outcomes_that_contradict_the_predictions_fire_the_accuracy_trigger(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    from predictions.batch_jobs.create import batch_job_create

    store_customers(300)
    with django_capture_on_commit_callbacks(execute=True):
        batch_job_create(scope="all")
    # what really happened is the opposite of every prediction, observed after it was made
    later = timezone.now() + timezone.timedelta(minutes=1)
    predicted = dict(Prediction.objects.values_list("customer_id", "churn_probability"))
    pks = dict(Customer.objects.values_list("customer_id", "pk"))
    Outcome.objects.bulk_create([Outcome(customer_id=pks[c], churned=p < 0.5, observed_at=later, source="tests")
                                 for c, p in predicted.items()])
    with django_capture_on_commit_callbacks(execute=False):
        evaluations = evaluations_by_kind(retraining_triggers_evaluate(now=later))
    accuracy = evaluations[TriggerKind.ACCURACY]
    assert (accuracy.decision, accuracy.threshold, accuracy.sample_size) == (TriggerDecision.TRIGGERED, 0.8, 300)
    assert accuracy.value == 0.0
    assert accuracy.retraining_run.trigger == TriggerKind.ACCURACY
    assert accuracy.retraining_run.status == RetrainingStatus.QUEUED


def test_an_outcome_before_any_prediction_is_not_counted(active_version, store_customers):
    ids = store_customers(60)
    pks = dict(Customer.objects.values_list("customer_id", "pk"))
    Outcome.objects.bulk_create([Outcome(customer_id=pks[c], churned=True, observed_at=timezone.now(),
                                         source="tests") for c in ids])
    (accuracy,) = [e for e in retraining_triggers_evaluate() if e.kind == TriggerKind.ACCURACY]
    assert (accuracy.decision, accuracy.sample_size) == (TriggerDecision.INSUFFICIENT_DATA, 0)


def test_unsure_predictions_fire_the_confidence_trigger(active_version, store_customers,
                                                        django_capture_on_commit_callbacks):
    store_customers(200)
    now = timezone.now()
    Prediction.objects.bulk_create([
        Prediction(customer_id=f"U-{i}", churn_probability=0.45 + (i % 10) / 100, risk_level="medium",
                   model_version=active_version, source=PredictionSource.API, created_at=now)
        for i in range(200)
    ])
    with django_capture_on_commit_callbacks(execute=False):
        confidence = evaluations_by_kind(retraining_triggers_evaluate())[TriggerKind.CONFIDENCE]
    assert (confidence.decision, confidence.sample_size) == (TriggerDecision.TRIGGERED, 200)
    assert confidence.value == pytest.approx(0.53, abs=0.01)


# --- when not to start one -------------------------------------------------------------------------


def test_evidence_does_not_start_a_second_retraining_while_one_is_queued_or_recent(
    active_version, django_capture_on_commit_callbacks
):
    store_drifted()
    with django_capture_on_commit_callbacks(execute=False):
        first = evaluations_by_kind(retraining_triggers_evaluate())[TriggerKind.DRIFT]
        second = evaluations_by_kind(retraining_triggers_evaluate())[TriggerKind.DRIFT]
    assert first.decision == TriggerDecision.TRIGGERED
    assert (second.decision, second.retraining_run) == (TriggerDecision.COOLDOWN, None)
    assert "already queued or running" in second.details["blocked"]
    # a finished run within the cool-down also holds evidence back, but not the monthly schedule
    RetrainingRun.objects.update(in_progress=False, status=RetrainingStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=False):
        third = evaluations_by_kind(retraining_triggers_evaluate())[TriggerKind.DRIFT]
        monthly = retraining_scheduled()
    assert third.decision == TriggerDecision.COOLDOWN
    assert "within the last 24 h" in third.details["blocked"]
    assert (monthly.kind, monthly.decision) == (TriggerKind.SCHEDULE, TriggerDecision.TRIGGERED)


def test_only_one_retraining_can_be_in_progress(active_version):
    assert retraining_run_start(trigger=TriggerKind.MANUAL) is not None
    assert retraining_run_start(trigger=TriggerKind.SCHEDULE) is None
    assert RetrainingRun.objects.count() == 1


def test_without_an_active_model_the_evaluations_say_so():
    evaluations = retraining_triggers_evaluate()
    assert {e.decision for e in evaluations} == {TriggerDecision.NO_MODEL}
    assert not RetrainingRun.objects.exists()


def test_a_run_without_outcomes_fails_with_the_reason_and_frees_the_slot(
    active_version, store_customers, django_capture_on_commit_callbacks
):
    store_customers(30)  # no outcomes recorded
    with django_capture_on_commit_callbacks(execute=True):
        run = retraining_run_start(trigger=TriggerKind.MANUAL)
    run.refresh_from_db()
    assert (run.status, run.in_progress) == (RetrainingStatus.FAILED, False)
    assert "recorded outcome" in run.error
    assert ModelVersion.objects.count() == 1
    assert retraining_run_start(trigger=TriggerKind.MANUAL) is not None


def test_a_redelivered_retraining_message_registers_nothing_more(active_version,
                                                                  django_capture_on_commit_callbacks):
    from modelregistry.tasks import retrain_model

    store_drifted(300)
    with django_capture_on_commit_callbacks(execute=True):
        run = retraining_run_start(trigger=TriggerKind.MANUAL)
    versions = ModelVersion.objects.count()
    assert retrain_model.apply(kwargs={"run_id": run.pk}).get() is None
    assert ModelVersion.objects.count() == versions == 2


def test_the_monthly_task_records_its_trigger_and_queues_a_run(active_version, django_capture_on_commit_callbacks):
    from modelregistry.tasks import retrain_scheduled

    with django_capture_on_commit_callbacks(execute=False):
        assert retrain_scheduled.apply().get() == TriggerDecision.TRIGGERED
    evaluation = TriggerEvaluation.objects.get()
    assert (evaluation.kind, evaluation.retraining_run.trigger) == (TriggerKind.SCHEDULE, TriggerKind.SCHEDULE)


# --- admin ----------------------------------------------------------------------------------------


def test_retraining_starts_from_the_admin_and_the_evaluations_are_visible(
    client, admin_user, active_version, django_capture_on_commit_callbacks
):
    store_drifted(300)
    client.force_login(admin_user)
    page = client.get("/admin/modelregistry/retrainingrun/")
    assert page.status_code == 200
    assert b"Retrain now" in page.content
    assert b"Evaluate triggers now" in page.content
    assert client.get("/admin/modelregistry/retrainingrun/start/").status_code == 403  # POST only
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/modelregistry/retrainingrun/start/")
    run = RetrainingRun.objects.get()
    assert response["Location"].endswith(f"/admin/modelregistry/retrainingrun/{run.pk}/change/")
    assert (run.trigger, run.status, run.requested_by) == (TriggerKind.MANUAL, RetrainingStatus.SUCCEEDED, "user:root")
    assert run.candidate_version.trained_by == "user:root"
    detail = client.get(f"/admin/modelregistry/retrainingrun/{run.pk}/change/")
    assert detail.status_code == 200
    assert run.candidate_version.version.encode() in detail.content
    with django_capture_on_commit_callbacks(execute=False):
        client.post("/admin/modelregistry/retrainingrun/evaluate/")
    listing = client.get("/admin/modelregistry/triggerevaluation/")
    assert listing.status_code == 200
    drift = TriggerEvaluation.objects.get(kind=TriggerKind.DRIFT)
    assert drift.decision == TriggerDecision.COOLDOWN  # drifted, but a retraining just ran
    assert b"Beyond threshold" in listing.content
