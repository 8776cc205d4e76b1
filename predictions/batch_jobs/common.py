"""What the parts of a batch job share: its errors, the chunk statuses still open, the rejected-rows sample size."""

from __future__ import annotations

from predictions.models import BatchChunkStatus

OPEN_CHUNK_STATUSES = (BatchChunkStatus.PENDING, BatchChunkStatus.RUNNING)


MAX_REJECTED_SAMPLE = 100


class BatchJobInputError(Exception):
    """The job cannot be created as asked; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class BatchJobStateError(Exception):
    """The job is not in a state that allows this action."""
