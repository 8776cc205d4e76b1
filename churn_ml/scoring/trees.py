"""TreeEnsembleScorer: the calibrated gradient-boosted trees as flat node arrays."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.features import (
    CATEGORICAL_FEATURES,
    FACTOR_GROUPS,
    FEATURE_SPEC_VERSION,
    NUMERIC_NAMES,
    EngineeredColumns,
    FeatureBuilder,
    RawColumns,
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
