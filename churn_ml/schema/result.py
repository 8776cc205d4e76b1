"""The outcome of validating n records: canonical columns, per-row errors and warnings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema.fields import FIELD_ORDER, NUMBER_FIELDS, RECORD_FIELDS

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")


@dataclass
class ValidationResult:
    """Canonical columns, per-row errors and warnings for n input rows.

    ``columns`` hold every field for every row: bools as ``bool`` arrays, enumerations as object
    arrays of canonical strings (``None`` where absent or invalid), numbers as ``float64`` with
    NaN for null. Rows with errors still have entries; use ``valid`` to pick the good ones.
    """

    n: int
    columns: dict[str, np.ndarray]
    errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    warnings: dict[int, list[str]] = field(default_factory=dict)
    enum_codes: dict[str, np.ndarray] = field(default_factory=dict)
    """Per enumeration, each row's index into ``ENUM_FIELDS[name]`` (int8, -1 for none): the same
    information as ``columns[name]`` for writers that store codes rather than strings."""
    given: dict[str, np.ndarray] = field(default_factory=dict)
    """Per boolean field, True where the input held a valid value: ``columns`` cannot tell, as it
    holds the default False for absent, null and invalid values alike."""

    @property
    def valid(self) -> np.ndarray:
        mask = np.ones(self.n, dtype=bool)
        if self.errors:
            mask[list(self.errors)] = False
        return mask

    def completeness(self) -> np.ndarray:
        """Share (0..100) of the record's data fields that carry a value, per row."""
        present = np.zeros(self.n, dtype=np.int64)
        for name in FIELD_ORDER:
            col = self.columns[name]
            if col.dtype == bool:
                present += 1
            elif col.dtype.kind == "f":
                present += ~np.isnan(col)
            elif name in self.enum_codes:
                present += self.enum_codes[name] >= 0
            else:
                present += col != None  # noqa: E711 - elementwise on an object array
        return present * (100.0 / len(FIELD_ORDER))

    def record(self, i: int) -> dict[str, Any]:
        """Row i as a dict of Python values (None for null)."""
        out: dict[str, Any] = {}
        for name in RECORD_FIELDS:
            value = self.columns[name][i]
            if isinstance(value, np.bool_):
                value = bool(value)
            elif isinstance(value, np.floating):
                value = None if math.isnan(value) else float(value)
                rule = NUMBER_FIELDS.get(name)
                if value is not None and rule is not None and rule.integer:
                    value = int(value)
            out[name] = value
        return out

    def frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """The canonical columns as a DataFrame, optionally restricted to a boolean row mask."""
        cols = self.columns if rows is None else {k: v[rows] for k, v in self.columns.items()}
        return pd.DataFrame(cols, columns=list(RECORD_FIELDS))

    def add_error(self, i: int, name: str, message: str) -> None:
        self.errors.setdefault(i, {}).setdefault(name, []).append(message)
