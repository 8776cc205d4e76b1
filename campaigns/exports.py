"""CSV downloads of follow-up work: campaign targets, a staff member's follow-ups, results per assignee.

One writer for the staff pages and the API. Rows are streamed in primary-key chunks so a campaign of
any size downloads in constant memory, and every cell goes through the one formula guard
(churn_infra.csv_cells), so a customer id or a note such as ``=HYPERLINK(...)`` opens as text.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from rest_framework.renderers import BaseRenderer

from campaigns.models import CampaignTarget, TargetNote
from campaigns.selectors.effectiveness import Effectiveness
from churn_infra.csv_cells import SafeCsvWriter

CHUNK = 2000  # rows per query while streaming; a few MB of Python objects at most

TARGET_COLUMNS = (
    "target_id", "campaign_id", "campaign", "customer_id", "group", "assignee", "follow_up_status", "due_date",
    "contacted_at", "outcome", "outcome_source", "outcome_at", "qualifying_probability", "qualifying_risk_level",
    "monthly_charges", "last_note",
)  # fmt: skip


class CsvRenderer(BaseRenderer):
    """Lets DRF accept ``?format=csv``; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        # Only errors reach here (a 4xx raised before the view streamed): say them as one CSV cell.
        return f"error\n{data}\n".encode()


def _lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = SafeCsvWriter(buffer)
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_response(rows: Iterable[Iterable[Any]], filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def targets_csv_rows(qs: QuerySet[CampaignTarget]) -> Iterator[list[Any]]:
    """A header, then one row per target, in primary-key order, fetched CHUNK at a time."""
    yield list(TARGET_COLUMNS)
    base = qs.select_related("campaign", "customer", "assignee").order_by("pk")
    last = 0
    while True:
        chunk = list(base.filter(pk__gt=last)[:CHUNK])
        if not chunk:
            return
        notes = _last_notes([t.pk for t in chunk])
        for t in chunk:
            yield [
                t.pk, t.campaign_id, t.campaign.name, t.customer.customer_id if t.customer else "", t.group,
                t.assignee.username if t.assignee else "", t.follow_up_status, _iso(t.due_date),
                _iso(t.contacted_at), t.outcome, t.outcome_source, _iso(t.outcome_at),
                round(t.qualifying_probability, 4), t.qualifying_risk_level, t.monthly_charges, notes.get(t.pk, ""),
            ]  # fmt: skip
        last = chunk[-1].pk


def _last_notes(target_ids: list[int]) -> dict[int, str]:
    latest: dict[int, str] = {}
    for target_id, text in (
        TargetNote.objects.filter(target_id__in=target_ids).order_by("target_id", "-created_at", "-pk")
        .values_list("target_id", "text")
    ):  # fmt: skip
        latest.setdefault(target_id, text)
    return latest


def assignee_csv_rows(result: Effectiveness) -> Iterator[list[Any]]:
    """Effectiveness per assignee, each against the whole control group."""
    yield [
        "assignee", "treated", "outcomes_known", "retained", "retention_rate", "control_retention_rate", "uplift",
        "uplift_low", "uplift_high", "customers_saved", "revenue_kept", "offer_cost", "net_value", "small_sample",
    ]  # fmt: skip
    control_rate = result.control.retention_rate
    for row in result.per_assignee:
        e = row.effect
        yield [
            row.assignee if row.assignee_id is not None else "(unassigned)", row.counts.targets, row.counts.known,
            row.counts.retained, _round(row.counts.retention_rate), _round(control_rate), _round(e.uplift),
            _round(e.uplift_low), _round(e.uplift_high), _round(e.customers_saved, 2), _round(e.revenue_kept, 2),
            round(e.offer_cost, 2), _round(e.net_value, 2), e.small_sample,
        ]  # fmt: skip


def _round(value: float | None, digits: int = 4) -> Any:
    return "" if value is None else round(value, digits)
