"""Data drift: reference statistics from training data, and the population stability index.

The reference is computed per contract field on the training data (and, by the trainer, on the
model's training-set probabilities) and stored with the model as plain JSON. Later samples of
customers are compared with it field by field:

* numeric fields: bins between the reference deciles (quantile edges, duplicates merged, so a
  field like tenure with many equal values gets fewer bins), right-closed, plus one bin for
  null. Deciles keep each reference bin well filled, which keeps the index stable;
* categorical and bool fields: the share of each category seen in training plus an
  ``__other__`` bucket for anything else (unseen values, null).

PSI = sum over bins of (actual - expected) x ln(actual / expected), each share floored at
``PSI_EPSILON`` so an empty bin gives a large but finite term instead of infinity. The usual
reading: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant (the default alert threshold).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema import BOOL_FIELDS, ENUM_FIELDS, FIELD_ORDER, NUMBER_FIELDS

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

DEFAULT_PSI_THRESHOLD: Final = 0.2
PSI_EPSILON: Final = 1e-4
DEFAULT_QUANTILE_BINS: Final = 10
OTHER_CATEGORY: Final = "__other__"
REFERENCE_FORMAT: Final = "churn_ml.drift/1"


@dataclass(frozen=True)
class NumericReference:
    """Bin edges (interior, ascending) and the reference share of each bin; the last share is null."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of values per bin (len(edges) + 1 value bins, then the null bin)."""
        values = np.asarray(values, dtype=np.float64)
        null = np.isnan(values)
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), values[~null], side="left")
        counts = np.bincount(index, minlength=len(self.edges) + 1).astype(np.float64)
        return np.r_[counts, float(null.sum())]


@dataclass(frozen=True)
class CategoricalReference:
    """Categories seen in the reference and their shares; the last share is ``__other__``."""

    categories: tuple[str, ...]
    proportions: tuple[float, ...]

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts per category, then the count of everything else."""
        # Factorize the raw values first and label only the distinct ones: labelling every row in
        # Python cost ~0.5 s per field of a 100,000-row sample.
        codes, raw_uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        uniques = _as_labels(np.asarray(raw_uniques, dtype=object))
        index = {c: i for i, c in enumerate(self.categories)}
        other = len(self.categories)
        lookup = np.array([index.get(u, other) for u in uniques] + [other], dtype=np.int64)
        return np.bincount(lookup[codes], minlength=other + 1).astype(np.float64)


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class ReferenceStats:
    """The training distribution of each monitored feature."""

    n_rows: int
    features: Mapping[str, FeatureReference]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        features: dict[str, Any] = {}
        for name, ref in self.features.items():
            if isinstance(ref, NumericReference):
                features[name] = {"kind": "numeric", "edges": list(ref.edges), "proportions": list(ref.proportions)}
            else:
                features[name] = {
                    "kind": "categorical",
                    "categories": list(ref.categories),
                    "proportions": list(ref.proportions),
                }
        return {"format": REFERENCE_FORMAT, "n_rows": self.n_rows, "features": features}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceStats:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"not a drift reference of format {REFERENCE_FORMAT!r}")
        features: dict[str, FeatureReference] = {}
        for name, item in data["features"].items():
            if item["kind"] == "numeric":
                features[name] = NumericReference(
                    edges=tuple(float(x) for x in item["edges"]),
                    proportions=tuple(float(x) for x in item["proportions"]),
                )
            elif item["kind"] == "categorical":
                features[name] = CategoricalReference(
                    categories=tuple(str(x) for x in item["categories"]),
                    proportions=tuple(float(x) for x in item["proportions"]),
                )
            else:
                raise ValueError(f"unknown reference kind {item['kind']!r} for {name!r}")
        return cls(n_rows=int(data["n_rows"]), features=features)


def _as_labels(values: Any) -> np.ndarray:
    """Categorical values as strings (bools as "true"/"false"), None kept as None."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return np.where(arr, "true", "false").astype(object)
    out = np.empty(len(arr), dtype=object)
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, float) and v != v):
            out[i] = None
        elif isinstance(v, (bool, np.bool_)):
            out[i] = "true" if v else "false"
        else:
            out[i] = str(v)
    return out


