"""Receiver of customers' `customer_erased`: campaign targets are anonymised, not deleted.

A target row is a campaign's evidence: its group, outcome and frozen bill feed the effectiveness
figures, so deleting it would change results already reported. The link to the customer, the
staff notes (free text about the person) and the follow-up's dates go; the counts stay right.
"""

from __future__ import annotations

from typing import Any

from campaigns.models import OPEN_FOLLOW_UP_STATUSES, CampaignTarget, FollowUpStatus, TargetNote


def anonymise_campaign_targets(*, customer_pk: int, **kwargs: Any) -> dict[str, int]:
    targets = CampaignTarget.objects.filter(customer_id=customer_pk)
    notes = TargetNote.objects.filter(target__in=targets).delete()[0]
    targets.filter(follow_up_status__in=OPEN_FOLLOW_UP_STATUSES).update(follow_up_status=FollowUpStatus.DO_NOT_CONTACT)
    anonymised = targets.update(customer=None, due_date=None, contacted_at=None)
    return {"campaign_targets_anonymised": anonymised, "target_notes": notes}
