"""Campaigns' subscriptions to other apps' domain events (connected in CampaignsConfig.ready())."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kombu.exceptions import OperationalError as BrokerUnavailable

from campaigns.models import CampaignTarget
from campaigns.services.outcomes import OUTCOME_BATCH_SIZE, campaign_targets_apply_outcomes
from campaigns.tasks import apply_recorded_outcomes
from customers.signals import RecordedOutcome

logger = logging.getLogger(__name__)


def settle_follow_ups(sender: Any, *, outcomes: Sequence[RecordedOutcome], source: str, **_: Any) -> None:
    """Recorded outcomes settle follow-ups in a task, by customer id, so a slow campaign never slows the writer.

    The task reads the stored outcomes again (the latest one observed at or after enrolment decides),
    so a repeated or late message changes nothing. With the broker unreachable, or none configured
    (tasks always eager), the work is done here instead: slower for this writer, but no outcome is
    left unapplied.
    """
    ids = list(dict.fromkeys(o.customer_id for o in outcomes))
    if apply_recorded_outcomes.app.conf.task_always_eager:
        # No broker (make run, the benchmarks): the tasks would run here one batch at a time; one
        # call looks all the customers' targets up at once (a file's are mostly nobody's target).
        campaign_targets_apply_outcomes(customer_ids=ids)
        return
    for start in range(0, len(ids), OUTCOME_BATCH_SIZE):
        batch = ids[start : start + OUTCOME_BATCH_SIZE]
        try:
            apply_recorded_outcomes.delay(customer_ids=batch)
        except (BrokerUnavailable, ConnectionError):
            logger.warning("Broker unavailable: settling %d customers' follow-ups (%s) in process", len(batch), source)
            campaign_targets_apply_outcomes(customer_ids=batch)


def unlink_expiring_predictions(sender: Any, *, predictions: Any, **_: Any) -> dict[str, int]:
    """Retention is about to remove these predictions: targets drop their link (predictions_expiring).

    A target keeps the qualifying probability and level it copied at enrolment, so the campaign's
    figures do not change; the link has no database constraint (the predictions table is
    partitioned), so nothing else would clear it when a partition is dropped.
    """
    cleared = CampaignTarget.objects.filter(prediction__in=predictions).update(prediction=None)
    return {"campaign_targets": cleared}
