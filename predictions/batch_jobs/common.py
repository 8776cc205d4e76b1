"""What the parts of a batch job share: its errors, the chunk statuses still open, the rejected-rows sample size."""

from __future__ import annotations

from churn_infra.errors import InputError
from predictions.models import BatchChunkStatus

OPEN_CHUNK_STATUSES = (BatchChunkStatus.PENDING, BatchChunkStatus.RUNNING)


MAX_REJECTED_SAMPLE = 100


class BatchJobInputError(InputError):
    """The job cannot be created as asked; ``errors`` maps fields to messages."""


class BatchJobStateError(Exception):
    """The job is not in a state that allows this action."""
