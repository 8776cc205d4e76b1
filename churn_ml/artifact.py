"""Model artifacts: one file per model version, checked before anything in it is trusted.

An artifact is a zip archive holding

* ``manifest.json``: format, algorithm, metrics, fingerprint, split, library versions;
* ``scorer.json``: the compiled scorer (all the request path needs);
* ``reference.json``: the drift reference statistics;
* ``pipeline.joblib``: the pickled sklearn reference pipeline (optional to load).

Everything but the pipeline is plain JSON, so serving needs no unpickling at all
(``load_artifact(..., load_pipeline=False)``). Whoever stores an artifact keeps its sha256;
:func:`load_artifact` compares the bytes with it first and raises
:class:`ArtifactIntegrityError` on any difference, before opening the archive, so a corrupt or
tampered file never reaches the JSON parser, let alone pickle.

The archive is written deterministically (fixed entry order and timestamps, sorted JSON keys):
the same trained model always gives the same bytes and therefore the same checksum.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from typing import Any, Final

import joblib
import numpy as np

from churn_ml.drift import ReferenceStats
from churn_ml.features import FEATURE_SPEC_VERSION
from churn_ml.scoring.serialised import scorer_from_dict
from churn_ml.trained import TrainedModel

ARTIFACT_FORMAT: Final = "churn_ml.artifact/1"
_FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no wall-clock time in the bytes
_MAX_ENTRY_BYTES: Final = 256 * 1024 * 1024  # refuse zip bombs even in a checksummed file


class ArtifactError(ValueError):
    """The bytes are not a usable model artifact."""


class ArtifactIntegrityError(ArtifactError):
    """The artifact's sha256 differs from the expected one: corrupt or tampered; nothing was loaded."""


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of the bytes."""
    return hashlib.sha256(data).hexdigest()


def _json_bytes(value: Any) -> bytes:
    # allow_nan=False: strict JSON that any consumer can parse (undefined metrics are null).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def dump_artifact(model: TrainedModel, *, include_pipeline: bool = True) -> bytes:
    """Serialise a trained model to the bytes of one artifact file."""
    manifest = {"format": ARTIFACT_FORMAT, **model.metadata(), "has_pipeline": False}
    entries: list[tuple[str, bytes]] = [
        ("scorer.json", _json_bytes(model.scorer.to_dict())),
        ("reference.json", _json_bytes(model.reference.to_dict())),
    ]
    if include_pipeline and model.pipeline is not None:
        buffer = io.BytesIO()
        joblib.dump(model.pipeline, buffer)
        entries.append(("pipeline.joblib", buffer.getvalue()))
        manifest["has_pipeline"] = True
    entries.insert(0, ("manifest.json", _json_bytes(manifest)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return out.getvalue()


def verify(data: bytes, expected_sha256: str) -> None:
    """Raise ArtifactIntegrityError unless sha256(data) equals expected_sha256 (hex, any case)."""
    if not isinstance(expected_sha256, str) or len(expected_sha256) != 64:
        raise ArtifactIntegrityError("expected sha256 must be 64 hex characters")
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, expected_sha256.lower()):
        raise ArtifactIntegrityError(
            f"artifact checksum mismatch: expected sha256 {expected_sha256.lower()}, got {actual}; "
            "the file is corrupt or was modified, refusing to load it"
        )


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ArtifactError(f"artifact has no {name}") from None
    if info.file_size > _MAX_ENTRY_BYTES:
        raise ArtifactError(f"artifact entry {name} is too large ({info.file_size} bytes)")
    return archive.read(name)


def load_artifact(data: bytes, expected_sha256: str, *, load_pipeline: bool = True) -> TrainedModel:
    """Verify the checksum, then rebuild the TrainedModel.

    With ``load_pipeline=False`` the pickled sklearn pipeline is not touched (``pipeline`` is
    None): what a web worker wants, since the compiled scorer is all it uses. Raises
    ArtifactIntegrityError on a checksum mismatch, ArtifactError on a malformed artifact.
    """
    verify(data, expected_sha256)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ArtifactError(f"artifact is not a zip archive: {exc}") from None
    with archive:
        try:
            manifest = json.loads(_read(archive, "manifest.json"))
            scorer_data = json.loads(_read(archive, "scorer.json"))
            reference_data = json.loads(_read(archive, "reference.json"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"artifact JSON is malformed: {exc}") from None
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"unsupported artifact format {manifest.get('format')!r}")
        if str(manifest.get("feature_spec_version")) != FEATURE_SPEC_VERSION:
            raise ArtifactError(
                f"artifact uses feature spec {manifest.get('feature_spec_version')!r}; "
                f"this code computes {FEATURE_SPEC_VERSION!r}"
            )
        try:
            scorer = scorer_from_dict(scorer_data)
            reference = ReferenceStats.from_dict(reference_data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"artifact content is invalid: {exc}") from None
        pipeline = None
        if load_pipeline and manifest.get("has_pipeline"):
            # Safe only because the checksum above matched the one recorded when we wrote it.
            pipeline = joblib.load(io.BytesIO(_read(archive, "pipeline.joblib")))
    metrics = dict(manifest["metrics"])
    return TrainedModel(
        algorithm=str(manifest["algorithm"]),
        scorer=scorer,
        pipeline=pipeline,
        metrics=metrics,
        reference=reference,
        feature_spec_version=str(manifest["feature_spec_version"]),
        data_fingerprint=str(manifest["data_fingerprint"]),
        n_rows=int(manifest["n_rows"]),
        seed=int(manifest["seed"]),
        test_indices=np.asarray(manifest["test_indices"], dtype=np.int64),
        candidates=dict(manifest.get("candidates", {})),
        library_versions=dict(manifest.get("library_versions", {})),
    )


def read_manifest(data: bytes, expected_sha256: str) -> dict[str, Any]:
    """The verified manifest alone (metrics, algorithm, fingerprint) without building a scorer."""
    verify(data, expected_sha256)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            manifest: dict[str, Any] = json.loads(_read(archive, "manifest.json"))
    except (zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ArtifactError(f"artifact is malformed: {exc}") from None
    return manifest
