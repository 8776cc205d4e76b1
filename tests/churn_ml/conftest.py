"""Shared fixtures of the ML core tests: the demo data, loaded once, and models trained once.

Training is the slow part (~3 s for the default model, ~5 s for boosting), so each model is a
session fixture and every test reads it without modifying it (TrainedModel is frozen).
These tests need no Django and no database.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    # Lets `pytest tests/churn_ml` work from any directory without installing the package.
    sys.path.insert(0, str(REPO_ROOT))

from churn_ml.features import as_columns  # noqa: E402
from churn_ml.schema import load_telco_csv  # noqa: E402
from churn_ml.training import TrainedModel, train  # noqa: E402

DEMO_CSV = REPO_ROOT / "data" / "telco_customer_churn.csv"


@pytest.fixture(scope="session")
def telco() -> tuple[pd.DataFrame, np.ndarray]:
    """(canonical frame, churn labels) of the bundled demo file."""
    return load_telco_csv(str(DEMO_CSV))


@pytest.fixture(scope="session")
def telco_columns(telco: tuple[pd.DataFrame, np.ndarray]) -> dict[str, np.ndarray]:
    return as_columns(telco[0])


@pytest.fixture(scope="session")
def telco_records(telco: tuple[pd.DataFrame, np.ndarray]) -> list[dict]:
    """Every demo row as the record dict the web layer passes to score_one (None for null)."""
    frame = telco[0]
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in r.items()} for r in records]


@pytest.fixture(scope="session")
def model(telco: tuple[pd.DataFrame, np.ndarray]) -> TrainedModel:
    """The default model: train() with its defaults, as `manage.py train_model` runs it."""
    frame, labels = telco
    return train(frame, labels)


@pytest.fixture(scope="session")
def boosted(telco: tuple[pd.DataFrame, np.ndarray]) -> TrainedModel:
    """The alternative family, to test its compiled tree scorer."""
    frame, labels = telco
    return train(frame, labels, algorithm="gradient_boosting")


@pytest.fixture(scope="module", params=["model", "boosted"])
def trained(request: pytest.FixtureRequest) -> TrainedModel:
    """Each model family in turn, for tests that must hold for both."""
    return request.getfixturevalue(request.param)
