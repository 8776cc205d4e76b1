"""The compiled scorer: the trained model as plain arrays, for the request path.

A fitted sklearn Pipeline with a ColumnTransformer spends ~9 ms of CPU on one row, almost all of
it in per-call validation and DataFrame plumbing. :func:`compile_pipeline` turns the trained
pipeline into plain numbers once, after training, and the scorer then needs only numpy (batches)
or pure Python (one record):

* :class:`LinearScorer` (logistic regression, the chosen family): every step of the pipeline is
  affine, so it folds into one linear function of the engineered features. The StandardScaler
  is folded into the coefficients (w = coef / scale), and the sigmoid calibration
  p = expit(-(a f + b)) into them as well (w' = -a w, intercept' = -(a c + b)), so the
  calibrated logit is ``intercept + sum(table[field][category]) + sum(w_j x_j)``. Each
  enumeration becomes an encoding table (canonical value -> its summed one-hot weight; unknown
  -> 0, as OneHotEncoder(handle_unknown="ignore") gives all-zero columns).
* :class:`TreeEnsembleScorer` (HistGradientBoosting, the alternative family): the trees as flat
  node arrays walked level by level for all rows and trees at once, plus the same sigmoid.

Explanations are exact additive attributions in logit units:

* linear: contribution of column j = w_j (x_j - mean_j), with mean_j the training mean, summed
  over an enumeration's one-hot columns; ``base_logit`` (the logit at the training means) plus
  all contributions equals the logit;
* trees: path attribution (Saabas): each split on the path contributes the change of the
  expected subtree value (training-count weighted) it causes; the root expectations form the
  base. Also sums exactly to the logit.

Engineered features give their contribution to the contract fields they come from, split
equally (see :mod:`churn_ml.features`), so a :class:`Factor` always names a contract field.

Both scorers serialise to plain JSON-able dicts (:meth:`to_dict`, :func:`scorer_from_dict`) so a
model artifact needs no pickle on the request path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from churn_ml.features import (
    ATTRIBUTION_FIELDS,
    CATEGORICAL_FEATURES,
    CATEGORICAL_NAMES,
    FEATURE_SPEC_VERSION,
    NUMERIC_FEATURES,
    NUMERIC_NAMES,
    EngineeredColumns,
    FeatureBuilder,
    FeatureTransformer,
    as_columns,
)

SCORER_FORMAT: Final = "churn_ml.scorer/1"
IMPACT_DECIMALS: Final = 4
"""Impacts are rounded to 1e-4 logit: finer differences mean nothing to a reader, and a factor
whose impact rounds to zero is left out."""
DEFAULT_TOP_K: Final = 5

_FIELD_INDEX: Final = {name: i for i, name in enumerate(ATTRIBUTION_FIELDS)}
_SOURCES: Final[dict[str, tuple[int, ...]]] = {
    f.name: tuple(_FIELD_INDEX[s] for s in f.sources) for f in (*CATEGORICAL_FEATURES, *NUMERIC_FEATURES)
}


@dataclass(frozen=True)
class Factor:
    """One contract field's signed contribution to the churn logit (positive raises the risk)."""

    feature: str
    impact: float

    def as_dict(self) -> dict[str, Any]:
        """The contract's ``{"feature", "impact"}`` object."""
        return {"feature": self.feature, "impact": self.impact}


@dataclass(frozen=True, eq=False)
class Contributions:
    """Per-row, per-contract-field contributions in logit units.

    ``base_logit + values.sum(axis=1)`` equals the model's logit for every row.
    """

    base_logit: float
    fields: tuple[str, ...]
    values: np.ndarray

    def logits(self) -> np.ndarray:
        """The logits these contributions add up to."""
        return self.base_logit + self.values.sum(axis=1)


