"""Reading one value (or one column of values) of a field: booleans, enumerations, numbers.

Each parser returns (value, error message or None). Columns are parsed per distinct value
(:func:`_codes`, :func:`_parse_uniques`) or, for numbers, through C-speed paths that fall back
to the per-value parser only where they cannot settle a value exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema.fields import ENUM_ALIASES, ENUM_FIELDS, MISSING, NumberRule

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

_TRUE_WORDS: Final = frozenset({"yes", "true", "1", "y", "t"})
_FALSE_WORDS: Final = frozenset({"no", "false", "0", "n", "f"})
_NULL_WORDS: Final = frozenset({"", "null", "none", "na", "n/a"})
_NON_FINITE_WORDS: Final = frozenset({"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
# Longer text in a number field is not read as a number (no float() on megabyte strings).
_MAX_NUMBER_TEXT: Final = 40


def _as_object_array(values: Sequence[Any] | np.ndarray | pd.Series, n: int) -> np.ndarray:
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    arr = np.empty(n, dtype=object)
    arr[:] = list(values)
    return arr


def _unique_map(arr: np.ndarray, parse: Any) -> tuple[np.ndarray, np.ndarray]:
    """Apply parse to each distinct value once; returns (parsed values, error messages) arrays.

    Enumerations and booleans take a handful of distinct values, so a million-row column costs
    one factorisation plus a dozen parse calls.
    """
    codes, uniques = _codes(arr, len(arr))
    values, messages = _parse_uniques(uniques, parse)
    return values[codes], messages[codes]


def _is_null(value: Any) -> bool:
    if value is None or value is MISSING:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _NULL_WORDS
    return False


def _is_float_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _parse_bool(value: Any) -> tuple[Any, str | None]:
    if value is MISSING or value is None:
        return None, None
    if isinstance(value, (bool, np.bool_)):
        return bool(value), None
    if isinstance(value, (int, np.integer)) or (isinstance(value, (float, np.floating)) and value == value):
        if value == 1:
            return True, None
        if value == 0:
            return False, None
        return None, f"Must be true or false (also accepted: Yes/No, 1/0); got {value!r}."
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True, None
        if word in _FALSE_WORDS:
            return False, None
        if word in _NULL_WORDS:
            return None, None
        return None, f"Must be true or false (also accepted: Yes/No, 1/0); got {value!r}."
    if _is_float_nan(value):
        return None, None
    return None, f"Must be true or false; got a {type(value).__name__}."


def _enum_parser(name: str) -> Any:
    allowed = ENUM_FIELDS[name]
    lookup = {v.lower(): v for v in allowed} | ENUM_ALIASES.get(name, {})
    listing = ", ".join(f'"{v}"' for v in allowed)

    def parse(value: Any) -> tuple[Any, str | None]:
        if value is MISSING or value is None or _is_float_nan(value):
            return None, None
        if not isinstance(value, str):
            return None, f"Must be one of {listing}; got a {type(value).__name__}."
        key = value.strip().lower()
        if key in lookup:
            return lookup[key], None
        if key in _NULL_WORDS:
            return None, None
        shown = value if len(value) <= 40 else value[:40] + "..."
        return None, f'Must be one of {listing}; got "{shown}".'

    return parse


_ENUM_PARSERS: Final = {name: _enum_parser(name) for name in ENUM_FIELDS}


def _parse_number_value(value: Any) -> tuple[float, str | None]:
    """One value to float (NaN for null) or an error. Booleans are not numbers."""
    if value is MISSING or value is None:
        return math.nan, None
    if isinstance(value, (bool, np.bool_)):
        return math.nan, "Must be a number; got a boolean."
    if isinstance(value, (int, np.integer)):
        return float(value), None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return math.nan, None
        if math.isinf(value):
            return math.nan, "Must be a finite number; got Infinity."
        return float(value), None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _NULL_WORDS:
            return math.nan, None
        if text.lower() in _NON_FINITE_WORDS:
            return math.nan, f"Must be a finite number; got {value!r}."
        try:
            number = float(text.replace(",", "")) if len(text) <= _MAX_NUMBER_TEXT else math.nan
        except ValueError:
            number = math.nan
        if math.isnan(number) or math.isinf(number):
            shown = value if len(value) <= 40 else value[:40] + "..."
            return math.nan, f'Must be a number; got "{shown}".'
        return number, None
    return math.nan, f"Must be a number; got a {type(value).__name__}."


def _describe_range(rule: NumberRule) -> str:
    kind = "an integer" if rule.integer else "a number"
    if rule.maximum is None:
        return f"Must be {kind} >= {rule.minimum:g}"
    return f"Must be {kind} between {rule.minimum:g} and {rule.maximum:g}"


def _parse_number_column(raw: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """_parse_number_value over an object column: float64 (NaN for null) and error messages by row.

    Clean columns take C-speed paths (about 100x faster than a Python loop on a 100,000-row file
    chunk); only the rows those paths cannot settle exactly go through _parse_number_value, so the
    result is the same as calling it on every value.
    """
    n = len(raw)
    numbers = np.full(n, np.nan)
    slow = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(present) if not present.all() else None
    values = raw if rows is None else raw[rows]
    small = len(values) <= 64
    if not small and pd.api.types.infer_dtype(values, skipna=False) == "string":
        parsed, unsettled = _parse_number_strings(values)
    elif not small and pd.api.types.infer_dtype(values, skipna=True) in ("integer", "floating", "mixed-integer-float"):
        # JSON numbers, possibly with nulls; booleans make the inferred type "mixed-integer".
        null = pd.isna(values)
        parsed = np.full(len(values), np.nan)
        try:
            parsed[~null] = values[~null].astype(np.float64)
            unsettled = np.isinf(parsed)
        except (OverflowError, TypeError, ValueError):
            unsettled = np.ones(len(values), dtype=bool)
    else:
        parsed, unsettled = np.full(len(values), np.nan), np.ones(len(values), dtype=bool)
    if rows is None:
        numbers, slow = parsed, unsettled
    else:
        numbers[rows], slow[rows] = parsed, unsettled
    messages: dict[int, str] = {}
    for i in np.flatnonzero(slow):
        number, message = _parse_number_value(raw[i])
        numbers[i] = number
        if message:
            messages[int(i)] = message
    return numbers, messages


def _parse_number_strings_around_blanks(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """astype(float64) of a column whose only non-numbers are blank cells (a Telco TotalCharges).

    The blanks are left unsettled (they are nulls); (None, ...) when other text stands in the way.
    """
    blank = (values == "") | (values == " ")
    if not blank.any():
        return None, blank
    numbers = np.full(len(values), np.nan)
    try:
        numbers[~blank] = values[~blank].astype(np.float64)
    except (TypeError, ValueError):
        return None, blank
    return numbers, blank


def _parse_number_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings to float64 with float()'s exact rounding; returns (numbers, rows left unsettled).

    ``astype(float64)`` calls float() on each string in C. When some string is not a plain
    number, pandas' to_numeric finds which ones (its own parser rounds differently, so it only
    picks the rows; their values still come from float()). NaN, Infinity, long or odd strings
    (null words, thousands separators) are left to _parse_number_value.
    """
    n = len(values)
    try:
        numbers = values.astype(np.float64)
        unsettled = np.zeros(n, dtype=bool)
    except (TypeError, ValueError):
        numbers, unsettled = _parse_number_strings_around_blanks(values)
    if numbers is None:
        numbers = np.full(n, np.nan)
        try:
            with np.errstate(invalid="ignore"):
                plain = np.isfinite(np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64))
            numbers[plain] = values[plain].astype(np.float64)
        except (OverflowError, TypeError, ValueError):
            return numbers, np.ones(n, dtype=bool)
        unsettled = ~plain
    unsettled |= ~np.isfinite(numbers)
    if max(map(len, values), default=0) > _MAX_NUMBER_TEXT:
        unsettled |= np.fromiter(map(len, values), dtype=np.int64, count=n) > _MAX_NUMBER_TEXT
    return numbers, unsettled


