from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.ingestion.services import ingestion_import_path
from customers.models import RunStatus

# Rejected rows printed here; the run keeps all of them (admin, API, CSV download).
_SHOWN_REJECTED = 20


class Command(BaseCommand):
    help = (
        "Import customers from a CSV (IBM Telco Customer Churn layout, or the contract's field names) through the "
        "ingestion pipeline: the Churn column becomes recorded outcomes, invalid rows are quarantined with their "
        "reasons, and the run is kept as an IngestionRun. The same file is imported once unless --force."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path")
        parser.add_argument("--source", default="telco-import", help="Recorded as each customer's source.")
        parser.add_argument("--force", action="store_true", help="Import a file already imported.")

    def handle(self, *args: Any, **opts: Any) -> None:
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        run, created = ingestion_import_path(path=path, source_name=opts["source"], force=opts["force"])
        if not created:
            self.stdout.write(
                f"{path.name} was already imported in run {run.pk} ({run.status}); --force imports it again."
            )
        for row in run.quarantined_rows.order_by("line", "pk")[:_SHOWN_REJECTED]:
            self.stderr.write(f"line {row.line}: {row.reason}: {row.errors}")
        if run.rejected_count > _SHOWN_REJECTED:
            self.stderr.write(f"... {run.rejected_count - _SHOWN_REJECTED} more rejected rows in run {run.pk}.")
        counts = run.counts
        self.stdout.write(
            f"Imported {path.name}: created {counts['created']}, updated {counts['updated']}, "
            f"unchanged {counts['unchanged']}, rejected {counts['rejected']}, "
            f"outcomes recorded {run.details.get('outcomes_recorded', 0)} (run {run.pk}, {run.status})."
        )
        if run.status == RunStatus.FAILED:
            raise CommandError(f"{path.name}: {run.error}")
