"""A trained model version as the platform carries it, apart from training: loading an artifact
(every web worker does) needs this, not scikit-learn."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from churn_ml.drift import ReferenceStats
from churn_ml.scoring.linear import LinearScorer
from churn_ml.scoring.trees import TreeEnsembleScorer


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """Everything a model version carries. Frozen: a trained model is never modified.

    ``pipeline`` is the fitted sklearn reference (None when an artifact was loaded without it);
    ``scorer`` is what the request path uses. ``metrics`` are measured on the held-out rows
    ``test_indices`` of the training data (recompute them with :func:`evaluate`).
    """

    algorithm: str
    scorer: LinearScorer | TreeEnsembleScorer
    pipeline: Any  # sklearn Pipeline | None
    metrics: Mapping[str, float | None]
    reference: ReferenceStats
    feature_spec_version: str
    data_fingerprint: str
    n_rows: int
    seed: int
    test_indices: np.ndarray
    candidates: Mapping[str, float] = field(default_factory=dict)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    holdout: tuple[dict[str, np.ndarray], np.ndarray] | None = None
    """The held-out rows (canonical columns) and their labels, so a registry can score them again
    with another model (the fair promotion gate); None when the model was loaded from an artifact."""

    def metadata(self) -> dict[str, Any]:
        """Plain JSON-able description (no arrays but the split, no pickles)."""
        return {
            "algorithm": self.algorithm,
            "metrics": dict(self.metrics),
            "feature_spec_version": self.feature_spec_version,
            "data_fingerprint": self.data_fingerprint,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "test_indices": self.test_indices.tolist(),
            "candidates": dict(self.candidates),
            "library_versions": dict(self.library_versions),
        }
