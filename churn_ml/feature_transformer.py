"""The sklearn adapter of the feature builder, apart from it: only training needs scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from churn_ml.features import CATEGORICAL_NAMES, NUMERIC_NAMES, FeatureBuilder, as_columns


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """sklearn adapter around :class:`FeatureBuilder` for the reference pipeline.

    Accepts a canonical DataFrame (or mapping of columns) and returns a DataFrame of the
    engineered features, categoricals as strings so a OneHotEncoder can take them.
    """

    def fit(self, X: Any, y: Any = None) -> FeatureTransformer:
        self.builder_ = FeatureBuilder.fit(X)
        return self

    def transform(self, X: Any) -> pd.DataFrame:
        columns = as_columns(X)
        return self.builder_.to_frame(self.builder_.transform(columns))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.array([*CATEGORICAL_NAMES, *NUMERIC_NAMES], dtype=object)
