"""Enrolment rules, deterministic control groups, one active campaign per customer, follow-ups, outcomes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import AuditLogEntry
from accounts.services import SYSTEM, actor_for_user
from campaigns import stats
from campaigns.models import (
    CampaignStatus,
    CampaignTarget,
    FollowUpStatus,
    OutcomeSource,
    RetentionCampaign,
    TargetGroup,
    TargetNote,
    TargetOutcome,
)
from campaigns.services.common import CampaignError, NotVisible
from campaigns.services.follow_ups import campaign_target_update, campaign_targets_assign
from campaigns.services.lifecycle import campaign_close, campaign_create, campaign_enrol, campaigns_close_ended
from campaigns.services.spec import CampaignSpec
from campaigns.tasks import close_ended_campaigns
from customers.models import Customer
from customers.services import OutcomeInput, outcome_record, outcomes_record
from tests.campaigns.factories import CampaignFactory, PredictionFactory, TargetFactory, scored_customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _groups(campaign):
    return dict(CampaignTarget.objects.filter(campaign=campaign).values_list("customer__customer_id", "group"))


def _bulk_scored(n, probability=0.9, prefix="B"):
    """n customers with one prediction each, stored in two statements."""
    from predictions.models import Prediction
    from tests.campaigns.factories import ModelVersionFactory

    model = ModelVersionFactory()
    Customer.objects.bulk_create(
        [CustomerFactory.build(customer_id=f"{prefix}-{i:05d}", monthly_charges=40.0 + i % 50) for i in range(n)]
    )
    now = timezone.now()
    Prediction.objects.bulk_create(
        [
            Prediction(
                customer_id=f"{prefix}-{i:05d}",
                churn_probability=probability,
                risk_level="critical",
                model_version=model,
                created_at=now,
            )
            for i in range(n)
        ]
    )


def test_create_validates_the_rule_and_the_action(staff_actor):
    with pytest.raises(CampaignError) as exc:
        campaign_create(actor=staff_actor, spec=CampaignSpec(name="", action="discount", control_share=1.5))
    assert set(exc.value.errors) >= {"name", "target_risk_levels", "discount_percent", "control_share"}
    with pytest.raises(CampaignError) as exc:
        campaign_create(
            actor=staff_actor,
            spec=CampaignSpec(
                name="x",
                action="custom",
                target_risk_levels=["high"],
                target_filters={"contract_type": ["weekly"], "colour": "red"},
            ),
        )
    assert set(exc.value.errors) == {"target_filters", "action_details"}
    campaign = campaign_create(
        actor=staff_actor,
        spec=CampaignSpec(
            name="Spring save",
            action="discount",
            discount_percent="15",
            target_risk_levels=["high"],
            target_filters={"contract_type": ["month-to-month"]},
        ),
    )
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.department_id == staff_actor.department_id
    assert campaign.target_filters == {"contract_type": ["Month-to-month"]}
    assert AuditLogEntry.objects.filter(action="campaign.create", object_id=str(campaign.pk)).exists()


def test_enrolment_uses_each_customers_latest_prediction_and_the_filters(staff_actor):
    # given: customers whose latest score decides, not an older one
    scored_customer("NOW-HIGH", 0.7)
    scored_customer("NOW-CRIT", 0.95)
    scored_customer("WAS-HIGH", 0.2)
    PredictionFactory(customer_id="WAS-HIGH", churn_probability=0.9, created_at=timezone.now() - timedelta(days=3))
    scored_customer("NOW-HIGH-OLD-LOW", 0.65)
    PredictionFactory(
        customer_id="NOW-HIGH-OLD-LOW", churn_probability=0.1, created_at=timezone.now() - timedelta(days=3)
    )
    scored_customer("TWO-YEAR", 0.9, contract_type="Two year")
    scored_customer("MEDIUM", 0.5)
    PredictionFactory(customer_id="NOT-STORED", churn_probability=0.99)  # scored inline, no customer row
    campaign = CampaignFactory(
        target_risk_levels=["high", "critical"], target_filters={"contract_type": ["Month-to-month"]}, control_share=0.0
    )
    # when
    result = campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    # then
    targets = {
        t.customer.customer_id: t
        for t in CampaignTarget.objects.filter(campaign=campaign).select_related("customer", "prediction")
    }
    assert set(targets) == {"NOW-HIGH", "NOW-CRIT", "NOW-HIGH-OLD-LOW"}
    assert (result.matched, result.enrolled, result.treatment, result.control) == (3, 3, 3, 0)
    qualifying = targets["NOW-HIGH-OLD-LOW"]
    assert qualifying.prediction.churn_probability == pytest.approx(0.65)
    assert (qualifying.qualifying_probability, qualifying.qualifying_risk_level) == (pytest.approx(0.65), "high")
    assert qualifying.due_date == timezone.localdate() + timedelta(days=campaign.follow_up_days)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    entry = AuditLogEntry.objects.get(action="campaign.enrol")
    assert entry.details["enrolled"] == 3


def test_minimum_probability_rule(staff_actor):
    scored_customer("P-50", 0.5)
    scored_customer("P-72", 0.72)
    campaign = CampaignFactory(target_risk_levels=[], target_min_probability=0.55, control_share=0.0)
    campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    assert set(_groups(campaign)) == {"P-72"}


def test_control_assignment_is_deterministic_and_stable_on_re_enrolment(staff_actor):
    _bulk_scored(400)
    campaign = CampaignFactory(control_share=0.25)
    first = campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    groups = _groups(campaign)
    # every customer's group is the hash rule's answer
    assert all((g == TargetGroup.CONTROL) == stats.in_control(campaign.pk, cid, 0.25) for cid, g in groups.items())
    assert first.control == sum(g == TargetGroup.CONTROL for g in groups.values())
    assert 60 <= first.control <= 140  # ~25% of 400
    # enrolling again adds nobody and moves nobody
    again = campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    assert (again.enrolled, again.already_enrolled) == (0, 400)
    assert _groups(campaign) == groups
    # a re-run from scratch (targets lost) rebuilds exactly the same split
    CampaignTarget.objects.filter(campaign=campaign).delete()
    campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    assert _groups(campaign) == groups
    # a newly matching customer joins; the others stay where they were
    scored_customer("LATE-1", 0.99)
    late = campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    assert late.enrolled == 1
    assert {k: v for k, v in _groups(campaign).items() if k != "LATE-1"} == groups


def test_control_targets_are_held_out(staff_actor, staff_user, colleague):
    _bulk_scored(60)
    campaign = CampaignFactory(control_share=0.3)
    campaign_enrol(campaign_id=campaign.pk, actor=staff_actor, assignee_ids=[staff_user.pk, colleague.pk])
    control = CampaignTarget.objects.filter(campaign=campaign, group=TargetGroup.CONTROL)
    treatment = CampaignTarget.objects.filter(campaign=campaign, group=TargetGroup.TREATMENT)
    assert control.exists()
    assert not control.exclude(follow_up_status=FollowUpStatus.DO_NOT_CONTACT).exists()
    assert not control.filter(assignee__isnull=False).exists()
    # treatment work is dealt evenly
    mine, theirs = treatment.filter(assignee=staff_user).count(), treatment.filter(assignee=colleague).count()
    assert abs(mine - theirs) <= 1
    assert mine + theirs == treatment.count()
    target = control.first()
    with pytest.raises(CampaignError) as exc:
        campaign_target_update(target_id=target.pk, actor=staff_actor, follow_up_status=FollowUpStatus.CONTACTED)
    assert "follow_up_status" in exc.value.errors
    with pytest.raises(CampaignError):
        campaign_target_update(target_id=target.pk, actor=staff_actor, assignee_id=staff_user.pk)
    # the outcome of a held-out customer is still recorded
    updated, _ = campaign_target_update(target_id=target.pk, actor=staff_actor, outcome=TargetOutcome.CHURNED)
    assert updated.outcome == TargetOutcome.CHURNED


def test_enrolment_limit_takes_the_riskiest(staff_actor):
    for i, p in enumerate([0.61, 0.95, 0.7, 0.85]):
        scored_customer(f"L-{i}", p)
    campaign = CampaignFactory(control_share=0.0)
    result = campaign_enrol(campaign_id=campaign.pk, actor=staff_actor, limit=2)
    assert (result.enrolled, result.over_limit) == (2, 2)
    assert set(_groups(campaign)) == {"L-1", "L-3"}


def test_assignees_must_be_staff_of_the_campaigns_department(staff_actor, user, outsider):
    scored_customer("A-1", 0.9)
    campaign = CampaignFactory()
    for person in (user, outsider):  # not staff; staff elsewhere
        with pytest.raises(CampaignError) as exc:
            campaign_enrol(campaign_id=campaign.pk, actor=staff_actor, assignee_ids=[person.pk])
        assert "assignees" in exc.value.errors
    assert not CampaignTarget.objects.exists()


def test_no_customer_in_two_active_campaigns(staff_actor):
    for i in range(5):
        scored_customer(f"S-{i}", 0.9)
    first, second = CampaignFactory(control_share=0.2), CampaignFactory(control_share=0.2)
    assert campaign_enrol(campaign_id=first.pk, actor=staff_actor).enrolled == 5
    blocked = campaign_enrol(campaign_id=second.pk, actor=staff_actor)
    assert (blocked.matched, blocked.enrolled, blocked.in_other_campaign) == (5, 0, 5)
    # the database refuses it too, whatever path writes the row
    with pytest.raises(IntegrityError), transaction.atomic():
        TargetFactory(campaign=second, customer=Customer.objects.get(customer_id="S-0"))
    # once the first campaign closes, its customers are free again
    campaign_close(campaign_id=first.pk, actor=staff_actor)
    assert not CampaignTarget.objects.filter(campaign=first, in_active_campaign=True).exists()
    assert campaign_enrol(campaign_id=second.pk, actor=staff_actor).enrolled == 5
    with pytest.raises(CampaignError):
        campaign_enrol(campaign_id=first.pk, actor=staff_actor)


def test_a_refused_enrolment_names_the_department_holding_the_customers(staff_actor, outsider, other_department):
    """Issue 11 finding 9: a customer held by another department's campaign is named by that department."""
    for i in range(3):
        scored_customer(f"H-{i}", 0.9)
    theirs = CampaignFactory(department=other_department, control_share=0.0)
    assert campaign_enrol(campaign_id=theirs.pk, actor=actor_for_user(outsider)).enrolled == 3
    ours = CampaignFactory(control_share=0.0)
    blocked = campaign_enrol(campaign_id=ours.pk, actor=staff_actor)
    assert (blocked.enrolled, blocked.in_other_campaign) == (0, 3)
    assert blocked.in_other_campaign_by_department == {"finance": 3}
    entry = AuditLogEntry.objects.filter(action="campaign.enrol", object_id=str(ours.pk)).get()
    assert entry.details["in_other_campaign_by_department"] == {"finance": 3}


