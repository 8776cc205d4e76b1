"""Training: split, cross-validate, calibrate, evaluate, compile.

:func:`train` holds out a stratified 20% of the rows (:func:`split_indices`, deterministic in
the seed), runs 5-fold stratified cross-validation on the remaining 80%, fits the model on that
80% with sigmoid probability calibration (``CalibratedClassifierCV(method="sigmoid",
ensemble=False)``: the calibrator is fitted on out-of-fold decision values of the same 5 folds,
so it never sees the rows it calibrates on, and it stays a single affine map the compiled scorer
can fold in), then measures the held-out 20% and compiles the scorer.

Model family, chosen by measurement on the bundled Telco data (5,634 customers; full figures
and method in MODEL_SELECTION.md beside this file). Held-out 20% of 8 stratified splits
(seeds 0-7, :func:`compare_families`), sigmoid-calibrated, mean (min-max) ROC AUC, mean Brier:

============================================  =======================  ======
family                                        ROC AUC                  Brier
============================================  =======================  ======
logistic regression, engineered (chosen)      0.8582 (0.8418-0.8754)   0.1304
logistic regression, raw fields only          0.8530 (0.8351-0.8732)   0.1328
HistGradientBoosting depth 3, engineered      0.8548 (0.8392-0.8680)   0.1320
HistGradientBoosting depth 3, raw fields      0.8558 (0.8394-0.8704)   0.1315
HistGradientBoosting sklearn defaults         0.8404 (0.8231-0.8533)   0.1381
============================================  =======================  ======

Boosting is no better on this data, while the linear model gives cheap, stable explanations
(a factor's impact only needs the weights of the features it feeds) and a compiled scorer ~30x
faster in batches (2.2M vs 70k customers/s) and ~20x for one record with its factors (see
MODEL_SELECTION.md). ``algorithm="auto"`` still re-measures both on the training part's CV folds
and keeps logistic regression unless boosting beats it by more than ``AUTO_MARGIN`` CV ROC AUC,
so a different data set can pick boosting.

Determinism: the split, the folds, the boosting's random state all derive from ``seed``;
logistic regression (lbfgs) is deterministic; training twice with the same seed gives
bit-identical scorers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from churn_ml import evaluation
from churn_ml.drift import ReferenceStats, build_reference, numeric_reference
from churn_ml.feature_transformer import FeatureTransformer
from churn_ml.features import (
    CATEGORICAL_FEATURES,
    CATEGORICAL_NAMES,
    FEATURE_SPEC_VERSION,
    NUMERIC_NAMES,
    as_columns,
)
from churn_ml.schema import FIELD_ORDER, RECORD_FIELDS
from churn_ml.scoring.compiler import compile_pipeline
from churn_ml.scoring.linear import LinearScorer
from churn_ml.scoring.trees import TreeEnsembleScorer
from churn_ml.trained import TrainedModel

ALGORITHMS: Final = ("auto", "logistic", "gradient_boosting")
TEST_SIZE: Final = 0.2
CV_FOLDS: Final = 5
DEFAULT_SEED: Final = 42
AUTO_MARGIN: Final = 0.005
"""CV ROC AUC by which boosting must beat logistic regression for "auto" to choose it: below that
the difference is within fold noise and the linear model's speed and exact explanations win."""

LOGISTIC_C: Final = 1.0
# Depth-3 trees with a small learning rate: the best of the boosting settings we measured
# (deeper trees and larger rates overfit this 5k-row data set; see MODEL_SELECTION.md).
BOOSTING_PARAMS: Final[dict[str, Any]] = {
    "learning_rate": 0.03,
    "max_iter": 300,
    "max_depth": 3,
    "min_samples_leaf": 50,
    "early_stopping": False,
}
PROBABILITY_REFERENCE: Final = "churn_probability"
"""Name of the model-output entry in the drift reference (prediction drift)."""


