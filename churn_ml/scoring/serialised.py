"""A scorer rebuilt from the JSON an artifact holds: what a web worker loads, with no scikit-learn."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from churn_ml.scoring.linear import LinearScorer
from churn_ml.scoring.trees import TreeEnsembleScorer


def scorer_from_dict(data: Mapping[str, Any]) -> LinearScorer | TreeEnsembleScorer:
    """Rebuild a scorer from :meth:`to_dict` output, whichever kind it is."""
    kind = data.get("kind")
    if kind == "linear":
        return LinearScorer.from_dict(data)
    if kind == "tree_ensemble":
        return TreeEnsembleScorer.from_dict(data)
    raise ValueError(f"unknown scorer kind {kind!r}")