def _absent_codes(n: int) -> tuple[np.ndarray, np.ndarray]:
    uniques = np.empty(1, dtype=object)
    uniques[0] = MISSING
    return np.zeros(n, dtype=np.intp), uniques


def _codes(values: Sequence[Any] | np.ndarray | pd.Series, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values) of a column, so that values == distinct[codes].

    NaN and None stay distinct values rather than pandas' missing sentinel. A categorical column
    (as pandas reads a file column declared ``category``) already is codes and categories.
    """
    cat = values.array if isinstance(values, pd.Series) else values
    if isinstance(cat, pd.Categorical):
        uniques = np.empty(len(cat.categories) + 1, dtype=object)
        uniques[:-1] = cat.categories.to_numpy(dtype=object)
        uniques[-1] = np.nan
        codes = np.asarray(cat.codes, dtype=np.intp)
        return np.where(codes < 0, len(uniques) - 1, codes), uniques
    arr = _as_object_array(values, n)
    if n > 64:
        try:
            codes, distinct = pd.factorize(arr, use_na_sentinel=False)
            uniques = np.empty(len(distinct), dtype=object)
            uniques[:] = list(distinct)
            return codes, uniques
        except TypeError:  # unhashable values (JSON arrays or objects): one code per row
            pass
    return np.arange(n, dtype=np.intp), arr


def _parse_uniques(uniques: np.ndarray, parse: Any) -> tuple[np.ndarray, np.ndarray]:
    pairs = [parse(v) for v in uniques]
    values = np.empty(len(pairs), dtype=object)
    messages = np.empty(len(pairs), dtype=object)
    values[:] = [p[0] for p in pairs]
    messages[:] = [p[1] for p in pairs]
    return values, messages


def _required_message(present: bool) -> str:
    return "This field may not be null." if present else "This field is required."


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"