def _is_numeric_column(name: str, values: np.ndarray) -> bool:
    if name in NUMBER_FIELDS:
        return True
    if name in ENUM_FIELDS or name in BOOL_FIELDS:
        return False
    return np.asarray(values).dtype.kind in "iuf"


def numeric_reference(values: Any, bins: int = DEFAULT_QUANTILE_BINS) -> NumericReference:
    """Quantile-binned reference of a numeric column (NaN = null)."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if len(present):
        quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        edges = tuple(float(e) for e in np.unique(quantiles))
    else:
        edges = ()
    ref = NumericReference(edges=edges, proportions=())
    counts = ref.bin_counts(values)
    return NumericReference(edges=edges, proportions=tuple(float(c) for c in counts / max(len(values), 1)))


def categorical_reference(values: Any) -> CategoricalReference:
    """Category shares of a column (bools as "true"/"false"), categories sorted."""
    labels = _as_labels(values)
    seen = sorted({v for v in labels if v is not None})
    ref = CategoricalReference(categories=tuple(seen), proportions=())
    counts = ref.bin_counts(labels)
    shares = counts / max(len(labels), 1)
    return CategoricalReference(categories=tuple(seen), proportions=tuple(float(c) for c in shares))


def build_reference(
    columns: Mapping[str, Any] | pd.DataFrame,
    *,
    fields: Iterable[str] | None = None,
    bins: int = DEFAULT_QUANTILE_BINS,
) -> ReferenceStats:
    """Reference statistics of the given columns (default: every contract data field present)."""
    if isinstance(columns, pd.DataFrame):
        columns = {str(c): columns[c].to_numpy() for c in columns.columns}
    names = list(fields) if fields is not None else [f for f in FIELD_ORDER if f in columns]
    features: dict[str, FeatureReference] = {}
    n_rows = 0
    for name in names:
        values = np.asarray(columns[name])
        n_rows = len(values)
        if _is_numeric_column(name, values):
            features[name] = numeric_reference(values, bins)
        else:
            features[name] = categorical_reference(values)
    return ReferenceStats(n_rows=n_rows, features=features)


def psi(expected: Any, actual: Any, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two share (or count) vectors over the same bins."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError("expected and actual need the same bins")
    e = e / e.sum() if e.sum() > 0 else e
    a = a / a.sum() if a.sum() > 0 else a
    e = np.maximum(e, epsilon)
    a = np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def binned_counts(reference: ReferenceStats, columns: Mapping[str, Any] | pd.DataFrame) -> dict[str, np.ndarray]:
    """Counts per reference bin of each reference feature present (and not empty) in ``columns``."""
    if isinstance(columns, pd.DataFrame):
        columns = {str(c): columns[c].to_numpy() for c in columns.columns}
    out: dict[str, np.ndarray] = {}
    for name, ref in reference.features.items():
        if name not in columns:
            continue
        counts = ref.bin_counts(np.asarray(columns[name]))
        if counts.sum() > 0:
            out[name] = counts
    return out


def population_stability(reference: ReferenceStats, columns: Mapping[str, Any] | pd.DataFrame) -> dict[str, float]:
    """PSI of each reference feature present in ``columns`` (absent features are skipped)."""
    return {
        name: psi(reference.features[name].proportions, counts)
        for name, counts in binned_counts(reference, columns).items()
    }


@dataclass(frozen=True)
class DriftSummary:
    """PSI per feature, the largest, and the features above the threshold (worst first)."""

    n_rows: int
    psi: Mapping[str, float]
    max_psi: float
    max_feature: str | None
    drifted: tuple[str, ...]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "n_rows": self.n_rows,
            "psi": dict(self.psi),
            "max_psi": self.max_psi,
            "max_feature": self.max_feature,
            "drifted": list(self.drifted),
            "threshold": self.threshold,
        }


def drift_summary(
    reference: ReferenceStats,
    columns: Mapping[str, Any] | pd.DataFrame,
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
) -> DriftSummary:
    """Compare a sample with the reference and summarise."""
    values = population_stability(reference, columns)
    n_rows = 0
    if values:
        first = next(iter(values))
        n_rows = len(columns[first])
    worst = max(values, key=values.__getitem__) if values else None
    drifted = tuple(sorted((k for k, v in values.items() if v > threshold), key=lambda k: -values[k]))
    return DriftSummary(
        n_rows=n_rows,
        psi={k: round(v, 6) for k, v in values.items()},
        max_psi=round(values[worst], 6) if worst is not None else 0.0,
        max_feature=worst,
        drifted=drifted,
        threshold=threshold,
    )


# --- thresholds that hold at any sample size -------------------------------------------------

DEFAULT_FALSE_ALARM_RATE: Final = 0.01
DEFAULT_NULL_RESAMPLES: Final = 5000


def _psi_rows(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """PSI of each row of two (resamples, bins) share arrays (the vectorised :func:`psi`)."""
    e = np.maximum(expected, epsilon)
    a = np.maximum(actual, epsilon)
    return np.sum((a - e) * np.log(a / e), axis=1)


def null_psi(
    proportions: Any, *, n_reference: int, n: int, resamples: int = DEFAULT_NULL_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """PSI values under no drift at batch size ``n``: a reference-sized resample and an n-sized
    sample, both drawn from the reference shares, compared as a live batch is compared."""
    e = np.asarray(proportions, dtype=np.float64)
    e = e / e.sum()
    rng = np.random.default_rng(seed)
    reference = rng.multinomial(max(n_reference, 1), e, size=resamples) / max(n_reference, 1)
    batch = rng.multinomial(max(n, 1), e, size=resamples) / max(n, 1)
    return _psi_rows(reference, batch)


@dataclass(frozen=True)
class DriftTest:
    """PSI per field against its own threshold at this sample size, with p-values.

    ``thresholds[f]`` is the (1 - false_alarm_rate / fields) quantile of the field's null PSI
    (Bonferroni: over all fields, undrifted data alarms with probability <= false_alarm_rate);
    ``p_values[f]`` the share of null PSIs at least as large as the observed one; ``p_value`` the
    Bonferroni-adjusted smallest of them; ``drifted`` the fields above their threshold, worst first.
    """

    n_rows: int
    psi: Mapping[str, float]
    thresholds: Mapping[str, float]
    p_values: Mapping[str, float]
    p_value: float
    drifted: tuple[str, ...]
    worst: str | None
    false_alarm_rate: float
    resamples: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "psi": dict(self.psi),
            "thresholds": dict(self.thresholds),
            "p_values": dict(self.p_values),
            "p_value": self.p_value,
            "drifted": list(self.drifted),
            "worst": self.worst,
            "false_alarm_rate": self.false_alarm_rate,
            "resamples": self.resamples,
            "method": "bootstrap null PSI at the batch size, Bonferroni over fields",
        }


def drift_test(
    reference: ReferenceStats,
    columns: Mapping[str, Any] | pd.DataFrame,
    *,
    false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE,
    resamples: int = DEFAULT_NULL_RESAMPLES,
    seed: int = 0,
) -> DriftTest:
    """Compare a sample with the reference, each field against its sample-size-aware threshold."""
    observed: dict[str, tuple[float, float, float]] = {}
    counts_of = binned_counts(reference, columns)
    fields = max(len(counts_of), 1)
    quantile = 1.0 - false_alarm_rate / fields
    for i, (name, counts) in enumerate(counts_of.items()):
        ref = reference.features[name]
        value = psi(ref.proportions, counts)
        null = null_psi(ref.proportions, n_reference=reference.n_rows, n=int(counts.sum()),
                        resamples=resamples, seed=seed + i)
        threshold = float(np.quantile(null, quantile, method="higher"))
        p = float((1 + np.sum(null >= value)) / (resamples + 1))
        observed[name] = (value, threshold, p)
    drifted = sorted((k for k, v in observed.items() if v[0] > v[1]), key=lambda k: -observed[k][0] / observed[k][1])
    worst = max(observed, key=lambda k: observed[k][0] / max(observed[k][1], 1e-12)) if observed else None
    n_rows = int(next(iter(counts_of.values())).sum()) if counts_of else 0
    return DriftTest(
        n_rows=n_rows,
        psi={k: round(v[0], 6) for k, v in observed.items()},
        thresholds={k: round(v[1], 6) for k, v in observed.items()},
        p_values={k: v[2] for k, v in observed.items()},
        p_value=min(1.0, min((v[2] for v in observed.values()), default=1.0) * fields),
        drifted=tuple(drifted),
        worst=worst,
        false_alarm_rate=false_alarm_rate,
        resamples=resamples,
    )