def test_another_department_cannot_touch_the_campaign(staff_user, outsider):
    scored_customer("D-1", 0.9)
    campaign = CampaignFactory()
    target = TargetFactory(campaign=campaign, customer=Customer.objects.get(customer_id="D-1"))
    stranger = actor_for_user(outsider)
    with pytest.raises(NotVisible):
        campaign_enrol(campaign_id=campaign.pk, actor=stranger)
    with pytest.raises(NotVisible):
        campaign_target_update(target_id=target.pk, actor=stranger, note="hello")
    with pytest.raises(NotVisible):
        campaign_close(campaign_id=campaign.pk, actor=stranger)


def test_follow_up_update_in_one_step_is_audited(staff_actor, staff_user, colleague):
    target = TargetFactory(assignee=staff_user)
    updated, changes = campaign_target_update(
        target_id=target.pk,
        actor=staff_actor,
        follow_up_status=FollowUpStatus.OFFER_ACCEPTED,
        assignee_id=colleague.pk,
        outcome=TargetOutcome.RETAINED,
        note="Took the 15% offer.",
    )
    assert updated.follow_up_status == FollowUpStatus.OFFER_ACCEPTED
    assert updated.contacted_at is not None
    assert (updated.outcome, updated.outcome_source) == (TargetOutcome.RETAINED, OutcomeSource.STAFF)
    assert updated.assignee == colleague
    assert changes == {
        "follow_up_status": ["to_do", "offer_accepted"],
        "assignee": ["operator", "bob"],
        "outcome": ["unknown", "retained"],
    }
    note = TargetNote.objects.get(target=target)
    assert (note.author, note.author_label, note.text) == (staff_user, "user:operator", "Took the 15% offer.")
    entry = AuditLogEntry.objects.get(action="campaign_target.update", object_id=str(target.pk))
    assert entry.details["changes"] == changes
    assert entry.actor_user == staff_user
    # a note alone is audited as a note; nothing at all writes nothing
    campaign_target_update(target_id=target.pk, actor=staff_actor, note="Called back, all good.")
    assert AuditLogEntry.objects.filter(action="campaign_target.note").count() == 1
    campaign_target_update(target_id=target.pk, actor=staff_actor, follow_up_status=FollowUpStatus.OFFER_ACCEPTED)
    assert AuditLogEntry.objects.filter(object_type="campaigns.campaigntarget").count() == 2


