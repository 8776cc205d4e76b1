"""The active model, kept in memory by each process and swapped when another version is promoted.

Every request asks ``active_model()``. At most once a second per process it compares a version
stamp kept in the shared cache with the model it holds (read on the request's API-key round
trip when there is one, see churn_infra.cache_riders; one cache read otherwise), so a promotion or roll
back reaches every web and worker process within about a second, with no restart. A corrupt or
tampered artifact is refused and the model already loaded keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from churn_infra import cache_riders
from churn_infra.outages import ServiceUnavailable
from modelregistry.models import ModelVersion

logger = logging.getLogger(__name__)

STAMP_KEY = "modelregistry:active-stamp"
STAMP_TTL_SECONDS = 60
CHECK_INTERVAL_SECONDS = 1.0


class ModelUnavailable(ServiceUnavailable):
    """No usable active model: none promoted, or its artifact cannot be loaded (a 503)."""

    code = "model_unavailable"
    retry_after = 30

    def public_detail(self) -> str:
        return f"Scoring is unavailable: {self}"


@dataclass(frozen=True)
class Challenger:
    """The version under A/B test and the share of customers (by customer_id hash) it scores."""

    version_id: int
    version: str
    scorer: Any
    traffic_percent: int
    sha256: str


@dataclass(frozen=True)
class LoadedModel:
    version_id: int
    version: str
    stamp: str
    scorer: Any
    model: Any
    challenger: Challenger | None = None

    def pick(self, customer_id: str) -> tuple[int, str, Any]:
        """(version id, version, scorer) that scores this customer: the challenger for its share."""
        challenger = self.challenger
        if challenger is not None and ab_bucket(customer_id) < challenger.traffic_percent:
            return challenger.version_id, challenger.version, challenger.scorer
        return self.version_id, self.version, self.scorer


def ab_bucket(customer_id: str) -> int:
    """0..99, stable for a customer across processes and restarts (unlike Python's hash())."""
    return zlib.crc32(customer_id.encode("utf-8")) % 100


_lock = threading.Lock()
_current: LoadedModel | None = None
_checked_at = -1e9
_refused: set[str] = set()


def _stamp_from_db() -> str:
    from modelregistry.models import ABTest, ABTestStatus

    row = ModelVersion.objects.active().values_list("pk", "artifact_sha256").first()
    if row is None:
        return "none"
    test = (
        ABTest.objects.filter(status=ABTestStatus.RUNNING)
        .values_list("pk", "challenger_id", "challenger__artifact_sha256", "traffic_percent")
        .first()
    )
    ab = f"|ab:{test[0]}:{test[1]}:{test[2]}:{test[3]}" if test else ""
    return f"{row[0]}:{row[1]}{ab}"


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


# The stamp a request's API-key round trip read for this process (churn_infra.cache_riders), and
# when: used by the next check if it is that fresh, instead of a cache call of its own.
_ridden: tuple[Any, float] | None = None
RIDDEN_FRESH_SECONDS = 0.5


def _stamp_due() -> str | None:
    return STAMP_KEY if time.monotonic() - _checked_at >= CHECK_INTERVAL_SECONDS else None


def _stamp_delivered(value: Any) -> None:
    global _ridden
    _ridden = (value, time.monotonic())


cache_riders.register(cache_riders.Rider(key=_stamp_due, deliver=_stamp_delivered))


def _current_stamp() -> str:
    global _ridden
    ridden, _ridden = _ridden, None
    if ridden is not None and ridden[0] is not None and time.monotonic() - ridden[1] < RIDDEN_FRESH_SECONDS:
        return ridden[0]
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
            same = current is not None and current.version_id == version.pk
            model = current.model if same else load_version(version)  # type: ignore[union-attr]
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
            stamp=stamp if stamp.startswith(f"{version.pk}:{version.artifact_sha256}") else _stamp_from_db(),
            scorer=model.scorer,
            model=model,
            challenger=_load_challenger(current),
        )
        _current, _checked_at = loaded, now
        _publish_serving(previous=current, version=version)
        logger.info("Serving model %s", version.version)
        return loaded


def _load_challenger(current: LoadedModel | None) -> Challenger | None:
    """The running A/B test's challenger, reusing the one already loaded; None if it won't load."""
    from churn_ml.artifact import ArtifactIntegrityError
    from modelregistry.models import ABTest, ABTestStatus

    test = ABTest.objects.filter(status=ABTestStatus.RUNNING).select_related("challenger").first()
    if test is None:
        return None
    version = test.challenger
    previous = current.challenger if current is not None else None
    if previous is not None and previous.version_id == version.pk and previous.sha256 == version.artifact_sha256:
        scorer = previous.scorer
    else:
        try:
            scorer = load_version(version).scorer
        except (ArtifactIntegrityError, OSError, ValueError) as exc:
            # The A/B test pauses (every customer meets the active model) rather than failing requests.
            logger.error("Refusing A/B challenger %s: %s", version.version, exc)
            return None
    return Challenger(
        version_id=version.pk,
        version=version.version,
        scorer=scorer,
        traffic_percent=test.traffic_percent,
        sha256=version.artifact_sha256,
    )


def _publish_serving(*, previous: LoadedModel | None, version: ModelVersion) -> None:
    """churn_active_model_info: 1 for the version this process serves, 0 for the one it replaced."""
    from churn_infra import metrics

    if previous is not None:
        previous_algorithm = getattr(previous.model, "algorithm", "") or ""
        metrics.ACTIVE_MODEL.labels(previous.version, previous_algorithm).set(0)
    metrics.ACTIVE_MODEL.labels(version.version, version.algorithm).set(1)


def active_scorer() -> Any:
    return active_model().scorer
