"""Artifacts: round trip, deterministic bytes, and refusal of anything whose checksum differs."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from churn_ml import artifact
from churn_ml.artifact import (
    ArtifactError,
    ArtifactIntegrityError,
    dump_artifact,
    load_artifact,
    read_manifest,
    sha256_hex,
)


@pytest.fixture(scope="module")
def blob(model) -> bytes:
    return dump_artifact(model)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_round_trip(model, blob, telco, telco_columns) -> None:
    frame, _ = telco
    loaded = load_artifact(blob, sha256_hex(blob))
    assert loaded.algorithm == model.algorithm
    assert loaded.metrics == model.metrics
    assert loaded.data_fingerprint == model.data_fingerprint
    assert loaded.n_rows == model.n_rows
    assert loaded.feature_spec_version == model.feature_spec_version
    assert loaded.candidates == model.candidates
    assert np.array_equal(loaded.test_indices, model.test_indices)
    assert loaded.reference == model.reference
    assert np.array_equal(loaded.scorer.predict_proba(telco_columns), model.scorer.predict_proba(telco_columns))
    assert np.array_equal(loaded.pipeline.predict_proba(frame), model.pipeline.predict_proba(frame))


def test_upper_case_checksum_is_accepted(blob) -> None:
    assert load_artifact(blob, sha256_hex(blob).upper(), load_pipeline=False).pipeline is None


def test_serving_load_never_unpickles(blob, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("joblib.load called")

    monkeypatch.setattr(artifact.joblib, "load", refuse)
    loaded = load_artifact(blob, sha256_hex(blob), load_pipeline=False)
    assert loaded.pipeline is None
    assert loaded.scorer is not None


def test_artifact_is_deterministic_and_small(model, blob) -> None:
    assert dump_artifact(model) == blob
    assert len(dump_artifact(model, include_pipeline=False)) < 20_000
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert archive.namelist() == ["manifest.json", "scorer.json", "reference.json", "pipeline.joblib"]
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["format"] == artifact.ARTIFACT_FORMAT
    assert manifest["metrics"]["roc_auc"] == model.metrics["roc_auc"]


@pytest.mark.parametrize("position", [0, 100, -1, "pipeline"])
def test_tampered_bytes_are_refused_before_unpickling(blob, position, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("joblib.load called on unverified bytes")

    monkeypatch.setattr(artifact.joblib, "load", refuse)
    data = bytearray(blob)
    index = blob.index(b"pipeline.joblib") + 40 if position == "pipeline" else position
    data[index] ^= 0x01
    with pytest.raises(ArtifactIntegrityError, match="checksum mismatch"):
        load_artifact(bytes(data), sha256_hex(blob))


def test_wrong_or_malformed_expected_checksum(blob) -> None:
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(blob, "0" * 64)
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(blob, "not-a-sha")
    with pytest.raises(ArtifactIntegrityError):
        read_manifest(blob[:-1], sha256_hex(blob))


def test_truncated_file_with_its_own_checksum_is_a_clear_error(blob) -> None:
    truncated = blob[: len(blob) // 2]
    with pytest.raises(ArtifactError):
        load_artifact(truncated, sha256_hex(truncated))


def test_read_manifest(blob, model) -> None:
    manifest = read_manifest(blob, sha256_hex(blob))
    assert manifest["algorithm"] == model.algorithm
    assert manifest["has_pipeline"] is True


def test_boosted_round_trip(boosted, telco_columns) -> None:
    data = dump_artifact(boosted)
    loaded = load_artifact(data, sha256_hex(data), load_pipeline=False)
    assert loaded.algorithm == "gradient_boosting"
    assert np.array_equal(loaded.scorer.predict_proba(telco_columns), boosted.scorer.predict_proba(telco_columns))