def test_bulk_assignment(staff_actor, staff_user, colleague, outsider):
    targets = [TargetFactory() for _ in range(3)]
    control = TargetFactory(group=TargetGroup.CONTROL)
    changed = campaign_targets_assign(
        target_ids=[t.pk for t in targets] + [control.pk], assignee_id=colleague.pk, actor=staff_actor
    )
    assert changed == 3
    assert CampaignTarget.objects.filter(assignee=colleague).count() == 3
    assert AuditLogEntry.objects.filter(action="campaign_target.assign").count() == 3
    with pytest.raises(CampaignError):
        campaign_targets_assign(target_ids=[targets[0].pk], assignee_id=outsider.pk, actor=staff_actor)


def test_a_recorded_outcome_fills_the_targets_outcome(staff_actor, django_capture_on_commit_callbacks):
    scored_customer("O-1", 0.9)
    scored_customer("O-2", 0.9)
    scored_customer("O-3", 0.9)
    campaign = CampaignFactory(control_share=0.0)
    campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    with django_capture_on_commit_callbacks(execute=True):
        # an outcome observed before the enrolment says nothing about the campaign
        outcome_record(customer_id="O-3", churned=True, observed_at=timezone.now() - timedelta(days=2), source="crm")
        # after it: the target follows the recorded outcome
        outcome_record(customer_id="O-1", churned=True, observed_at=timezone.now(), source="crm", actor=staff_actor)
        outcomes_record(outcomes=[OutcomeInput("O-2", False, timezone.now(), "import")], channel="file")
    got = {t.customer.customer_id: t for t in CampaignTarget.objects.select_related("customer")}
    assert (got["O-1"].outcome, got["O-1"].outcome_source) == (TargetOutcome.CHURNED, OutcomeSource.RECORDED)
    assert got["O-2"].outcome == TargetOutcome.RETAINED
    assert got["O-3"].outcome == TargetOutcome.UNKNOWN
    entries = AuditLogEntry.objects.filter(action="campaign_target.outcome")
    assert sorted(e.details["changes"]["outcome"][1] for e in entries) == ["churned", "retained"]
    # recording the same observation again changes nothing more
    with django_capture_on_commit_callbacks(execute=True):
        outcome_record(customer_id="O-1", churned=True, observed_at=got["O-1"].outcome_at, source="crm")
    assert AuditLogEntry.objects.filter(action="campaign_target.outcome").count() == 2


