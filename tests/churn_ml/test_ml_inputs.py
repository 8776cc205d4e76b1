"""The inputs snapshot: one format from both writers, read back to the record's fields."""

from __future__ import annotations

import json

import numpy as np

from churn_ml.inputs import INPUTS_LAYOUT, snapshot_fields, snapshot_text, snapshot_texts
from churn_ml.schema import FIELD_ORDER, load_telco_csv, validate_records


def test_the_vectorised_writer_equals_the_one_record_writer_and_reads_back():
    frame, _ = load_telco_csv("data/telco_customer_churn.csv")
    records = frame.head(400).to_dict("records")
    for i, r in enumerate(records):
        r["customer_id"] = f"T-{i}"
        r["total_charges"] = None if i % 7 == 0 and r["tenure_months"] <= 1 else r["total_charges"]
        r["gender"] = None if i % 3 == 0 else r["gender"]
        r["age"] = 30 + i % 50 if i % 5 == 0 else None
        r["income"] = 1234.5 * i if i % 4 == 0 else None
    result = validate_records(records, strict=False)
    assert not result.errors
    texts = snapshot_texts(result.columns)
    for i, text in enumerate(texts):
        record = result.record(i)
        assert text == snapshot_text(record)
        fields = snapshot_fields(json.loads(text))
        assert fields == {name: record[name] for name in FIELD_ORDER}
    assert set(INPUTS_LAYOUT) == set(FIELD_ORDER)


def test_escaping_applies_to_every_row():
    frame, _ = load_telco_csv("data/telco_customer_churn.csv")
    result = validate_records(frame.head(50).to_dict("records"), strict=False)
    assert snapshot_texts(result.columns, escape=lambda s: s.replace("No", "N\\o")) == [
        t.replace("No", "N\\o") for t in snapshot_texts(result.columns)]


def test_older_and_shorter_snapshots_still_read():
    assert snapshot_fields(None) is None
    # single predictions stored the record as an object before snapshots were compact
    assert snapshot_fields({"customer_id": "C-1", "tenure_months": 3, "contract_type": "One year"}) == {
        "tenure_months": 3, "contract_type": "One year"}
    # a snapshot written before a field was appended lacks it
    assert snapshot_fields([None, True]) == {INPUTS_LAYOUT[0]: None, INPUTS_LAYOUT[1]: True}
    assert snapshot_texts({name: np.array([]) for name in FIELD_ORDER}) == []
