"""Contract-field columns from dict records: JSON files, database rows, HTTP API pages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from churn_ml.schema import MISSING
from customers.ingestion.mapping import (
    IGNORE,
    LABEL,
    SKIPPED_COLUMNS,
    ColumnPlan,
    get_path,
    plan_columns,
)
from customers.ingestion.readers.chunks import BadRow, Chunk


class RecordColumns:
    """Builds contract-field columns from dict records, mapping keys once per distinct key."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})
        self.paths = {path: target for path, target in self.mapping.items() if "." in path}
        self._targets: dict[str, str | None] = {}
        self.ignored: set[str] = set()

    def target(self, key: str) -> str | None:
        if key in self._targets:
            return self._targets[key]
        plan: ColumnPlan = plan_columns([key], {k: v for k, v in self.mapping.items() if "." not in k})
        if plan.label:
            target: str | None = LABEL
        elif plan.fields:
            target = plan.fields[key]
        else:
            target = None
            if key not in SKIPPED_COLUMNS and self.mapping.get(key) != IGNORE and key not in self.paths:
                self.ignored.add(key)
        self._targets[key] = target
        return target

    def build(
        self,
        records: list[Mapping[str, Any]],
        *,
        index: int,
        lines: np.ndarray,
        malformed: list[BadRow] | None = None,
        progress: float | None = None,
        cursor: Any = None,
    ) -> Chunk:
        n = len(records)
        columns: dict[str, np.ndarray] = {}
        for i, record in enumerate(records):
            for key, value in record.items():
                target = self.target(key) if isinstance(key, str) else None
                if target is None:
                    continue
                column = columns.get(target)
                if column is None:
                    column = columns[target] = np.full(n, MISSING, dtype=object)
                column[i] = value
            for path, target in self.paths.items():
                if target == IGNORE:
                    continue
                try:
                    value = get_path(record, path)
                except KeyError:
                    continue
                column = columns.get(target)
                if column is None:
                    column = columns[target] = np.full(n, MISSING, dtype=object)
                column[i] = value
        labels = columns.pop(LABEL, None)
        if labels is not None:
            labels = np.where(labels == MISSING, None, labels)
        return Chunk(
            index=index,
            n=n,
            columns=columns,
            lines=lines,
            raw=lambda i: dict(records[i]),
            labels=labels,
            malformed=malformed or [],
            progress=progress,
            cursor=cursor,
        )
