"""The column-wise validator: every rule of the record, run over whole columns at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema.fields import (
    BOOL_FIELDS,
    CUSTOMER_ID_PATTERN,
    ENUM_FIELDS,
    INTERNET_ADDON_FIELDS,
    INTERNET_ADDONS,
    KNOWN_FIELDS,
    MISSING,
    NUMBER_FIELDS,
    OPTIONAL_FIELDS,
    PHONE_LINES,
    RECORD_FIELDS,
    TOTAL_CHARGES_RELATIVE_TOLERANCE,
)
from churn_ml.schema.result import ValidationResult
from churn_ml.schema.values import (
    _ENUM_PARSERS,
    _absent_codes,
    _as_object_array,
    _codes,
    _describe_range,
    _is_float_nan,
    _json_type,
    _parse_bool,
    _parse_number_column,
    _parse_uniques,
    _required_message,
)

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

_ID_CHARACTERS: Final = re.compile(r"[A-Za-z0-9_.:\-]*")


def _validate_number(result: ValidationResult, name: str, raw: np.ndarray, present: np.ndarray) -> None:
    rule = NUMBER_FIELDS[name]
    if raw.dtype.kind in "iuf":
        numbers = raw.astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            for i in np.flatnonzero(np.isinf(numbers)):
                result.add_error(int(i), name, "Must be a finite number; got Infinity.")
        numbers = np.where(np.isinf(numbers), np.nan, numbers)
    elif raw.dtype == bool:
        numbers = np.full(result.n, np.nan)
        for i in range(result.n):
            result.add_error(i, name, "Must be a number; got a boolean.")
    else:
        numbers, messages = _parse_number_column(raw, present)
        for i, message in messages.items():
            result.add_error(i, name, message)
    null = np.isnan(numbers)
    with np.errstate(invalid="ignore"):
        bad = numbers < rule.minimum
        if rule.maximum is not None:
            bad |= numbers > rule.maximum
        if rule.integer:
            bad |= numbers != np.floor(numbers)
    bad &= ~null
    if bad.any():
        text = _describe_range(rule)
        for i in np.flatnonzero(bad):
            result.add_error(int(i), name, f"{text}; got {numbers[i]:g}.")
        numbers = np.where(bad, np.nan, numbers)
    if not rule.nullable or name not in OPTIONAL_FIELDS:
        missing = null & ~present & np.ones(result.n, dtype=bool)
        explicit_null = null & present
        for i in np.flatnonzero(missing):
            if name not in _row_errors(result, int(i)):
                result.add_error(int(i), name, "This field is required.")
        if not rule.nullable:
            for i in np.flatnonzero(explicit_null):
                if name not in _row_errors(result, int(i)):
                    result.add_error(int(i), name, "This field may not be null.")
    result.columns[name] = numbers


def _row_errors(result: ValidationResult, i: int) -> dict[str, list[str]]:
    return result.errors.get(i, {})


def _presence(raw: np.ndarray) -> np.ndarray:
    """True where the field was present in the input (even if explicitly null)."""
    if raw.dtype != object:
        return np.ones(len(raw), dtype=bool)
    # MISSING compares by identity, so the elementwise comparison runs in C.
    present = raw != MISSING
    if isinstance(present, np.ndarray) and present.shape == raw.shape and present.dtype == bool:
        return present
    return np.fromiter((v is not MISSING for v in raw), dtype=bool, count=len(raw))


def validate_columns(
    columns: Mapping[str, Sequence[Any] | np.ndarray | pd.Series],
    n: int,
    *,
    unknown_fields: Iterable[tuple[int, str]] = (),
) -> ValidationResult:
    """Validate n records given as columns keyed by contract field name.

    Values may be Python objects as parsed from JSON or CSV text, or numpy/pandas columns
    (categorical columns are read through their codes). A field absent from ``columns`` is
    absent from every record; ``MISSING`` marks it absent from one record. ``unknown_fields``
    lists (row, name) pairs to report as errors.
    """
    result = ValidationResult(n=n, columns={})
    absent = np.full(n, MISSING, dtype=object)
    # Booleans and enumerations are validated per distinct value: (codes, distinct values).
    coded = {name: _codes(columns[name], n) if name in columns else _absent_codes(n) for name in _CODED_FIELDS}

    def present(name: str, i: int) -> bool:
        codes, uniques = coded[name]
        return uniques[codes[i]] is not MISSING

    for i, name in unknown_fields:
        result.add_error(i, name, "Unknown field.")

    _validate_customer_id(result, _as_object_array(columns.get("customer_id", absent), n))

    for name in BOOL_FIELDS:
        codes, uniques = coded[name]
        u_values, u_messages = _parse_uniques(uniques, _parse_bool)
        u_error = u_messages != None  # noqa: E711 - elementwise on an object array
        for i in np.flatnonzero(u_error[codes]):
            result.add_error(int(i), name, u_messages[codes[i]])
        u_null = u_values == None  # noqa: E711
        if name != "senior_citizen":
            for i in np.flatnonzero((u_null & ~u_error)[codes]):
                result.add_error(int(i), name, _required_message(present(name, int(i))))
        result.columns[name] = np.where(u_null, False, u_values).astype(bool)[codes]
        result.given[name] = (~u_null & ~u_error)[codes]

    for name, allowed in ENUM_FIELDS.items():
        codes, uniques = coded[name]
        u_values, u_messages = _parse_uniques(uniques, _ENUM_PARSERS[name])
        for i in np.flatnonzero((u_messages != None)[codes]):  # noqa: E711
            result.add_error(int(i), name, u_messages[codes[i]])
        result.columns[name] = u_values[codes]
        u_index = np.array([-1 if v is None else allowed.index(v) for v in u_values], dtype=np.int8)
        result.enum_codes[name] = u_index[codes]

    for name in NUMBER_FIELDS:
        raw = _as_object_array(columns.get(name, absent), n)
        _validate_number(result, name, raw, _presence(raw))

    _validate_consistency(result, present)
    _quality_warnings(result)
    return result


_CODED_FIELDS: Final = (*BOOL_FIELDS, *ENUM_FIELDS)


def _validate_customer_id(result: ValidationResult, raw: np.ndarray) -> None:
    if result.n > 64 and _all_plain_ids(raw):
        result.columns["customer_id"] = raw.astype(object, copy=True)
        return
    ids = np.empty(result.n, dtype=object)
    match = CUSTOMER_ID_PATTERN.fullmatch
    for i, value in enumerate(raw):
        if value is MISSING or value is None or _is_float_nan(value):
            result.add_error(i, "customer_id", "This field is required.")
            ids[i] = None
            continue
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            value = str(value)
        if not isinstance(value, str):
            result.add_error(i, "customer_id", f"Must be a string; got a {type(value).__name__}.")
            ids[i] = None
            continue
        value = value.strip()
        if match(value) is None:
            shown = value if len(value) <= 70 else value[:70] + "..."
            result.add_error(
                i, "customer_id", f'Must be 1-64 characters of letters, digits and _ . : -; got "{shown}".'
            )
            ids[i] = None
            continue
        ids[i] = value
    result.columns["customer_id"] = ids


def _all_plain_ids(raw: np.ndarray) -> bool:
    """True when every value is already a valid, stripped customer_id (the usual file chunk).

    One regular expression over the joined column replaces a match per row.
    """
    if pd.api.types.infer_dtype(raw, skipna=False) != "string":
        return False
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    if lengths.min() < 1 or lengths.max() > 64:
        return False
    return _ID_CHARACTERS.fullmatch("".join(raw)) is not None


def _validate_consistency(result: ValidationResult, present: Any) -> None:
    cols = result.columns
    codes = result.enum_codes
    errors = result.errors
    no_phone_code = PHONE_LINES.index("No phone service")
    no_internet_code = ENUM_FIELDS["internet_service"].index("No")
    none_code = INTERNET_ADDONS.index("No internet service")

    # multiple_lines follows phone_service; derive it when absent and unambiguous.
    phone = cols["phone_service"]
    lines, line_codes = cols["multiple_lines"], codes["multiple_lines"]
    for i in np.flatnonzero(line_codes < 0):
        i = int(i)
        if "multiple_lines" in errors.get(i, {}) or "phone_service" in errors.get(i, {}):
            continue
        if not phone[i]:
            lines[i] = "No phone service"
            line_codes[i] = no_phone_code
        else:
            result.add_error(i, "multiple_lines", _required_message(present("multiple_lines", i)))
    no_phone_line = line_codes == no_phone_code
    for i in np.flatnonzero(no_phone_line == phone):
        i = int(i)
        if "phone_service" in errors.get(i, {}) or line_codes[i] < 0:
            continue
        if phone[i]:
            result.add_error(i, "multiple_lines", 'May be "No phone service" only when phone_service is false.')
        else:
            result.add_error(i, "multiple_lines", 'Must be "No phone service" when phone_service is false.')

    internet = codes["internet_service"]
    for i in np.flatnonzero(internet < 0):
        if "internet_service" not in errors.get(int(i), {}):
            result.add_error(int(i), "internet_service", _required_message(present("internet_service", int(i))))
    no_internet = internet == no_internet_code
    known_internet = internet >= 0
    for name in INTERNET_ADDON_FIELDS:
        addon, addon_codes = cols[name], codes[name]
        for i in np.flatnonzero(addon_codes < 0):
            i = int(i)
            if name in errors.get(i, {}):
                continue
            if no_internet[i]:
                addon[i] = "No internet service"
                addon_codes[i] = none_code
            else:
                result.add_error(i, name, _required_message(present(name, i)))
        says_none = addon_codes == none_code
        for i in np.flatnonzero((says_none != no_internet) & known_internet & (addon_codes >= 0)):
            i = int(i)
            if no_internet[i]:
                result.add_error(i, name, 'Must be "No internet service" when internet_service is "No".')
            else:
                result.add_error(i, name, 'May be "No internet service" only when internet_service is "No".')

    for name in ("contract_type", "payment_method"):
        for i in np.flatnonzero(codes[name] < 0):
            if name not in errors.get(int(i), {}):
                result.add_error(int(i), name, _required_message(present(name, int(i))))

    tenure = cols["tenure_months"]
    total = cols["total_charges"]
    with np.errstate(invalid="ignore"):
        null_total_not_allowed = np.isnan(total) & (tenure > 1)
    for i in np.flatnonzero(null_total_not_allowed):
        if "total_charges" not in errors.get(int(i), {}):
            result.add_error(
                int(i), "total_charges", "May be null only when tenure_months is 0 or 1; it is required here."
            )


def _quality_warnings(result: ValidationResult) -> None:
    cols = result.columns
    tenure, monthly, total = cols["tenure_months"], cols["monthly_charges"], cols["total_charges"]
    expected = tenure * monthly
    with np.errstate(invalid="ignore"):
        slack = np.maximum(TOTAL_CHARGES_RELATIVE_TOLERANCE * expected, 2 * monthly)
        far = np.abs(total - expected) > slack
    for i in np.flatnonzero(far):
        result.warnings.setdefault(int(i), []).append(
            # + 0.0: "0", never "-0", as in the single-record path
            f"total_charges {total[i] + 0.0:g} is far from tenure_months x monthly_charges ({expected[i] + 0.0:g})."
        )


def validate_records(records: Sequence[Any], *, strict: bool = True) -> ValidationResult:
    """Validate a list of JSON-like records. Non-object items become row errors.

    With ``strict``, fields outside the contract are errors; otherwise they are ignored.
    """
    n = len(records)
    columns: dict[str, list[Any]] = {}
    unknown: list[tuple[int, str]] = []
    not_objects: list[int] = []
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            not_objects.append(i)
            continue
        if strict:
            extra = record.keys() - KNOWN_FIELDS
            if extra:
                unknown.extend((i, str(name)) for name in sorted(extra, key=str))
    for name in RECORD_FIELDS:
        columns[name] = [r.get(name, MISSING) if isinstance(r, Mapping) else MISSING for r in records]
    result = validate_columns(columns, n, unknown_fields=unknown)
    for i in not_objects:
        result.errors[i] = {"non_field_errors": [f"Must be a JSON object; got {_json_type(records[i])}."]}
    return result


def validate_record(record: Mapping[str, Any], *, strict: bool = True) -> ValidationResult:
    """Validate one record (a ValidationResult of n=1)."""
    return validate_records([record], strict=strict)
