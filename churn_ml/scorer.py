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

Explanations: one :class:`Factor` per factor group of :data:`churn_ml.features.FACTOR_GROUPS`
(a contract field, or coupled fields such as tenure and charges to date). Its impact, in
calibrated logit units, is ``logit(x) - logit(x')`` where x' is the customer with the group's
fields set to the reference customer's values and every feature recomputed from them
(:meth:`FeatureBuilder.move_record`): positive means this customer's values raise the risk
above what the reference's would give. Only the features a group feeds change, so the linear
scorer sums the weight differences of those features alone and the tree scorer re-walks only
the trees that split on them.

The impacts add up to ``logit(x) - logit(reference)`` for a model without interactions between
groups. The logistic model has two (month-to-month x log tenure, fiber x log tenure), each
leaving ``w (g(x) - g(ref)) (h(x) - h(ref))``; boosting leaves whatever interactions its trees
learnt. The sign of each factor is exact either way.

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
    CATEGORICAL_FEATURES,
    CATEGORICAL_NAMES,
    FACTOR_BY_FEATURE,
    FACTOR_GROUPS,
    FEATURE_SPEC_VERSION,
    FIELD_LABELS,
    NUMERIC_NAMES,
    EngineeredColumns,
    FactorGroup,
    FeatureBuilder,
    FeatureTransformer,
    RawColumns,
    affected_features,
    as_columns,
    move_inputs,
)

SCORER_FORMAT: Final = "churn_ml.scorer/1"
IMPACT_DECIMALS: Final = 4
"""Impacts are rounded to 1e-4 logit: finer differences mean nothing to a reader, and a factor
whose impact rounds to zero is left out."""
DEFAULT_TOP_K: Final = 5

_AFFECTED: Final[tuple[frozenset[str], ...]] = tuple(frozenset(affected_features(g.fields)) for g in FACTOR_GROUPS)
"""Per factor group, the engineered features its move to the reference recomputes."""

_FREE_NUMBERS: Final = frozenset({"monthly_charges", "total_charges", "income"})
_MEMO_KEYS: Final[tuple[tuple[str, ...] | None, ...]] = tuple(
    None if move_inputs(g.fields) & _FREE_NUMBERS else tuple(sorted(move_inputs(g.fields))) for g in FACTOR_GROUPS
)
"""Per factor group, the fields that determine a linear model's impact when they take few values
(enumerations, flags, whole months, ages): the single-record path remembers impacts by them."""
_MEMO_LIMIT: Final = 4096


@dataclass(frozen=True)
class Factor:
    """One factor's signed impact on the churn logit (positive raises the risk).

    ``feature`` is the group's leading contract field; ``fields`` and ``label`` default to the
    declared group's.
    """

    feature: str
    impact: float
    fields: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        if not self.fields or not self.label:
            fields, label = factor_fields_and_label(self.feature)
            object.__setattr__(self, "fields", self.fields or fields)
            object.__setattr__(self, "label", self.label or label)

    def as_dict(self) -> dict[str, Any]:
        """The contract's ``{"feature", "impact", "fields", "label"}`` object."""
        return {"feature": self.feature, "impact": self.impact, "fields": list(self.fields), "label": self.label}


def factor_fields_and_label(feature: str) -> tuple[tuple[str, ...], str]:
    """The fields and words of the factor group led by ``feature`` (a field outside any group: itself)."""
    group = FACTOR_BY_FEATURE.get(feature)
    if group is not None:
        return group.fields, group.label
    return (feature,), _field_label(feature)