@runtime_checkable
class Scorer(Protocol):
    """What the web layer uses; both compiled scorers implement it."""

    algorithm: str
    features: FeatureBuilder

    def logits(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray: ...

    def predict_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray: ...

    def contributions(self, columns: Mapping[str, Any] | pd.DataFrame) -> Contributions: ...

    def explain(self, columns: Mapping[str, Any] | pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> list[list[Factor]]: ...

    def score_one(self, record: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> tuple[float, list[Factor]]: ...

    def to_dict(self) -> dict[str, Any]: ...


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow warnings for very negative logits."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits))


def _sigmoid_one(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    e = math.exp(logit)
    return e / (1.0 + e)


def _columns(data: Mapping[str, Any] | pd.DataFrame) -> Mapping[str, Any]:
    return as_columns(data) if isinstance(data, pd.DataFrame) else data


def _top_factors(row: Sequence[float], top_k: int) -> list[Factor]:
    """The top_k fields by absolute contribution, rounded; fields rounding to 0 are dropped."""
    order = sorted(range(len(row)), key=lambda i: -abs(row[i]))
    out: list[Factor] = []
    for i in order[:top_k]:
        impact = round(float(row[i]), IMPACT_DECIMALS)
        if impact == 0.0:
            break
        out.append(Factor(ATTRIBUTION_FIELDS[i], impact + 0.0))  # + 0.0 turns -0.0 into 0.0
    return out


def _explain_matrix(values: np.ndarray, top_k: int) -> list[list[Factor]]:
    if values.shape[0] == 0:
        return []
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    picked = np.round(np.take_along_axis(values, order, axis=1), IMPACT_DECIMALS)
    fields = ATTRIBUTION_FIELDS
    out = []
    for idx_row, val_row in zip(order.tolist(), picked.tolist(), strict=True):
        factors = []
        for i, v in zip(idx_row, val_row, strict=True):
            if v == 0.0:
                break
            factors.append(Factor(fields[i], v + 0.0))
        out.append(factors)
    return out


def _encode_float(x: float) -> float | str:
    """Floats for strict JSON: infinities as strings."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _decode_float(x: float | str) -> float:
    return float(x)


# --------------------------------------------------------------------------------------------
# Linear (logistic regression)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LinearScorer:
    """Calibrated logistic regression folded into one linear function of the engineered features.

    ``category_weights[f][k]`` is the logit weight of category k of categorical feature f
    (unknown categories weigh 0); ``numeric_weights[j]`` multiplies numeric feature j.
    ``category_means[f]`` and ``numeric_means[j]`` are the training means of those terms, used to
    centre the explanations.
    """

    features: FeatureBuilder
    intercept: float
    category_weights: Mapping[str, tuple[float, ...]]
    category_means: Mapping[str, float]
    numeric_weights: Mapping[str, float]
    numeric_means: Mapping[str, float]
    algorithm: str = "logistic"
    _tables: dict[str, np.ndarray] = field(init=False, repr=False)
    _centered_tables: dict[str, np.ndarray] = field(init=False, repr=False)
    _numeric_terms: tuple[tuple[str, float, float], ...] = field(init=False, repr=False)
    _one_categorical: tuple[tuple[str, tuple[float, ...], tuple[int, ...], float], ...] = field(init=False, repr=False)
    _one_numeric: tuple[tuple[str, float, float, tuple[int, ...], float], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Precomputed lookups; object.__setattr__ because the dataclass is frozen.
        tables = {}
        centered = {}
        one_cat = []
        for name in CATEGORICAL_NAMES:
            weights = self.category_weights[name]
            # Trailing 0.0: code -1 (unknown) indexes it.
            tables[name] = np.array([*weights, 0.0], dtype=np.float64)
            centered[name] = tables[name] - self.category_means[name]
            sources = _SOURCES[name]
            one_cat.append((name, tuple(centered[name].tolist()), sources, 1.0 / len(sources)))
        numeric_terms = tuple(
            (name, self.numeric_weights[name], self.numeric_means[name])
            for name in NUMERIC_NAMES
            # A zero weight (e.g. age when training data never had it) cannot change the logit.
            if self.numeric_weights[name] != 0.0
        )
        one_num = tuple((name, w, m, _SOURCES[name], 1.0 / len(_SOURCES[name])) for name, w, m in numeric_terms)
        object.__setattr__(self, "_tables", tables)
        object.__setattr__(self, "_centered_tables", centered)
        object.__setattr__(self, "_numeric_terms", numeric_terms)
        object.__setattr__(self, "_one_categorical", tuple(one_cat))
        object.__setattr__(self, "_one_numeric", one_num)

    @property
    def base_logit(self) -> float:
        """The logit of a customer at the training means: the base of every explanation."""
        return float(
            self.intercept
            + sum(self.category_means[name] for name in CATEGORICAL_NAMES)
            + sum(w * m for _, w, m in self._numeric_terms)
        )

    def _logits(self, eng: EngineeredColumns) -> np.ndarray:
        out = np.full(eng.n, self.intercept, dtype=np.float64)
        for name, table in self._tables.items():
            out += table[eng.codes[name]]
        for name, w, _ in self._numeric_terms:
            out += w * eng.numeric[name]
        return out

    def logits(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Calibrated logits of n rows of canonical columns."""
        return self._logits(self.features.transform(_columns(columns)))

    def predict_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Churn probabilities of n rows (1-D array). Rows must be valid; a null required number gives NaN."""
        return sigmoid(self.logits(columns))

    def contributions(self, columns: Mapping[str, Any] | pd.DataFrame) -> Contributions:
        """Exact per-field contributions: coefficient x (value - training mean), per field."""
        eng = self.features.transform(_columns(columns))
        values = np.zeros((eng.n, len(ATTRIBUTION_FIELDS)), dtype=np.float64)
        for name, table in self._centered_tables.items():
            _spread(values, table[eng.codes[name]], _SOURCES[name])
        for name, w, m in self._numeric_terms:
            _spread(values, w * (eng.numeric[name] - m), _SOURCES[name])
        return Contributions(self.base_logit, ATTRIBUTION_FIELDS, values)

    def explain(self, columns: Mapping[str, Any] | pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> list[list[Factor]]:
        """The top_k factors of each row, largest absolute impact first."""
        return _explain_matrix(self.contributions(columns).values, top_k)

    def score_one(self, record: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> tuple[float, list[Factor]]:
        """(probability, top factors) of one canonical record dict, in pure Python (~15 us)."""
        codes, numeric = self.features.transform_one(record)
        contrib = [0.0] * len(ATTRIBUTION_FIELDS)
        logit = self.base_logit
        for name, table, sources, share in self._one_categorical:
            c = table[codes[name]]
            logit += c
            if len(sources) == 1:
                contrib[sources[0]] += c
            else:
                for s in sources:
                    contrib[s] += c * share
        for name, w, m, sources, share in self._one_numeric:
            c = w * (numeric[name] - m)
            logit += c
            if len(sources) == 1:
                contrib[sources[0]] += c
            else:
                c *= share
                for s in sources:
                    contrib[s] += c
        return _sigmoid_one(logit), _top_factors(contrib, top_k)

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


def _spread(values: np.ndarray, contribution: np.ndarray, sources: tuple[int, ...]) -> None:
    """Add a feature's contribution to its source fields, split equally."""
    if len(sources) == 1:
        values[:, sources[0]] += contribution
        return
    share = contribution / len(sources)
    for s in sources:
        values[:, s] += share


def _check_header(data: Mapping[str, Any], kind: str) -> None:
    if data.get("format") != SCORER_FORMAT:
        raise ValueError(f"not a scorer of format {SCORER_FORMAT!r}")
    if data.get("kind") != kind:
        raise ValueError(f"scorer kind {data.get('kind')!r} is not {kind!r}")
    if str(data.get("feature_spec_version")) != FEATURE_SPEC_VERSION:
        raise ValueError(
            f"scorer was built for feature spec {data.get('feature_spec_version')!r}, "
            f"this code computes {FEATURE_SPEC_VERSION!r}"
        )


# --------------------------------------------------------------------------------------------
# Tree ensemble (HistGradientBoosting)
# --------------------------------------------------------------------------------------------

# Layout of the model matrix the trees split on: the one-hot columns of every categorical
# feature (in spec and category order), then the numeric features. compile_pipeline checks it
# against the fitted ColumnTransformer's output names.
_MATRIX_COLUMNS: Final = tuple(
    [(f.name, k) for f in CATEGORICAL_FEATURES for k in range(len(f.categories))]
    + [(name, -1) for name in NUMERIC_NAMES]
)
_MATRIX_SOURCES: Final = tuple(_SOURCES[name] for name, _ in _MATRIX_COLUMNS)


def _model_matrix(eng: EngineeredColumns) -> np.ndarray:
    """The (n, d) float matrix of one-hot and numeric columns, as the ColumnTransformer makes it."""
    out = np.empty((eng.n, len(_MATRIX_COLUMNS)), dtype=np.float64)
    j = 0
    for feature in CATEGORICAL_FEATURES:
        codes = eng.codes[feature.name]
        k = len(feature.categories)
        out[:, j : j + k] = codes[:, None] == np.arange(k)
        j += k
    for name in NUMERIC_NAMES:
        out[:, j] = eng.numeric[name]
        j += 1
    return out


def _model_row(codes: Mapping[str, int], numeric: Mapping[str, float]) -> list[float]:
    row: list[float] = []
    for feature in CATEGORICAL_FEATURES:
        one_hot = [0.0] * len(feature.categories)
        code = codes[feature.name]
        if code >= 0:
            one_hot[code] = 1.0
        row.extend(one_hot)
    row.extend(numeric[name] for name in NUMERIC_NAMES)
    return row


@dataclass(frozen=True, eq=False)
class TreeEnsembleScorer:
    """Calibrated gradient-boosted trees as flat node arrays.

    Nodes of all trees live in one set of arrays; ``roots[t]`` is the first node of tree t. A
    leaf points to itself on both sides (feature 0, threshold +inf), so a fixed number of
    ``max_depth`` steps walks every row to its leaf without per-row branching. ``value`` is the
    leaf value for leaves and the training-count weighted mean of the leaves below for internal
    nodes (used by the path attribution). The calibrated logit is ``-(a * raw + b)`` with
    ``raw = baseline + sum of leaf values``.
    """

    features: FeatureBuilder
    baseline: float
    calibration_a: float
    calibration_b: float
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    is_leaf: np.ndarray
    max_depth: int
    algorithm: str = "gradient_boosting"
    _column_fields: np.ndarray = field(init=False, repr=False)
    _py: tuple[list[Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # (d, n_fields) matrix spreading a column's contribution over its source fields.
        spread = np.zeros((len(_MATRIX_COLUMNS), len(ATTRIBUTION_FIELDS)))
        for j, sources in enumerate(_MATRIX_SOURCES):
            for s in sources:
                spread[j, s] += 1.0 / len(sources)
        object.__setattr__(self, "_column_fields", spread)
        py = (
            self.roots.tolist(),
            self.feature.tolist(),
            self.threshold.tolist(),
            self.missing_left.tolist(),
            self.left.tolist(),
            self.right.tolist(),
            self.value.tolist(),
            self.is_leaf.tolist(),
        )
        object.__setattr__(self, "_py", py)

    @property
    def base_logit(self) -> float:
        """Calibrated logit of the expected raw score (baseline + every root's expectation)."""
        raw = self.baseline + float(self.value[self.roots].sum())
        return -(self.calibration_a * raw + self.calibration_b)

    def _walk(self, x: np.ndarray, attribute: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Leaves reached (n, trees) and, if asked, per-column path contributions (n, d) of raw score."""
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        contrib = np.zeros_like(x) if attribute else None
        for _ in range(self.max_depth):
            f = self.feature[node]
            v = x[rows, f]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            nxt = np.where(go_left, self.left[node], self.right[node])
            if contrib is not None:
                delta = self.value[nxt] - self.value[node]  # zero for a leaf (it points to itself)
                np.add.at(contrib, (np.broadcast_to(rows, f.shape), f), delta)
            node = nxt
        return node, contrib

    def _chunks(self, eng: EngineeredColumns) -> Iterator[tuple[int, EngineeredColumns]]:
        """Row slices small enough that the (rows x trees) index arrays stay ~8 MB."""
        step = max(1, 1_048_576 // max(1, len(self.roots)))
        for start in range(0, eng.n, step):
            yield (
                start,
                EngineeredColumns(
                    n=min(step, eng.n - start),
                    codes={k: v[start : start + step] for k, v in eng.codes.items()},
                    numeric={k: v[start : start + step] for k, v in eng.numeric.items()},
                ),
            )

    def _raw(self, eng: EngineeredColumns) -> np.ndarray:
        out = np.empty(eng.n, dtype=np.float64)
        for start, part in self._chunks(eng):
            leaves, _ = self._walk(_model_matrix(part), attribute=False)
            out[start : start + part.n] = self.baseline + self.value[leaves].sum(axis=1)
        return out

    def logits(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Calibrated logits of n rows of canonical columns."""
        raw = self._raw(self.features.transform(_columns(columns)))
        return -(self.calibration_a * raw + self.calibration_b)

    def predict_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Churn probabilities of n rows (1-D array)."""
        return sigmoid(self.logits(columns))

    def contributions(self, columns: Mapping[str, Any] | pd.DataFrame) -> Contributions:
        """Path (Saabas) attributions per contract field, in calibrated logit units."""
        eng = self.features.transform(_columns(columns))
        values = np.empty((eng.n, len(ATTRIBUTION_FIELDS)), dtype=np.float64)
        for start, part in self._chunks(eng):
            _, raw_contrib = self._walk(_model_matrix(part), attribute=True)
            assert raw_contrib is not None
            values[start : start + part.n] = (-self.calibration_a) * (raw_contrib @ self._column_fields)
        return Contributions(self.base_logit, ATTRIBUTION_FIELDS, values)

    def explain(self, columns: Mapping[str, Any] | pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> list[list[Factor]]:
        """The top_k factors of each row, largest absolute impact first."""
        return _explain_matrix(self.contributions(columns).values, top_k)

    def score_one(self, record: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> tuple[float, list[Factor]]:
        """(probability, top factors) of one record, in pure Python."""
        codes, numeric = self.features.transform_one(record)
        x = _model_row(codes, numeric)
        roots, feature, threshold, missing_left, left, right, value, is_leaf = self._py
        column_contrib = [0.0] * len(x)
        raw = self.baseline
        for root in roots:
            node = root
            raw += value[root]
            while not is_leaf[node]:
                f = feature[node]
                v = x[f]
                if v != v:
                    nxt = left[node] if missing_left[node] else right[node]
                else:
                    nxt = left[node] if v <= threshold[node] else right[node]
                column_contrib[f] += value[nxt] - value[node]
                node = nxt
        # raw so far is baseline + sum of root expectations; adding the path deltas gives the leaves.
        raw += sum(column_contrib)
        scale = -self.calibration_a
        contrib = [0.0] * len(ATTRIBUTION_FIELDS)
        for j, c in enumerate(column_contrib):
            if c != 0.0:
                sources = _MATRIX_SOURCES[j]
                share = scale * c / len(sources)
                for s in sources:
                    contrib[s] += share
        logit = -(self.calibration_a * raw + self.calibration_b)
        return _sigmoid_one(logit), _top_factors(contrib, top_k)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "format": SCORER_FORMAT,
            "algorithm": self.algorithm,
            "kind": "tree_ensemble",
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "features": self.features.to_dict(),
            "baseline": self.baseline,
            "calibration": {"a": self.calibration_a, "b": self.calibration_b},
            "max_depth": self.max_depth,
            "roots": self.roots.tolist(),
            "nodes": {
                "feature": self.feature.tolist(),
                "threshold": [_encode_float(t) for t in self.threshold.tolist()],
                "missing_left": self.missing_left.astype(int).tolist(),
                "left": self.left.tolist(),
                "right": self.right.tolist(),
                "value": self.value.tolist(),
                "is_leaf": self.is_leaf.astype(int).tolist(),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeEnsembleScorer:
        """Inverse of :meth:`to_dict`."""
        _check_header(data, "tree_ensemble")
        nodes = data["nodes"]
        n_nodes = len(nodes["value"])
        feature = np.asarray(nodes["feature"], dtype=np.intp)
        left = np.asarray(nodes["left"], dtype=np.intp)
        right = np.asarray(nodes["right"], dtype=np.intp)
        roots = np.asarray(data["roots"], dtype=np.intp)
        if (
            feature.min(initial=0) < 0
            or feature.max(initial=0) >= len(_MATRIX_COLUMNS)
            or left.min(initial=0) < 0
            or right.min(initial=0) < 0
            or max(left.max(initial=0), right.max(initial=0), roots.max(initial=0)) >= n_nodes
        ):
            raise ValueError("tree scorer has node or feature indices out of range")
        return cls(
            features=FeatureBuilder.from_dict(data["features"]),
            baseline=float(data["baseline"]),
            calibration_a=float(data["calibration"]["a"]),
            calibration_b=float(data["calibration"]["b"]),
            roots=roots,
            feature=feature,
            threshold=np.asarray([_decode_float(t) for t in nodes["threshold"]], dtype=np.float64),
            missing_left=np.asarray(nodes["missing_left"], dtype=bool),
            left=left,
            right=right,
            value=np.asarray(nodes["value"], dtype=np.float64),
            is_leaf=np.asarray(nodes["is_leaf"], dtype=bool),
            max_depth=int(data["max_depth"]),
            algorithm=str(data.get("algorithm", "gradient_boosting")),
        )


# --------------------------------------------------------------------------------------------
# Compilation from the fitted sklearn pipeline, and loading
# --------------------------------------------------------------------------------------------


def scorer_from_dict(data: Mapping[str, Any]) -> LinearScorer | TreeEnsembleScorer:
    """Rebuild a scorer from :meth:`to_dict` output, whichever kind it is."""
    kind = data.get("kind")
    if kind == "linear":
        return LinearScorer.from_dict(data)
    if kind == "tree_ensemble":
        return TreeEnsembleScorer.from_dict(data)
    raise ValueError(f"unknown scorer kind {kind!r}")


def _expected_encoded_names() -> list[str]:
    names = [f"categorical__{f.name}_{c}" for f in CATEGORICAL_FEATURES for c in f.categories]
    return names + [f"numeric__{name}" for name in NUMERIC_NAMES]


def compile_pipeline(pipeline: Any) -> LinearScorer | TreeEnsembleScorer:
    """Compile a pipeline built by :func:`churn_ml.training.build_pipeline` and fitted.

    Expects the steps ``features`` (FeatureTransformer), ``encode`` (ColumnTransformer: one-hot
    categoricals then numeric passthrough), ``scale`` (StandardScaler or "passthrough") and
    ``classifier`` (CalibratedClassifierCV with ``ensemble=False`` and ``method="sigmoid"`` around
    a LogisticRegression or a HistGradientBoostingClassifier). Raises ValueError otherwise,
    rather than compiling something that would score differently.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = pipeline.named_steps
    transformer = steps.get("features")
    if not isinstance(transformer, FeatureTransformer):
        raise ValueError("pipeline has no fitted 'features' step")
    builder: FeatureBuilder = transformer.builder_
    encoded_names = list(steps["encode"].get_feature_names_out())
    if encoded_names != _expected_encoded_names():
        raise ValueError("the pipeline's encoded columns do not match this feature spec")
    classifier = steps["classifier"]
    if not isinstance(classifier, CalibratedClassifierCV) or len(classifier.calibrated_classifiers_) != 1:
        raise ValueError("classifier must be a fitted CalibratedClassifierCV with ensemble=False")
    if list(classifier.classes_) != [False, True]:
        raise ValueError("classifier must be trained on boolean churn labels")
    calibrated = classifier.calibrated_classifiers_[0]
    calibrator = calibrated.calibrators[0]
    if not hasattr(calibrator, "a_"):
        raise ValueError("only sigmoid calibration folds into a compiled scorer")
    a, b = float(calibrator.a_), float(calibrator.b_)
    estimator = calibrated.estimator
    scale = steps["scale"]

    if isinstance(estimator, LogisticRegression):
        coef = estimator.coef_.ravel().astype(np.float64)
        if isinstance(scale, StandardScaler):
            mean = scale.mean_.astype(np.float64)
            std = scale.scale_.astype(np.float64)
        else:
            raise ValueError("the logistic pipeline must standardise its inputs (scale step)")
        # logit = -(a * (sum coef_j (x_j - mean_j) / std_j + c) + b)
        weights = -a * coef / std
        intercept = -(a * (float(estimator.intercept_[0]) - float(np.sum(coef * mean / std))) + b)
        category_weights: dict[str, tuple[float, ...]] = {}
        category_means: dict[str, float] = {}
        j = 0
        for feature in CATEGORICAL_FEATURES:
            k = len(feature.categories)
            category_weights[feature.name] = tuple(float(w) for w in weights[j : j + k])
            category_means[feature.name] = float(np.dot(weights[j : j + k], mean[j : j + k]))
            j += k
        numeric_weights = {}
        numeric_means = {}
        for name in NUMERIC_NAMES:
            numeric_weights[name] = float(weights[j])
            numeric_means[name] = float(mean[j])
            j += 1
        return LinearScorer(
            features=builder,
            intercept=float(intercept),
            category_weights=category_weights,
            category_means=category_means,
            numeric_weights=numeric_weights,
            numeric_means=numeric_means,
        )

    if isinstance(estimator, HistGradientBoostingClassifier):
        if scale != "passthrough" and scale is not None:
            raise ValueError("the gradient boosting pipeline must not scale its inputs")
        return _compile_trees(builder, estimator, a, b)

    raise ValueError(f"cannot compile a {type(estimator).__name__}")


def _compile_trees(builder: FeatureBuilder, model: Any, a: float, b: float) -> TreeEnsembleScorer:
    if model.n_trees_per_iteration_ != 1:
        raise ValueError("only binary gradient boosting compiles")
    features, thresholds, missing, lefts, rights, values, leaves, roots = ([] for _ in range(8))
    max_depth = 0
    for iteration in model._predictors:  # the fitted trees; sklearn has no public accessor
        nodes = iteration[0].nodes
        if nodes["is_categorical"].any():
            raise ValueError("native categorical splits are not supported; one-hot encode instead")
        offset = len(values)
        roots.append(offset)
        expected = _expected_values(nodes)
        for i, node in enumerate(nodes):
            if node["is_leaf"]:
                features.append(0)
                thresholds.append(math.inf)
                missing.append(True)
                lefts.append(offset + i)
                rights.append(offset + i)
                leaves.append(True)
            else:
                features.append(int(node["feature_idx"]))
                thresholds.append(float(node["num_threshold"]))
                missing.append(bool(node["missing_go_to_left"]))
                lefts.append(offset + int(node["left"]))
                rights.append(offset + int(node["right"]))
                leaves.append(False)
            values.append(float(expected[i]))
        max_depth = max(max_depth, int(nodes["depth"].max()))
    return TreeEnsembleScorer(
        features=builder,
        baseline=float(np.ravel(model._baseline_prediction)[0]),
        calibration_a=a,
        calibration_b=b,
        roots=np.asarray(roots, dtype=np.intp),
        feature=np.asarray(features, dtype=np.intp),
        threshold=np.asarray(thresholds, dtype=np.float64),
        missing_left=np.asarray(missing, dtype=bool),
        left=np.asarray(lefts, dtype=np.intp),
        right=np.asarray(rights, dtype=np.intp),
        value=np.asarray(values, dtype=np.float64),
        is_leaf=np.asarray(leaves, dtype=bool),
        max_depth=max_depth,
    )


def _expected_values(nodes: np.ndarray) -> np.ndarray:
    """Leaf values for leaves; for internal nodes the count-weighted mean of their children."""
    expected = nodes["value"].astype(np.float64).copy()
    counts = nodes["count"].astype(np.float64).copy()
    # Children always come after their parent in sklearn's node order, so a reverse pass sees
    # both children of a node before the node itself.
    for i in range(len(nodes) - 1, -1, -1):
        if not nodes["is_leaf"][i]:
            left, right = int(nodes["left"][i]), int(nodes["right"][i])
            total = counts[left] + counts[right]
            counts[i] = total
            expected[i] = (counts[left] * expected[left] + counts[right] * expected[right]) / total
    return expected
