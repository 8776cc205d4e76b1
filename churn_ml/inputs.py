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
import pandas as pd

from churn_ml.schema import BOOL_FIELDS, FIELD_ORDER, NUMBER_FIELDS

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


def _number_texts(name: str, column: np.ndarray) -> list[str]:
    """Each row's number as JSON text; distinct values (a few thousand a column) formatted once."""
    codes, uniques = _factorize(column)
    texts = np.array([json.dumps(_number(name, v)) for v in uniques.tolist()], dtype=object)
    return texts[codes].tolist()


def snapshot_texts(
    columns: Mapping[str, np.ndarray], escape: Callable[[str], str] | None = None
) -> list[str]:
    """The snapshot of every row of canonical columns (ValidationResult.columns' types), as JSON text.

    Equal to ``snapshot_text`` row by row, each passed through ``escape`` if given (a COPY
    stream's escaping; only the strings can need it). The booleans and enumerations of a row take
    few combinations (a few thousand in a million customers): each distinct combination is
    formatted (and escaped) once and looked up, and each distinct number is formatted once, so
    the per-row work is joining six short strings.
    """
    n = len(columns[INPUTS_LAYOUT[0]])
    if n == 0:
        return []
    key = np.zeros(n, dtype=np.int64)
    for name in _CATEGORICAL:
        column = columns[name]
        if column.dtype == bool:
            codes, radix = column.astype(np.int64), 2
        else:
            # No NA sentinel: None (an absent gender) is a code of its own.
            found, uniques = _factorize(column)
            codes, radix = found, len(uniques)
        key = key * max(radix, 1) + codes
    combos, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    del combos
    heads = []
    for row in first.tolist():
        values = [_categorical(name, columns[name][row]) for name in _CATEGORICAL]
        text = json.dumps(values, separators=_COMPACT)[:-1]  # "[...": the numbers follow
        heads.append(escape(text) if escape is not None else text)
    head = np.array(heads, dtype=object)[inverse].tolist()
    numbers = [_number_texts(name, columns[name]) for name in _NUMBERS]
    return [",".join(row) + "]" for row in zip(head, *numbers, strict=True)]


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
