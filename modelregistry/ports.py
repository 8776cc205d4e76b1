"""What the registry needs to read about predictions, without importing the predictions app.

The predictions app sits above the registry (it scores with the registry's models), so the
registry cannot import it. The few reads the registry's triggers and A/B report need are this
small interface; predictions registers its implementation in PredictionsConfig.ready()
(predictions.readers). Live performance goes the other way: predictions computes it and writes
it into ModelLivePerformance through modelregistry.live.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class PredictionReader(Protocol):
    def outcome_pairs(
        self,
        *,
        version_id: int,
        outcomes_since: datetime | None = None,
        predicted_since: datetime | None = None,
        predicted_until: datetime | None = None,
    ) -> list[tuple[float, bool]]:
        """(probability, churned) per outcome, from the version's latest prediction before it."""

    def scored_summary(self, *, version_id: int, since: datetime, until: datetime) -> tuple[int, float | None]:
        """How many predictions the version made in [since, until] and their mean probability."""

    def recent_scored_inputs(self, *, since: datetime, limit: int) -> list[dict[str, Any]]:
        """The records sent for scoring since ``since`` (newest first, at most ``limit``)."""

    def recent_confidence(self, *, version_id: int, since: datetime, limit: int) -> tuple[int, float | None]:
        """n and mean max(p, 1 - p) of the version's most recent predictions."""


_reader: PredictionReader | None = None


def register_prediction_reader(reader: PredictionReader) -> None:
    global _reader
    _reader = reader


def prediction_reader() -> PredictionReader:
    if _reader is None:
        raise RuntimeError("No prediction reader registered: is the predictions app installed?")
    return _reader
