"""Retention removes predictions that campaign targets link to: the targets drop the link, keep their figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLogEntry
from campaigns.models import CampaignTarget
from predictions.partitions import add_months, month_start, partition_name_for, prediction_partitions_ensure
from predictions.retention import predictions_purge_expired
from tests.campaigns.factories import CampaignFactory, PredictionFactory, TargetFactory

pytestmark = pytest.mark.django_db


def test_targets_of_expired_predictions_lose_the_link_and_keep_what_it_said(settings):
    settings.PREDICTION_RETENTION_DAYS = 30
    campaign = CampaignFactory()
    expired = PredictionFactory(created_at=timezone.now() - timedelta(days=31), churn_probability=0.83)
    kept = PredictionFactory(created_at=timezone.now() - timedelta(days=1))
    old_target = TargetFactory(campaign=campaign, prediction=expired, qualifying_probability=0.83,
                               qualifying_risk_level="critical")
    new_target = TargetFactory(campaign=campaign, prediction=kept)

    assert predictions_purge_expired() == 1

    old_target.refresh_from_db()
    assert old_target.prediction_id is None
    assert (old_target.qualifying_probability, old_target.qualifying_risk_level) == (0.83, "critical")
    assert CampaignTarget.objects.get(pk=new_target.pk).prediction_id == kept.pk
    details = AuditLogEntry.objects.get(action="predictions.retention_purge").details
    assert details["references_cleared"] == {"campaign_targets": 1}


@pytest.mark.postgres
def test_a_dropped_partition_clears_the_targets_that_link_to_its_predictions(settings, client, staff_user):
    if connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    settings.PREDICTION_RETENTION_DAYS = 30
    four_back = add_months(month_start(timezone.now()), -4)
    prediction_partitions_ensure(months_ahead=0, now=four_back)
    in_old_month = PredictionFactory(created_at=four_back + timedelta(days=2))
    target = TargetFactory(prediction=in_old_month)

    assert predictions_purge_expired() == 1

    # the months up to this one were created with it (the months stay contiguous); those wholly
    # expired are dropped with it
    cutoff = timezone.now() - timedelta(days=30)
    expired = [four_back]
    while add_months(expired[-1], 2) <= cutoff:
        expired.append(add_months(expired[-1], 1))
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partition_name_for(four_back)])
        assert cursor.fetchone()[0] is None
    target.refresh_from_db()
    assert target.prediction_id is None
    details = AuditLogEntry.objects.get(action="predictions.retention_purge").details
    assert details["partitions_dropped"] == [partition_name_for(start) for start in expired]
    assert details["references_cleared"] == {"campaign_targets": 1}
    # the target's pages still answer
    client.force_login(staff_user)
    assert client.get(f"/staff/campaigns/{target.campaign_id}/").status_code == 200
