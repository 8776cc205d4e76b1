"""Making a scorer from the fitted sklearn pipeline, after training (rebuilding one from the JSON
an artifact holds is churn_ml.scoring.serialised, which needs no scikit-learn)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from churn_ml.feature_transformer import FeatureTransformer
from churn_ml.features import CATEGORICAL_FEATURES, NUMERIC_NAMES, FeatureBuilder
from churn_ml.scoring.linear import LinearScorer
from churn_ml.scoring.serialised import scorer_from_dict
from churn_ml.scoring.trees import TreeEnsembleScorer

__all__ = ["compile_pipeline", "scorer_from_dict"]


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
