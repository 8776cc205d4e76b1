"""Background work for campaigns. Tasks take ids, call one service and are safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, ConnectionError),
    retry_backoff=True,
    max_retries=5,
)
def close_ended_campaigns() -> list[int]:
    """Close the campaigns whose end date has passed (scheduled daily by beat). Closing twice is a no-op."""
    from campaigns.services.lifecycle import campaigns_close_ended

    return campaigns_close_ended()


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, ConnectionError),
    retry_backoff=True,
    max_retries=5,
)
def apply_recorded_outcomes(*, customer_ids: list[str]) -> int:
    """Fill campaign targets' outcomes from the customers' recorded outcomes; repeating changes nothing."""
    from campaigns.services.outcomes import campaign_targets_apply_outcomes

    return campaign_targets_apply_outcomes(customer_ids=customer_ids)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, ConnectionError),
    retry_backoff=True,
    max_retries=3,
)
def refresh_population_stats() -> str:
    """Recompute the dashboard's population charts (beat runs it every 5 minutes); it only overwrites a snapshot."""
    from campaigns.selectors.dashboard import population_stats_refresh

    return population_stats_refresh().computed_at.isoformat()


@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(OperationalError,), retry_backoff=True,
             max_retries=3)  # fmt: skip
def send_daily_digests() -> int:
    """E-mail each staff member their digest (beat, daily); one already sent in the last 20 hours is not resent."""
    from campaigns.digest import digests_send

    return digests_send()
