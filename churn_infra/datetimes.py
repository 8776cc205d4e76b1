"""Date-times that PostgreSQL can store and compare: UTC offsets within ±15:59.

Python (and ISO 8601) allow offsets up to ±23:59, PostgreSQL's timestamptz input refuses
anything beyond ±15:59 with an error that would otherwise surface as a 500. Values are checked
where they arrive (query filters, stream events) and answered with a message naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


class OffsetOutOfRange(ValueError):
    pass


def storable(value: datetime) -> datetime:
    """``value`` in UTC, or OffsetOutOfRange when its offset is beyond what PostgreSQL accepts."""
    offset = value.utcoffset()
    if offset is None:
        return value
    if abs(offset) > MAX_UTC_OFFSET:
        sign = "-" if offset < timedelta(0) else "+"
        minutes = int(abs(offset).total_seconds()) // 60
        raise OffsetOutOfRange(f"The UTC offset {sign}{minutes // 60:02d}:{minutes % 60:02d} is out of range (±15:59).")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise OffsetOutOfRange("The date is out of range.") from None


class StorableIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):  # type: ignore[no-untyped-def]
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return storable(parsed)
        except OffsetOutOfRange as exc:
            raise forms.ValidationError(str(exc), code="invalid") from None


class IsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """django-filter's ISO 8601 filter, refusing (400) offsets PostgreSQL would fail on (500)."""

    field_class = StorableIsoDateTimeField
