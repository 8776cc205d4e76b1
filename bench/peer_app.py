"""The bare peer of bench_scoring_api.py: FastAPI calling the sklearn Pipeline directly.

No auth, no validation beyond FastAPI's JSON parsing, no storage: what an endpoint that simply
wraps the fitted Pipeline costs. Loads the pipeline from the artifact named by PEER_ARTIFACT.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from fastapi import FastAPI

from churn_ml.artifact import load_artifact, sha256_hex
from churn_ml.schema import RECORD_FIELDS

_data = Path(os.environ["PEER_ARTIFACT"]).read_bytes()
_model = load_artifact(_data, sha256_hex(_data), load_pipeline=True)
_pipeline = _model.pipeline
app = FastAPI()


@app.post("/predict")
def predict(record: dict) -> dict:
    row = {name: [record.get(name)] for name in RECORD_FIELDS}
    frame = pd.DataFrame(row)
    for name in ("age", "income", "total_charges", "tenure_months", "monthly_charges"):
        frame[name] = frame[name].astype(float)
    probability = float(_pipeline.predict_proba(frame)[0, 1])
    return {"customer_id": record.get("customer_id"), "churn_probability": probability}
