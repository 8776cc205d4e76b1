"""Per-field outliers against the stored customers: robust z-scores, flagged and never rejected.

For each numeric field, z = 0.6745 (x - median) / MAD of the reference population (Iglewicz and
Hoaglin's modified z-score); |z| > 3.5 is an anomaly. Money fields are skewed, so they are
compared on log1p(x). The median and MAD ignore a few extreme values by construction, so a
reference with some bad data in it still works. Values already outside the contract's ranges
never get here: the validator refuses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

THRESHOLD = 3.5
MIN_REFERENCE_ROWS = 200
REFERENCE_SAMPLE_ROWS = 50_000
# field -> compared on log1p(value)
FIELDS: dict[str, bool] = {
    "tenure_months": False,
    "monthly_charges": False,
    "total_charges": True,
    "age": False,
    "income": True,
}
_NORMAL_MAD = 0.6745
# With MAD = 0 (over half the values equal), the mean absolute deviation stands in; 1.2533 makes it
# comparable to a standard deviation.
_MEAN_AD_FACTOR = 1.2533


@dataclass(frozen=True)
class FieldStats:
    center: float
    scale: float  # the MAD, or 1.2533 x the mean absolute deviation when the MAD is 0
    mad: bool
    log: bool


@dataclass(frozen=True)
class Reference:
    """Robust centre and spread of each numeric field of a population of customers."""

    stats: dict[str, FieldStats]
    size: int
    origin: str  # "stored customers" or "this run's first rows"

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "origin": self.origin,
            "stats": {k: [v.center, v.scale, v.mad, v.log] for k, v in self.stats.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reference:
        stats = {k: FieldStats(float(c), float(s), bool(m), bool(lg)) for k, (c, s, m, lg) in data["stats"].items()}
        return cls(stats=stats, size=int(data["size"]), origin=str(data["origin"]))


def reference_from(columns: Mapping[str, np.ndarray], *, origin: str) -> Reference | None:
    """Statistics of the given float columns (NaN = null); None when there are too few rows."""
    stats: dict[str, FieldStats] = {}
    size = 0
    for name, log in FIELDS.items():
        values = np.asarray(columns.get(name, ()), dtype=np.float64)
        values = values[~np.isnan(values)]
        size = max(size, len(values))
        if len(values) < MIN_REFERENCE_ROWS:
            continue
        if log:
            values = np.log1p(np.maximum(values, 0))
        center = float(np.median(values))
        mad = float(np.median(np.abs(values - center)))
        if mad > 0:
            stats[name] = FieldStats(center, mad, True, log)
            continue
        mean_ad = float(np.mean(np.abs(values - np.mean(values))))
        if mean_ad > 0:
            stats[name] = FieldStats(center, _MEAN_AD_FACTOR * mean_ad, False, log)
    if not stats:
        return None
    return Reference(stats=stats, size=size, origin=origin)


def flag(reference: Reference, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[int, list[tuple[str, str]]]:
    """Anomalies among ``rows``: {row: [(field, message), ...]}."""
    found: dict[int, list[tuple[str, str]]] = {}
    for name, st in reference.stats.items():
        values = np.asarray(columns[name], dtype=np.float64)[rows]
        compared = np.log1p(np.maximum(values, 0)) if st.log else values
        with np.errstate(invalid="ignore"):
            z = (_NORMAL_MAD if st.mad else 1.0) * (compared - st.center) / st.scale
            outliers = np.flatnonzero(np.abs(z) > THRESHOLD)
        for k in outliers:
            row = int(rows[k])
            found.setdefault(row, []).append(
                (
                    name,
                    f"anomaly: {name} {values[k]:g} is far from the stored customers (robust z-score {z[k]:+.1f}).",
                )
            )
    return found
