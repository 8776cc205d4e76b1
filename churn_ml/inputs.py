"""The inputs a prediction was scored with, as a compact snapshot stored with the prediction.

A snapshot is a JSON array of the record's data fields in ``INPUTS_LAYOUT`` order (customer_id is
the prediction's own column): ``["female",false,true,...,70.35,844.2,null,null]``. On PostgreSQL
(jsonb) that is ~190 bytes a prediction where the same record as a JSON object takes ~530: the
field names would be stored again in every row of a table that grows by millions a night.

The layout is append-only: a field added to the contract goes at the end, so an older, shorter
snapshot still reads, its later fields absent. ``snapshot_fields`` reads both that and the JSON
object form that single predictions stored before snapshots were compact.

Two writers, one format: ``snapshot_text`` for one record (the request path, pure Python) and
``snapshot_texts`` for canonical columns (batches and jobs, vectorised). A test holds them equal.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema import BOOL_FIELDS, FIELD_ORDER, NUMBER_FIELDS

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

_CATEGORICAL: Final = tuple(name for name in FIELD_ORDER if name not in NUMBER_FIELDS)
_NUMBERS: Final = tuple(name for name in FIELD_ORDER if name in NUMBER_FIELDS)
INPUTS_LAYOUT: Final = (*_CATEGORICAL, *_NUMBERS)
"""The fields of a snapshot, in order: booleans and enumerations, then numbers. Append only."""

_INTEGER: Final = frozenset(name for name, rule in NUMBER_FIELDS.items() if rule.integer)
_COMPACT: Final = (",", ":")


def _number(name: str, value: Any) -> int | float | None:
    if value is None or value != value:  # None or NaN
        return None
    return int(value) if name in _INTEGER else float(value)


def _categorical(name: str, value: Any) -> Any:
    if name in BOOL_FIELDS:
        return bool(value)
    return None if value is None else str(value)


def snapshot_values(record: Mapping[str, Any]) -> list[Any]:
    """The snapshot of one canonical record (check_record's output or a stored customer's fields)."""
    return [_categorical(n, record.get(n)) for n in _CATEGORICAL] + [_number(n, record.get(n)) for n in _NUMBERS]


def snapshot_text(record: Mapping[str, Any]) -> str:
    """The snapshot of one record as compact JSON text."""
    return json.dumps(snapshot_values(record), separators=_COMPACT)


def _value_text(name: str, value: Any) -> str:
    """One field's value as JSON text, as json.dumps writes it in a snapshot."""
    if name in NUMBER_FIELDS:
        number = _number(name, value)
        return "null" if number is None else repr(number)
    if value is not None and value != value:  # pandas gives NaN for a None it factorized
        value = None
    return json.dumps(_categorical(name, value))


def _column_codes(name: str, column: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's code into the column's distinct values, and those values as JSON text."""
    if column.dtype == bool:
        return column.astype(np.int64), ["false", "true"]
    codes, uniques = _factorize(column)
    return codes, [_value_text(name, v) for v in uniques.tolist()]


# Categorical fields are formatted in groups of this many: a group takes at most a few hundred
# combinations, each formatted once, so a row joins a few group texts instead of 16 values.
_GROUP = 4


def snapshot_texts(
    columns: Mapping[str, np.ndarray], escape: Callable[[str], str] | None = None
) -> list[str]:
    """The snapshot of every row of canonical columns (ValidationResult.columns' types), as JSON text.

    Equal to ``snapshot_text`` row by row, each passed through ``escape`` if given (a COPY
    stream's escaping; only the strings can need it). Vectorised: every distinct value of a
    column is formatted once, the categorical fields in groups of four whose distinct
    combinations (a few hundred at most) are formatted once each, so the per-row work is
    looking up and joining nine short strings (measured: ~25,000 rows in tens of ms).
    """
    n = len(columns[INPUTS_LAYOUT[0]])
    if n == 0:
        return []
    pieces: list[list[str]] = []
    for start in range(0, len(_CATEGORICAL), _GROUP):
        names = _CATEGORICAL[start : start + _GROUP]
        coded = [_column_codes(name, columns[name]) for name in names]
        key = np.zeros(n, dtype=np.int64)
        for codes, texts in coded:
            key = key * max(len(texts), 1) + codes
        combos, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        del combos
        table = []
        for row in first.tolist():
            text = ",".join(texts[codes[row]] for codes, texts in coded)
            table.append(escape(text) if escape is not None else text)
        pieces.append(np.array(table, dtype=object)[inverse.ravel()].tolist())
    for name in _NUMBERS:
        codes, texts = _column_codes(name, columns[name])
        pieces.append(np.array(texts, dtype=object)[codes].tolist())
    return ["[" + ",".join(row) + "]" for row in zip(*pieces, strict=True)]


def _factorize(column: np.ndarray) -> tuple[np.ndarray, Any]:
    codes, uniques = pd.factorize(column, use_na_sentinel=False)
    return codes.astype(np.int64), uniques


def snapshot_fields(stored: Any) -> dict[str, Any] | None:
    """The record's data fields from a stored snapshot (array, or the older JSON object); None if none."""
    if stored is None:
        return None
    if isinstance(stored, Mapping):
        return {name: stored[name] for name in FIELD_ORDER if name in stored}
    if isinstance(stored, (list, tuple)):
        return dict(zip(INPUTS_LAYOUT, stored, strict=False))
    return None
