"""The active model, kept in memory by each process and swapped when another version is promoted.

Every request asks ``active_model()``. At most once a second per process it compares a version
stamp kept in the shared cache (one cache read) with the model it holds, so a promotion or roll
back reaches every web and worker process within about a second, with no restart. A corrupt or
tampered artifact is refused and the model already loaded keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from modelregistry.models import ModelVersion

logger = logging.getLogger(__name__)

STAMP_KEY = "modelregistry:active-stamp"
STAMP_TTL_SECONDS = 60
CHECK_INTERVAL_SECONDS = 1.0


class ModelUnavailable(Exception):
    """No usable active model: none promoted, or its artifact cannot be loaded."""


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    version: str
    stamp: str
    scorer: Any
    model: Any


_lock = threading.Lock()
_current: LoadedModel | None = None
_checked_at = -1e9
_refused: set[str] = set()


def _stamp_from_db() -> str:
    row = ModelVersion.objects.active().values_list("pk", "artifact_sha256").first()
    return f"{row[0]}:{row[1]}" if row else "none"


def publish_active_stamp() -> None:
    """Tell every process that the active version changed. Call after the change commits."""
    stamp = _stamp_from_db()
    try:
        cache.set(STAMP_KEY, stamp, STAMP_TTL_SECONDS)
    except Exception:
        logger.warning("Could not publish the active model stamp to the cache", exc_info=True)
    forget_local()


def forget_local() -> None:
    """Make this process re-check the active version on its next request."""
    global _checked_at
    _checked_at = -1e9


def _current_stamp() -> str:
    try:
        stamp = cache.get(STAMP_KEY)
    except Exception:
        stamp = None
    if stamp is None:
        stamp = _stamp_from_db()
        try:
            cache.set(STAMP_KEY, stamp, STAMP_TTL_SECONDS)
        except Exception:
            logger.debug("cache unavailable for the model stamp", exc_info=True)
    return stamp


def load_version(version: ModelVersion) -> Any:
    """Read and verify a version's artifact; raises ArtifactIntegrityError when the checksum fails."""
    from churn_ml.artifact import ArtifactIntegrityError, load_artifact

    if not version.artifact:
        raise ArtifactIntegrityError(f"model {version.version} has no artifact")
    with version.artifact.open("rb") as fh:
        data = fh.read()
    return load_artifact(data, version.artifact_sha256, load_pipeline=False)


def active_model() -> LoadedModel:
    global _current, _checked_at
    now = time.monotonic()
    current = _current
    if current is not None and now - _checked_at < CHECK_INTERVAL_SECONDS:
        return current
    stamp = _current_stamp()
    if current is not None and stamp == current.stamp:
        _checked_at = now
        return current
    with _lock:
        current = _current
        if current is not None and stamp == current.stamp:
            _checked_at = now
            return current
        if stamp == "none":
            _current, _checked_at = None, now
            raise ModelUnavailable("no model version is active; train one and promote it")
        version = ModelVersion.objects.active().first()
        if version is None:
            _current, _checked_at = None, now
            raise ModelUnavailable("no model version is active; train one and promote it")
        from churn_ml.artifact import ArtifactIntegrityError

        try:
            model = load_version(version)
        except (ArtifactIntegrityError, OSError, ValueError) as exc:
            _checked_at = now
            key = f"{version.pk}:{version.artifact_sha256}"
            if key not in _refused:
                _refused.add(key)
                logger.error("Refusing model %s: %s", version.version, exc)
                from modelregistry.services import model_event_record

                model_event_record(version=version, kind="load_refused", details={"error": str(exc)})
            if current is not None:
                return current
            raise ModelUnavailable(f"active model {version.version} cannot be loaded: {exc}") from exc
        loaded = LoadedModel(
            version_id=version.pk,
            version=version.version,
            stamp=f"{version.pk}:{version.artifact_sha256}",
            scorer=model.scorer,
            model=model,
        )
        _current, _checked_at = loaded, now
        _publish_serving(previous=current, version=version)
        logger.info("Serving model %s", version.version)
        return loaded


def _publish_serving(*, previous: LoadedModel | None, version: ModelVersion) -> None:
    """churn_active_model_info: 1 for the version this process serves, 0 for the one it replaced."""
    from churn_platform import metrics

    if previous is not None:
        previous_algorithm = getattr(previous.model, "algorithm", "") or ""
        metrics.ACTIVE_MODEL.labels(previous.version, previous_algorithm).set(0)
    metrics.ACTIVE_MODEL.labels(version.version, version.algorithm).set(1)


def active_scorer() -> Any:
    return active_model().scorer
