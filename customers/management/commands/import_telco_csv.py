from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from churn_ml.schema import TELCO_COLUMNS, TELCO_LABEL_COLUMN, parse_churn_labels, telco_columns, validate_columns
from customers.services import UpsertCounts, customers_upsert_validated, duplicate_rows, outcomes_bulk_record

# Rows validated and written per step; 20,000 rows of the Telco layout take about 15 MB in pandas.
CHUNK_ROWS = 20_000


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Command(BaseCommand):
    help = (
        "Import customers from a CSV in the IBM Telco Customer Churn layout. The Churn column becomes a "
        "recorded outcome. Invalid rows are listed with their reasons and not stored."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path")
        parser.add_argument("--source", default="telco-import")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in TELCO_COLUMNS if c not in header]
        if missing:
            raise CommandError(f"{path}: not in the Telco layout; missing columns {', '.join(missing)}")
        source = opts["source"]
        # The file's own time, so importing the same file twice records each outcome once.
        observed_at = datetime.fromtimestamp(int(path.stat().st_mtime), tz=UTC)
        outcome_source = f"{source}:{_file_sha256(path)[:16]}"
        total = UpsertCounts()
        rejected = 0
        outcomes = 0
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS)
        for chunk_no, chunk in enumerate(reader):
            result = validate_columns(telco_columns(chunk), len(chunk))
            valid = [int(i) for i in np.flatnonzero(result.valid)]
            superseded = duplicate_rows(result, valid)
            rows = [i for i in valid if i not in superseded]
            for i in sorted(set(result.errors) | set(superseded)):
                line = chunk_no * CHUNK_ROWS + i + 2
                reason = result.errors.get(i) or {"customer_id": [f"repeated on line {chunk_no * CHUNK_ROWS + superseded[i] + 2}"]}
                self.stderr.write(f"line {line}: rejected: {reason}")
                rejected += 1
            with transaction.atomic():
                total.add(customers_upsert_validated(result=result, rows=rows, source=source))
                if TELCO_LABEL_COLUMN in chunk.columns:
                    labels, known = parse_churn_labels(chunk[TELCO_LABEL_COLUMN])
                    ids = result.columns["customer_id"]
                    outcomes += outcomes_bulk_record(
                        labels={ids[i]: bool(labels[i]) for i in rows if known[i]},
                        observed_at=observed_at,
                        source=outcome_source,
                    )
        self.stdout.write(
            f"Imported {path.name}: created {total.created}, updated {total.updated}, unchanged {total.unchanged}, "
            f"rejected {rejected}, outcomes recorded {outcomes}."
        )
