"""The fields of the customer record: names, order, allowed values, number ranges, MISSING."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

SCHEMA_VERSION: Final = "1"

YES_NO: Final = ("Yes", "No")
PHONE_LINES: Final = ("Yes", "No", "No phone service")
INTERNET_ADDONS: Final = ("Yes", "No", "No internet service")

CUSTOMER_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

BOOL_FIELDS: Final = ("senior_citizen", "partner", "dependents", "phone_service", "paperless_billing")
INTERNET_ADDON_FIELDS: Final = (
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
)
ENUM_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "gender": ("female", "male"),
    "multiple_lines": PHONE_LINES,
    "internet_service": ("DSL", "Fiber optic", "No"),
    **dict.fromkeys(INTERNET_ADDON_FIELDS, INTERNET_ADDONS),
    "contract_type": ("Month-to-month", "One year", "Two year"),
    "payment_method": ("Electronic check", "Mailed check", "Bank transfer", "Credit card"),
}
ENUM_ALIASES: Final[dict[str, dict[str, str]]] = {
    "payment_method": {
        "bank transfer (automatic)": "Bank transfer",
        "credit card (automatic)": "Credit card",
    },
}


@dataclass(frozen=True)
class NumberRule:
    """Range and type of one numeric field."""

    minimum: float
    maximum: float | None
    integer: bool
    nullable: bool


NUMBER_FIELDS: Final[dict[str, NumberRule]] = {
    "tenure_months": NumberRule(0, 600, integer=True, nullable=False),
    "monthly_charges": NumberRule(0, 10_000, integer=False, nullable=False),
    "total_charges": NumberRule(0, None, integer=False, nullable=True),
    "age": NumberRule(18, 120, integer=True, nullable=True),
    "income": NumberRule(0, None, integer=False, nullable=True),
}

# Fields that may be absent from a record: they default to false / null.
OPTIONAL_FIELDS: Final = frozenset({"gender", "senior_citizen", "age", "income", "total_charges"})

FIELD_ORDER: Final = (
    "gender",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure_months",
    "phone_service",
    "multiple_lines",
    "internet_service",
    *INTERNET_ADDON_FIELDS,
    "contract_type",
    "paperless_billing",
    "payment_method",
    "monthly_charges",
    "total_charges",
    "age",
    "income",
)
"""Every data field of the record, customer_id excepted, in the contract's order."""

RECORD_FIELDS: Final = ("customer_id", *FIELD_ORDER)
KNOWN_FIELDS: Final = frozenset(RECORD_FIELDS)


# total_charges further than this from tenure x monthly_charges is worth a warning. On the
# bundled Telco sample the ratio total / (tenure x monthly) lies between 0.69 and 1.57.
TOTAL_CHARGES_RELATIVE_TOLERANCE: Final = 0.6


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
"""Marks a field absent from the input, as distinct from an explicit null."""