def test_ended_campaigns_close_by_the_scheduled_task(staff_actor):
    ended = CampaignFactory(
        status=CampaignStatus.ACTIVE,
        start_date=timezone.localdate() - timedelta(days=30),
        end_date=timezone.localdate() - timedelta(days=1),
    )
    running = CampaignFactory(status=CampaignStatus.ACTIVE, end_date=timezone.localdate() + timedelta(days=5))
    target = TargetFactory(campaign=ended)
    assert close_ended_campaigns.delay().get() == [ended.pk]
    ended.refresh_from_db()
    running.refresh_from_db()
    target.refresh_from_db()
    assert (ended.status, running.status) == (CampaignStatus.CLOSED, CampaignStatus.ACTIVE)
    assert target.in_active_campaign is False
    assert campaigns_close_ended(actor=SYSTEM) == []
    assert RetentionCampaign.objects.filter(status=CampaignStatus.CLOSED).count() == 1


def test_rule_can_require_a_risk_increase_and_customer_filters(staff_actor):
    scored_customer("ROSE", 0.7)
    PredictionFactory(customer_id="ROSE", churn_probability=0.72, risk_increased=True)
    scored_customer("STEADY", 0.9)
    scored_customer("ROSE-SENIOR", 0.7, senior_citizen=True, tenure_months=40, total_charges=3400.0)
    PredictionFactory(customer_id="ROSE-SENIOR", churn_probability=0.75, risk_increased=True)
    campaign = campaign_create(
        actor=staff_actor,
        spec=CampaignSpec(
            name="Risers", action="personal_call", target_risk_levels=["high", "critical"],
            target_filters={"risk_increased": True, "senior_citizen": False, "max_tenure_months": 24},
        ),
    )  # fmt: skip
    assert campaign.rule_summary() == "risk high or critical, max tenure months 24, risk increased, not senior citizen"
    campaign_enrol(campaign_id=campaign.pk, actor=staff_actor)
    assert set(_groups(campaign)) == {"ROSE"}


def test_outcomes_for_a_large_import_are_applied_in_batches(
    staff_actor, monkeypatch, django_capture_on_commit_callbacks
):
    from campaigns import receivers
    from campaigns.services import outcomes

    monkeypatch.setattr(outcomes, "OUTCOME_BATCH_SIZE", 2)
    monkeypatch.setattr(receivers, "OUTCOME_BATCH_SIZE", 2)
    for i in range(5):
        scored_customer(f"BIG-{i}", 0.9)
    campaign_enrol(campaign_id=CampaignFactory(control_share=0.0).pk, actor=staff_actor)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        outcomes_record(outcomes=[OutcomeInput(f"BIG-{i}", i % 2 == 0, now, "file") for i in range(5)], channel="file")
    assert len(callbacks) == 1  # one event for the whole write
    got = dict(CampaignTarget.objects.values_list("customer__customer_id", "outcome"))
    assert got == {f"BIG-{i}": "churned" if i % 2 == 0 else "retained" for i in range(5)}
