"""The contract's rules for ONE record, in plain Python: the request path's validator.

``schema.validate_columns`` applies the rules to whole columns with numpy, which is what a
batch or a file wants; for a single API record its fixed costs (about 0.4 ms of array set-up)
are most of a request's CPU budget. ``check_record`` applies the same rules to one record's
values in about 30 us. Both use schema's value parsers and messages, and a property test
(tests/churn_ml/test_record.py) holds them to identical results on generated records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from churn_ml.schema.fields import (
    BOOL_FIELDS,
    CUSTOMER_ID_PATTERN,
    ENUM_FIELDS,
    FIELD_ORDER,
    INTERNET_ADDON_FIELDS,
    KNOWN_FIELDS,
    MISSING,
    NUMBER_FIELDS,
    OPTIONAL_FIELDS,
    TOTAL_CHARGES_RELATIVE_TOLERANCE,
)
from churn_ml.schema.values import (
    _ENUM_PARSERS,
    _describe_range,
    _is_float_nan,
    _json_type,
    _parse_bool,
    _parse_number_value,
    _required_message,
)

_COMPLETENESS_UNIT = 100.0 / len(FIELD_ORDER)


@dataclass(frozen=True)
class RecordCheck:
    """One record's canonical values (None for null or invalid), errors by field, and quality."""

    record: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    completeness: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors


def check_record(data: Any, *, strict: bool = True) -> RecordCheck:
    """Validate one JSON-like record against the contract (see schema for the rules)."""
    if not isinstance(data, Mapping):
        return RecordCheck(record={}, errors={"non_field_errors": [f"Must be a JSON object; got {_json_type(data)}."]})
    errors: dict[str, list[str]] = {}

    def error(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if strict:
        for name in sorted(data.keys() - KNOWN_FIELDS, key=str):
            error(str(name), "Unknown field.")

    out: dict[str, Any] = {"customer_id": _customer_id(data.get("customer_id", MISSING), error)}
    get = data.get

    for name in BOOL_FIELDS:
        raw = get(name, MISSING)
        value, message = _parse_bool(raw)
        if message:
            error(name, message)
        elif value is None and name != "senior_citizen":
            error(name, _required_message(raw is not MISSING))
        out[name] = bool(value) if value is not None else False

    for name in ENUM_FIELDS:
        value, message = _ENUM_PARSERS[name](get(name, MISSING))
        if message:
            error(name, message)
        out[name] = value

    for name, rule in NUMBER_FIELDS.items():
        raw = get(name, MISSING)
        number, message = _parse_number_value(raw)
        if message:
            error(name, message)
        null = math.isnan(number)
        if not null and (
            number < rule.minimum
            or (rule.maximum is not None and number > rule.maximum)
            or (rule.integer and number != math.floor(number))
        ):
            error(name, f"{_describe_range(rule)}; got {number:g}.")
            number, null = math.nan, True
        if null and name not in errors and (not rule.nullable or name not in OPTIONAL_FIELDS):
            if raw is MISSING:
                error(name, "This field is required.")
            elif not rule.nullable:
                error(name, "This field may not be null.")
        out[name] = None if null else (int(number) if rule.integer else number)

    _consistency(data, out, errors, error)
    warnings = _warnings(out)
    present = sum(1 for name in FIELD_ORDER if name in BOOL_FIELDS or out[name] is not None)
    return RecordCheck(record=out, errors=errors, warnings=warnings, completeness=present * _COMPLETENESS_UNIT)


def _customer_id(value: Any, error: Any) -> str | None:
    if value is MISSING or value is None or _is_float_nan(value):
        error("customer_id", "This field is required.")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        error("customer_id", f"Must be a string; got a {type(value).__name__}.")
        return None
    value = value.strip()
    if CUSTOMER_ID_PATTERN.fullmatch(value) is None:
        shown = value if len(value) <= 70 else value[:70] + "..."
        error("customer_id", f'Must be 1-64 characters of letters, digits and _ . : -; got "{shown}".')
        return None
    return value


def _consistency(data: Mapping[str, Any], out: dict[str, Any], errors: dict[str, list[str]], error: Any) -> None:
    def present(name: str) -> bool:
        return data.get(name, MISSING) is not MISSING

    phone = out["phone_service"]
    if out["multiple_lines"] is None:
        if "multiple_lines" not in errors and "phone_service" not in errors:
            if not phone:
                out["multiple_lines"] = "No phone service"
            else:
                error("multiple_lines", _required_message(present("multiple_lines")))
    elif "phone_service" not in errors and (out["multiple_lines"] == "No phone service") == phone:
        if phone:
            error("multiple_lines", 'May be "No phone service" only when phone_service is false.')
        else:
            error("multiple_lines", 'Must be "No phone service" when phone_service is false.')

    internet = out["internet_service"]
    if internet is None and "internet_service" not in errors:
        error("internet_service", _required_message(present("internet_service")))
    no_internet = internet == "No"
    for name in INTERNET_ADDON_FIELDS:
        addon = out[name]
        if addon is None:
            if name not in errors:
                if no_internet:
                    out[name] = "No internet service"
                else:
                    error(name, _required_message(present(name)))
        elif internet is not None and (addon == "No internet service") != no_internet:
            if no_internet:
                error(name, 'Must be "No internet service" when internet_service is "No".')
            else:
                error(name, 'May be "No internet service" only when internet_service is "No".')

    for name in ("contract_type", "payment_method"):
        if out[name] is None and name not in errors:
            error(name, _required_message(present(name)))

    tenure = out["tenure_months"]
    if out["total_charges"] is None and tenure is not None and tenure > 1 and "total_charges" not in errors:
        error("total_charges", "May be null only when tenure_months is 0 or 1; it is required here.")


def _warnings(out: dict[str, Any]) -> list[str]:
    tenure, monthly, total = out["tenure_months"], out["monthly_charges"], out["total_charges"]
    if tenure is None or monthly is None or total is None:
        return []
    expected = tenure * monthly
    slack = max(TOTAL_CHARGES_RELATIVE_TOLERANCE * expected, 2 * monthly)
    if abs(total - expected) > slack:
        # + 0.0: a zero product is worded "0", never "-0" (tenure 0 x a charge of -0.0), as in the column path
        return [f"total_charges {float(total) + 0.0:g} is far from tenure_months x monthly_charges "
                f"({float(expected) + 0.0:g})."]
    return []