def split_indices(n: int, labels: Any, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified (train, test) row indices, test = 20% of each class, both sorted.

    Defined here with numpy's PCG64 rather than taken from sklearn so the split of a given
    (labels, seed) stays the same across library versions: the registry's held-out figures can
    always be recomputed.
    """
    y = np.asarray(labels).astype(bool)
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} rows")
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in (False, True):
        members = np.flatnonzero(y == cls)
        k = round(TEST_SIZE * len(members))
        test_parts.append(rng.permutation(members)[:k])
    test = np.sort(np.concatenate(test_parts))
    mask = np.zeros(n, dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), test


def build_pipeline(algorithm: str, seed: int = DEFAULT_SEED) -> Pipeline:
    """The unfitted reference pipeline of a family: features, one-hot, scaling, calibrated model."""
    encode = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    categories=[list(f.categories) for f in CATEGORICAL_FEATURES],
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float64,
                ),
                list(CATEGORICAL_NAMES),
            ),
            ("numeric", "passthrough", list(NUMERIC_NAMES)),
        ]
    )
    if algorithm == "logistic":
        # Everything standardised (one-hots too) so the L2 penalty treats every column alike.
        scale: Any = StandardScaler()
        model: Any = LogisticRegression(C=LOGISTIC_C, max_iter=5000)
    elif algorithm == "gradient_boosting":
        scale = "passthrough"
        model = HistGradientBoostingClassifier(random_state=seed, **BOOSTING_PARAMS)
    else:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from logistic, gradient_boosting")
    classifier = CalibratedClassifierCV(model, method="sigmoid", cv=_folds(seed), ensemble=False)
    return Pipeline(
        [("features", FeatureTransformer()), ("encode", encode), ("scale", scale), ("classifier", classifier)]
    )


def _fit_threads() -> threadpool_limits:
    """One OpenMP thread while fitting.

    HistGradientBoosting parallelises with OpenMP; on a shared 2-CPU host (a web server, a CI
    runner) its threads spin-wait on each other and one fit went from 0.4 s to 12 s under load.
    Single-threaded it takes 0.6 s whatever the load, and the result is the same.
    """
    return threadpool_limits(limits=1, user_api="openmp")


def _folds(seed: int) -> StratifiedKFold:
    return StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)


def _uncalibrated(pipeline: Pipeline) -> Pipeline:
    """The same pipeline with the bare estimator as last step, for cross-validation."""
    steps = [(name, clone(step) if step != "passthrough" else step) for name, step in pipeline.steps[:-1]]
    estimator = clone(pipeline.named_steps["classifier"].estimator)
    return Pipeline([*steps, ("classifier", estimator)])


def cross_validate(frame: pd.DataFrame, labels: np.ndarray, algorithm: str, seed: int) -> np.ndarray:
    """ROC AUC of each of the 5 stratified folds (the calibration is monotone: AUC is unchanged)."""
    pipeline = _uncalibrated(build_pipeline(algorithm, seed))
    scores = []
    for fit_idx, val_idx in _folds(seed).split(np.zeros(len(labels)), labels):
        with _fit_threads():
            model = clone(pipeline).fit(frame.iloc[fit_idx], labels[fit_idx])
        p = model.predict_proba(frame.iloc[val_idx])[:, 1]
        scores.append(evaluation.roc_auc(p, labels[val_idx]))
    return np.asarray(scores, dtype=np.float64)


def data_fingerprint(frame: pd.DataFrame | Mapping[str, Any], labels: Any) -> str:
    """sha256 over the canonical columns (contract order) and the labels; row order matters.

    Numbers hash as float64 bytes with one NaN bit pattern, bools as bytes, strings as UTF-8
    separated by 0x1f with 0x00 for null, so the same data hashes the same however it was loaded.
    """
    columns = as_columns(frame)
    digest = hashlib.sha256(b"churn_ml.fingerprint/1\n")
    for name in RECORD_FIELDS:
        if name not in columns:
            continue
        values = np.asarray(columns[name])
        digest.update(name.encode() + b"\n")
        if values.dtype == bool:
            digest.update(values.astype(np.uint8).tobytes())
        elif values.dtype.kind in "iuf":
            floats = values.astype(np.float64)
            floats = np.where(np.isnan(floats), np.nan, floats)  # one canonical NaN
            digest.update(floats.astype("<f8").tobytes())
        else:
            digest.update(b"\x1f".join(b"\x00" if v is None else str(v).encode("utf-8") for v in values.tolist()))
        digest.update(b"\n")
    digest.update(b"labels\n" + np.asarray(labels).astype(bool).astype(np.uint8).tobytes())
    return digest.hexdigest()


def _frame(frame: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame.reset_index(drop=True)
    return pd.DataFrame({name: np.asarray(values) for name, values in frame.items()})


def train(
    frame: pd.DataFrame | Mapping[str, Any],
    labels: Any,
    *,
    seed: int = DEFAULT_SEED,
    algorithm: str = "auto",
) -> TrainedModel:
    """Train, evaluate on the held-out 20% and compile a churn model.

    ``frame`` holds canonical columns (as from :func:`churn_ml.schema.load_telco_csv`), ``labels``
    the churn outcomes (bool). ``algorithm`` is "logistic", "gradient_boosting" or "auto" (see the
    module docstring). Deterministic for a given seed.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    data = _frame(frame)
    y = np.asarray(labels).astype(bool)
    n = len(data)
    if len(y) != n:
        raise ValueError(f"{len(y)} labels for {n} rows")
    if y.sum() < 2 * CV_FOLDS or (~y).sum() < 2 * CV_FOLDS:
        raise ValueError("training needs at least 10 churners and 10 non-churners")

    train_idx, test_idx = split_indices(n, y, seed)
    train_frame, y_train = data.iloc[train_idx].reset_index(drop=True), y[train_idx]

    candidates: dict[str, float] = {}
    cv_scores: dict[str, np.ndarray] = {}
    families = ("logistic", "gradient_boosting") if algorithm == "auto" else (algorithm,)
    for family in families:
        cv_scores[family] = cross_validate(train_frame, y_train, family, seed)
        candidates[family] = round(float(cv_scores[family].mean()), 6)
    chosen = algorithm
    if algorithm == "auto":
        boost_gain = candidates["gradient_boosting"] - candidates["logistic"]
        chosen = "gradient_boosting" if boost_gain > AUTO_MARGIN else "logistic"

    with _fit_threads():
        pipeline = build_pipeline(chosen, seed).fit(train_frame, y_train)
    scorer = compile_pipeline(pipeline)

    test_columns = as_columns(data.iloc[test_idx])
    p_test = scorer.predict_proba(test_columns)
    report = evaluation.classification_metrics(p_test, y[test_idx])
    cv = cv_scores[chosen]
    metrics: dict[str, float | None] = {
        "roc_auc": _round(report.roc_auc),
        "pr_auc": _round(report.pr_auc),
        "accuracy": _round(report.accuracy),
        "f1": _round(report.f1),
        "brier": _round(report.brier),
        "ece": _round(report.ece),
        "cv_roc_auc_mean": _round(float(cv.mean())),
        "cv_roc_auc_std": _round(float(cv.std())),
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "positive_rate": _round(float(y.mean())),
        "test_positive_rate": _round(float(y[test_idx].mean())),
    }

    train_columns = as_columns(train_frame)
    reference = build_reference(train_columns, fields=[f for f in FIELD_ORDER if f in train_columns])
    features = dict(reference.features)
    features[PROBABILITY_REFERENCE] = numeric_reference(scorer.predict_proba(train_columns))
    reference = ReferenceStats(n_rows=reference.n_rows, features=features)

    return TrainedModel(
        algorithm=chosen,
        scorer=scorer,
        pipeline=pipeline,
        metrics=metrics,
        reference=reference,
        feature_spec_version=FEATURE_SPEC_VERSION,
        data_fingerprint=data_fingerprint(data, y),
        n_rows=n,
        seed=seed,
        test_indices=test_idx,
        candidates=candidates,
        holdout=(test_columns, y[test_idx]),
        library_versions={"scikit-learn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__},
    )


def _round(value: float | None) -> float | None:
    # Six decimals: plenty for a registry, and stable text across platforms. None (undefined,
    # e.g. AUC of a one-class set) rather than NaN, so the metrics stay valid JSON.
    return None if value is None else round(float(value), 6)


def evaluate(
    model_or_scorer: Any,
    frame: pd.DataFrame | Mapping[str, Any],
    labels: Any,
    *,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Held-out metrics of any model on the same split :func:`train` uses for this seed.

    ``model_or_scorer`` may be a TrainedModel, a compiled scorer (``predict_proba(columns)``
    returning a 1-D array) or a fitted sklearn estimator (``predict_proba(frame)`` returning
    (n, 2)). Returns :class:`churn_ml.evaluation.MetricReport` as a dict.
    """
    data = _frame(frame)
    y = np.asarray(labels).astype(bool)
    _, test_idx = split_indices(len(data), y, seed)
    test_frame = data.iloc[test_idx].reset_index(drop=True)
    if isinstance(model_or_scorer, TrainedModel):
        model_or_scorer = model_or_scorer.scorer
    if isinstance(model_or_scorer, (LinearScorer, TreeEnsembleScorer)):
        p = model_or_scorer.predict_proba(as_columns(test_frame))
    else:
        p = np.asarray(model_or_scorer.predict_proba(test_frame))
        if p.ndim == 2:
            p = p[:, 1]
    return evaluation.classification_metrics(p, y[test_idx]).as_dict()


def compare_families(
    frame: pd.DataFrame | Mapping[str, Any],
    labels: Any,
    *,
    seeds: tuple[int, ...] = tuple(range(8)),
) -> dict[str, dict[str, float]]:
    """Held-out ROC AUC and Brier of each family over several seeds' splits (MODEL_SELECTION.md).

    One split's held-out 20% (~1,100 customers) moves ROC AUC by about +-0.01 from split to split,
    more than the gap between families, so the comparison averages over ``seeds``. Returns per
    family the mean, min and max held-out ROC AUC, the mean and max Brier, the mean ECE and CV ROC AUC.
    """
    results: dict[str, dict[str, list[float]]] = {}
    for seed in seeds:
        for family in ("logistic", "gradient_boosting"):
            model = train(frame, labels, seed=seed, algorithm=family)
            row = results.setdefault(family, {"roc_auc": [], "brier": [], "ece": [], "cv_roc_auc_mean": []})
            for key in row:
                row[key].append(float(model.metrics[key]))
    summary: dict[str, dict[str, float]] = {}
    for family, row in results.items():
        summary[family] = {
            "roc_auc_mean": round(float(np.mean(row["roc_auc"])), 4),
            "roc_auc_min": round(float(np.min(row["roc_auc"])), 4),
            "roc_auc_max": round(float(np.max(row["roc_auc"])), 4),
            "brier_mean": round(float(np.mean(row["brier"])), 4),
            "brier_max": round(float(np.max(row["brier"])), 4),
            "ece_mean": round(float(np.mean(row["ece"])), 4),
            "cv_roc_auc_mean": round(float(np.mean(row["cv_roc_auc_mean"])), 4),
            "splits": float(len(seeds)),
        }
    return summary


BACKTEST_TEST_SHARE: Final = 0.2


def backtest(
    frame: pd.DataFrame | Mapping[str, Any],
    labels: Any,
    dates: Any,
    *,
    seed: int = DEFAULT_SEED,
    algorithm: str = "logistic",
) -> dict[str, Any]:
    """Train on the older 80% of rows (by ``dates``) and measure on the newer 20%.

    Returns ``{"result": {...} | None, "reason": str}``: result holds the cut-off date, both
    sizes and the newer rows' ROC AUC, Brier, ECE and positive rate; the reason says why there
    is none (no dates, one date only, too few rows of a class on either side).
    """
    if dates is None:
        return {"result": None, "reason": "The training data has no dates (the Telco file has none), so there is "
                "no older and newer part to backtest on."}
    data = _frame(frame)
    y = np.asarray(labels).astype(bool)
    when = np.asarray(dates, dtype="datetime64[s]")
    if len(np.unique(when)) < 2:
        return {"result": None, "reason": "Every label was observed at the same time; there is no older part."}
    order = np.argsort(when, kind="mergesort")
    cut = round(len(order) * (1 - BACKTEST_TEST_SHARE))
    older, newer = order[:cut], order[cut:]
    if min(y[older].sum(), (~y[older]).sum()) < 2 * CV_FOLDS or y[newer].all() or not y[newer].any():
        return {"result": None, "reason": "Too few churners or stayers in the older or newer part."}
    model = train(data.iloc[older], y[older], seed=seed, algorithm=algorithm)
    p = model.scorer.predict_proba(as_columns(data.iloc[newer].reset_index(drop=True)))
    report = evaluation.classification_metrics(p, y[newer])
    return {
        "result": {
            "cutoff": str(when[newer[0]]),
            "n_train": len(older),
            "n_test": len(newer),
            "roc_auc": _round(report.roc_auc),
            "brier": _round(report.brier),
            "ece": _round(report.ece),
            "test_positive_rate": _round(report.positive_rate),
        },
        "reason": "Trained on the older 80% of rows by the date each label was observed, measured on the newer 20%.",
    }
