"""LinearScorer: the calibrated logistic regression folded into one linear function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.features import (
    CATEGORICAL_FEATURES,
    CATEGORICAL_NAMES,
    FACTOR_GROUPS,
    FEATURE_SPEC_VERSION,
    NUMERIC_NAMES,
    EngineeredColumns,
    FeatureBuilder,
    move_inputs,
)
from churn_ml.scoring.factors import (
    DEFAULT_TOP_K,
    Contributions,
    Factor,
    _explain_matrix,
    _top_factors,
)
from churn_ml.scoring.protocol import _AFFECTED, SCORER_FORMAT, _check_header, _columns, _sigmoid_one, sigmoid

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

_FREE_NUMBERS: Final = frozenset({"monthly_charges", "total_charges", "income"})
_MEMO_KEYS: Final[tuple[tuple[str, ...] | None, ...]] = tuple(
    None if move_inputs(g.fields) & _FREE_NUMBERS else tuple(sorted(move_inputs(g.fields))) for g in FACTOR_GROUPS
)
"""Per factor group, the fields that determine a linear model's impact when they take few values
(enumerations, flags, whole months, ages): the single-record path remembers impacts by them."""
_MEMO_LIMIT: Final = 4096


@dataclass(frozen=True, eq=False)
class LinearScorer:
    """Calibrated logistic regression folded into one linear function of the engineered features.

    ``category_weights[f][k]`` is the logit weight of category k of categorical feature f
    (unknown categories weigh 0); ``numeric_weights[j]`` multiplies numeric feature j.
    ``category_means[f]`` and ``numeric_means[j]`` are the training means of those terms (kept
    with the model as a description of its training data).
    """

    features: FeatureBuilder
    intercept: float
    category_weights: Mapping[str, tuple[float, ...]]
    category_means: Mapping[str, float]
    numeric_weights: Mapping[str, float]
    numeric_means: Mapping[str, float]
    algorithm: str = "logistic"
    _tables: dict[str, np.ndarray] = field(init=False, repr=False)
    _numeric_terms: tuple[tuple[str, float], ...] = field(init=False, repr=False)
    _one_tables: tuple[tuple[str, list[float]], ...] = field(init=False, repr=False)
    _groups: tuple[tuple[tuple[str, ...], frozenset[str], tuple[Any, ...], tuple[Any, ...]], ...] = field(
        init=False, repr=False
    )
    _memo: tuple[dict[tuple[Any, ...], float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Precomputed lookups; object.__setattr__ because the dataclass is frozen.
        # Trailing 0.0: code -1 (unknown) indexes it.
        tables = {name: np.array([*self.category_weights[name], 0.0], dtype=np.float64) for name in CATEGORICAL_NAMES}
        # A zero weight (e.g. age when training data never had it) cannot change the logit.
        weights = self.numeric_weights
        numeric_terms = tuple((name, weights[name]) for name in NUMERIC_NAMES if weights[name] != 0.0)
        groups = []
        for group, only in zip(FACTOR_GROUPS, _AFFECTED, strict=True):
            cats = tuple((name, tables[name], tables[name].tolist()) for name in CATEGORICAL_NAMES if name in only)
            nums = tuple((name, w) for name, w in numeric_terms if name in only)
            groups.append((group.fields, only, cats, nums))
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_numeric_terms", numeric_terms)
        object.__setattr__(self, "_one_tables", tuple((name, t.tolist()) for name, t in tables.items()))
        object.__setattr__(self, "_groups", tuple(groups))
        # Impacts already computed, per group, by the values of its _MEMO_KEYS: 15 of the 18
        # groups depend on a few enumerations only, and a customer base repeats them endlessly.
        object.__setattr__(self, "_memo", tuple({} for _ in FACTOR_GROUPS))

    def _logits(self, eng: EngineeredColumns) -> np.ndarray:
        out = np.full(eng.n, self.intercept, dtype=np.float64)
        for name, table in self._tables.items():
            out += table[eng.codes[name]]
        for name, w in self._numeric_terms:
            out += w * eng.numeric[name]
        return out

    def logits(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Calibrated logits of n rows of canonical columns."""
        return self._logits(self.features.transform(_columns(columns)))

    def predict_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Churn probabilities of n rows (1-D array). Rows must be valid; a null required number gives NaN."""
        return sigmoid(self.logits(columns))

    def contributions(self, columns: Mapping[str, Any] | pd.DataFrame) -> Contributions:
        """Each factor's impact: the logit change when its fields move to the reference."""
        builder = self.features
        raw = builder.encode(_columns(columns))
        eng = builder.derive(raw)
        values = np.empty((raw.n, len(FACTOR_GROUPS)), dtype=np.float64)
        for j, (fields, only, cats, nums) in enumerate(self._groups):
            moved = builder.derive(builder.move_columns(raw, fields), only)
            impact = np.zeros(raw.n, dtype=np.float64)
            for name, table, _ in cats:
                impact += table[eng.codes[name]] - table[moved.codes[name]]
            for name, w in nums:
                impact += w * (eng.numeric[name] - moved.numeric[name])
            values[:, j] = impact
        return Contributions(FACTOR_GROUPS, values)

    def explain(self, columns: Mapping[str, Any] | pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> list[list[Factor]]:
        """The top_k factors of each row, largest absolute impact first."""
        return _explain_matrix(self.contributions(columns).values, top_k)

    def score_one(self, record: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> tuple[float, list[Factor]]:
        """(probability, top factors) of one canonical record dict, in pure Python."""
        builder = self.features
        codes, numeric = builder.transform_one(record)
        logit = self.intercept
        for name, table in self._one_tables:
            logit += table[codes[name]]
        for name, w in self._numeric_terms:
            logit += w * numeric[name]
        impacts = []
        for (fields, _, cats, nums), keys, memo in zip(self._groups, _MEMO_KEYS, self._memo, strict=True):
            if not cats and not nums:
                impacts.append(0.0)  # nothing it feeds has a weight
                continue
            if keys is not None:
                key = tuple([record.get(name) for name in keys])
                known = memo.get(key)
                if known is not None:
                    impacts.append(known)
                    continue
            moved_codes, moved_numeric = builder.transform_one(builder.move_record(record, fields))
            impact = 0.0
            for name, _, table in cats:
                impact += table[codes[name]] - table[moved_codes[name]]
            for name, w in nums:
                impact += w * (numeric[name] - moved_numeric[name])
            impacts.append(impact)
            if keys is not None and len(memo) < _MEMO_LIMIT:
                memo[key] = impact
        return _sigmoid_one(logit), _top_factors(impacts, top_k)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (floats round-trip exactly through JSON)."""
        return {
            "format": SCORER_FORMAT,
            "algorithm": self.algorithm,
            "kind": "linear",
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "features": self.features.to_dict(),
            "intercept": self.intercept,
            "categorical": {
                name: {"weights": list(self.category_weights[name]), "mean": self.category_means[name]}
                for name in CATEGORICAL_NAMES
            },
            "numeric": {
                name: {"weight": self.numeric_weights[name], "mean": self.numeric_means[name]} for name in NUMERIC_NAMES
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearScorer:
        """Inverse of :meth:`to_dict`."""
        _check_header(data, "linear")
        categorical = data["categorical"]
        numeric = data["numeric"]
        for feature in CATEGORICAL_FEATURES:
            if len(categorical[feature.name]["weights"]) != len(feature.categories):
                raise ValueError(f"scorer table for {feature.name!r} has the wrong number of categories")
        return cls(
            features=FeatureBuilder.from_dict(data["features"]),
            intercept=float(data["intercept"]),
            category_weights={n: tuple(float(w) for w in categorical[n]["weights"]) for n in CATEGORICAL_NAMES},
            category_means={n: float(categorical[n]["mean"]) for n in CATEGORICAL_NAMES},
            numeric_weights={n: float(numeric[n]["weight"]) for n in NUMERIC_NAMES},
            numeric_means={n: float(numeric[n]["mean"]) for n in NUMERIC_NAMES},
            algorithm=str(data.get("algorithm", "logistic")),
        )
