"""What every reader yields: chunks of contract-field columns, and the rows it could not read."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

READ_BYTES = 1 << 20
# A JSON object or a CSV record larger than this is not a customer record; stop looking for its end.
MAX_RECORD_BYTES = 16 << 20
# A line that cannot be read is kept in quarantine up to this many characters.
MAX_RAW_TEXT = 10_000


@dataclass
class BadRow:
    """A row that could not be read as a record at all (wrong field count, broken JSON)."""

    line: int
    raw: dict[str, Any]
    errors: dict[str, list[str]]
    customer_id: str = ""


@dataclass
class Chunk:
    """Rows of one source, as contract-field columns, with what is needed to quarantine any of them."""

    index: int
    n: int
    columns: dict[str, Any]
    lines: np.ndarray
    raw: Callable[[int], dict[str, Any]]
    labels: Any = None
    malformed: list[BadRow] = field(default_factory=list)
    progress: float | None = None
    cursor: Any = None

    @property
    def read(self) -> int:
        return self.n + len(self.malformed)


class Reader(abc.ABC):
    """A source of chunks. ``details`` describes what was read; ``fatal`` is set when reading stopped early."""

    details: dict[str, Any]
    fatal: str = ""

    @abc.abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """The source's rows, chunk by chunk, with indexes counting from 0."""

    def notes(self) -> list[str]:
        return []


def _text_excerpt(text: str) -> str:
    return text if len(text) <= MAX_RAW_TEXT else text[:MAX_RAW_TEXT] + "..."