def stored_factor(item: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``top_factors`` item with ``fields`` and ``label``. Items stored before factors had
    groups were one field's share of the logit, so they get that field alone and its words."""
    if "fields" in item and "label" in item:
        return dict(item)
    feature = str(item.get("feature", ""))
    return {**item, "fields": [feature], "label": _field_label(feature)}


def _field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


@dataclass(frozen=True, eq=False)
class Contributions:
    """Per-row, per-factor impacts in logit units: ``values[i, j]`` is factor ``groups[j]`` of row i."""

    groups: tuple[FactorGroup, ...]
    values: np.ndarray

    @property
    def fields(self) -> tuple[str, ...]:
        """The leading contract field of each column."""
        return tuple(g.feature for g in self.groups)


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


def _factor(j: int, impact: float) -> Factor:
    group = FACTOR_GROUPS[j]
    return Factor(group.feature, impact + 0.0, group.fields, group.label)  # + 0.0 turns -0.0 into 0.0


def _top_factors(row: Sequence[float], top_k: int) -> list[Factor]:
    """The top_k factors by absolute impact, rounded; factors rounding to 0 are dropped."""
    order = sorted(range(len(row)), key=lambda i: -abs(row[i]))
    out: list[Factor] = []
    for i in order[:top_k]:
        impact = round(float(row[i]), IMPACT_DECIMALS)
        if impact == 0.0:
            break
        out.append(_factor(i, impact))
    return out


def _explain_matrix(values: np.ndarray, top_k: int) -> list[list[Factor]]:
    if values.shape[0] == 0:
        return []
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    picked = np.round(np.take_along_axis(values, order, axis=1), IMPACT_DECIMALS)
    out = []
    for idx_row, val_row in zip(order.tolist(), picked.tolist(), strict=True):
        factors = []
        for i, v in zip(idx_row, val_row, strict=True):
            if v == 0.0:
                break
            factors.append(_factor(i, v))
        out.append(factors)
    return out


def _encode_float(x: float) -> float | str:
    """Floats for strict JSON: infinities as strings."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _decode_float(x: float | str) -> float:
    return float(x)


def _slice_rows(raw: RawColumns, rows: np.ndarray) -> RawColumns:
    return RawColumns(
        n=len(rows),
        codes={k: v[rows] for k, v in raw.codes.items()},
        flags={k: v[rows] for k, v in raw.flags.items()},
        numbers={k: v[rows] for k, v in raw.numbers.items()},
    )


def _moved_rows(raw: RawColumns, moved: RawColumns) -> np.ndarray:
    """Rows where a move changed any field (a row already at the reference's values has impact 0)."""
    out = np.zeros(raw.n, dtype=bool)
    for mine, theirs in ((raw.codes, moved.codes), (raw.flags, moved.flags), (raw.numbers, moved.numbers)):
        for name, column in theirs.items():
            if column is not mine[name]:
                before = mine[name]
                out |= (before != column) & ~(_isnan(before) & _isnan(column))
    return out


def _isnan(column: np.ndarray) -> np.ndarray:
    return np.isnan(column) if column.dtype.kind == "f" else np.zeros(len(column), dtype=bool)


# --------------------------------------------------------------------------------------------
# Linear (logistic regression)
# --------------------------------------------------------------------------------------------


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

    Nodes of all trees live in one set of arrays; ``roots[t]`` is the first node of tree t, and
    a tree's nodes run up to the next root. A leaf points to itself on both sides (feature 0,
    threshold +inf), so a fixed number of ``max_depth`` steps walks every row to its leaf without
    per-row branching. ``value`` is the leaf value for leaves and the training-count weighted
    mean of the leaves below for internal nodes. The calibrated logit is ``-(a * raw + b)`` with
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
    _group_trees: tuple[np.ndarray, ...] = field(init=False, repr=False)
    _py: tuple[list[Any], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Per factor group, the trees that split on a column its move recomputes: only those
        # can give the moved customer another leaf.
        tree_of_node = np.searchsorted(self.roots, np.arange(len(self.value)), side="right") - 1
        split = ~self.is_leaf
        group_trees = []
        for only in _AFFECTED:
            columns = np.array([name in only for name, _ in _MATRIX_COLUMNS])
            uses = split & columns[self.feature]
            group_trees.append(np.unique(tree_of_node[uses]).astype(np.intp))
        object.__setattr__(self, "_group_trees", tuple(group_trees))
        py = (
            self.roots.tolist(),
            self.feature.tolist(),
            self.threshold.tolist(),
            self.missing_left.tolist(),
            self.left.tolist(),
            self.right.tolist(),
            self.value.tolist(),
            self.is_leaf.tolist(),
            [t.tolist() for t in group_trees],
        )
        object.__setattr__(self, "_py", py)

    def _walk(self, x: np.ndarray, roots: np.ndarray) -> np.ndarray:
        """The leaf values (n, len(roots)) the rows of x reach in the trees starting at roots."""
        n = x.shape[0]
        node = np.broadcast_to(roots, (n, len(roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.max_depth):
            f = self.feature[node]
            v = x[rows, f]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        return self.value[node]

    def _chunks(self, raw: RawColumns) -> Iterator[tuple[int, RawColumns]]:
        """Row slices small enough that the (rows x trees) index arrays stay ~8 MB."""
        step = max(1, 1_048_576 // max(1, len(self.roots)))
        for start in range(0, raw.n, step):
            yield start, _slice_rows(raw, np.arange(start, min(start + step, raw.n)))

    def logits(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Calibrated logits of n rows of canonical columns."""
        raw_columns = self.features.encode(_columns(columns))
        out = np.empty(raw_columns.n, dtype=np.float64)
        for start, part in self._chunks(raw_columns):
            leaves = self._walk(_model_matrix(self.features.derive(part)), self.roots)
            out[start : start + part.n] = self.baseline + leaves.sum(axis=1)
        return -(self.calibration_a * out + self.calibration_b)

    def predict_proba(self, columns: Mapping[str, Any] | pd.DataFrame) -> np.ndarray:
        """Churn probabilities of n rows (1-D array)."""
        return sigmoid(self.logits(columns))

    def contributions(self, columns: Mapping[str, Any] | pd.DataFrame) -> Contributions:
        """Each factor's impact: the logit change when its fields move to the reference."""
        builder = self.features
        raw_columns = builder.encode(_columns(columns))
        values = np.empty((raw_columns.n, len(FACTOR_GROUPS)), dtype=np.float64)
        scale = -self.calibration_a
        for start, part in self._chunks(raw_columns):
            eng = builder.derive(part)
            leaves = self._walk(_model_matrix(eng), self.roots)
            for j, (group, only, trees) in enumerate(zip(FACTOR_GROUPS, _AFFECTED, self._group_trees, strict=True)):
                if len(trees) == 0:
                    values[start : start + part.n, j] = 0.0
                    continue
                moved_raw = builder.move_columns(part, group.fields)
                rows = np.flatnonzero(_moved_rows(part, moved_raw))
                impact = np.zeros(part.n, dtype=np.float64)
                if len(rows):
                    # Only the rows the move changes, through the trees it can change.
                    changed = builder.derive(_slice_rows(moved_raw, rows), only)
                    moved = EngineeredColumns(
                        n=len(rows),
                        codes={**{k: v[rows] for k, v in eng.codes.items()}, **changed.codes},
                        numeric={**{k: v[rows] for k, v in eng.numeric.items()}, **changed.numeric},
                    )
                    moved_leaves = self._walk(_model_matrix(moved), self.roots[trees])
                    impact[rows] = scale * (leaves[np.ix_(rows, trees)] - moved_leaves).sum(axis=1)
                values[start : start + part.n, j] = impact
        return Contributions(FACTOR_GROUPS, values)

    def explain(self, columns: Mapping[str, Any] | pd.DataFrame, top_k: int = DEFAULT_TOP_K) -> list[list[Factor]]:
        """The top_k factors of each row, largest absolute impact first."""
        return _explain_matrix(self.contributions(columns).values, top_k)

    def _leaves_one(self, x: list[float], trees: Sequence[int]) -> list[float]:
        roots, feature, threshold, missing_left, left, right, value, is_leaf, _ = self._py
        out = []
        for t in trees:
            node = roots[t]
            while not is_leaf[node]:
                v = x[feature[node]]
                if v != v:
                    node = left[node] if missing_left[node] else right[node]
                else:
                    node = left[node] if v <= threshold[node] else right[node]
            out.append(value[node])
        return out

    def score_one(self, record: Mapping[str, Any], top_k: int = DEFAULT_TOP_K) -> tuple[float, list[Factor]]:
        """(probability, top factors) of one record, in pure Python."""
        builder = self.features
        x = _model_row(*builder.transform_one(record))
        all_trees = range(len(self._py[0]))
        leaves = self._leaves_one(x, all_trees)
        raw = self.baseline + sum(leaves)
        scale = -self.calibration_a
        impacts = []
        for group, trees in zip(FACTOR_GROUPS, self._py[8], strict=True):
            if not trees:
                impacts.append(0.0)
                continue
            moved = _model_row(*builder.transform_one(builder.move_record(record, group.fields)))
            moved_leaves = self._leaves_one(moved, trees)
            impacts.append(scale * sum(leaves[t] - m for t, m in zip(trees, moved_leaves, strict=True)))
        logit = -(self.calibration_a * raw + self.calibration_b)
        return _sigmoid_one(logit), _top_factors(impacts, top_k)

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
