"""The Scorer protocol both compiled scorers implement, and what they share: the logistic
function, the JSON header of a serialised scorer, the features each factor group's move recomputes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.features import (
    FACTOR_GROUPS,
    FEATURE_SPEC_VERSION,
    FeatureBuilder,
    affected_features,
    as_columns,
)
from churn_ml.scoring.factors import DEFAULT_TOP_K, Contributions, Factor

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

SCORER_FORMAT: Final = "churn_ml.scorer/1"


_AFFECTED: Final[tuple[frozenset[str], ...]] = tuple(frozenset(affected_features(g.fields)) for g in FACTOR_GROUPS)
"""Per factor group, the engineered features its move to the reference recomputes."""


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
