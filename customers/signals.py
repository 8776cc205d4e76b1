"""Domain events of the customers app. Receivers connect in their AppConfig.ready()."""

from __future__ import annotations

from typing import NamedTuple

from django.dispatch import Signal


class RecordedOutcome(NamedTuple):
    customer_id: str
    churned: bool
    observed_at: object  # an aware datetime


# Sent once per committed write of outcomes (transaction.on_commit), never with model instances:
# outcomes_recorded.send(sender="customers", outcomes=[RecordedOutcome, ...], source="api" | "bulk" | "file" | "source" | "stream" | "admin")
outcomes_recorded = Signal()
