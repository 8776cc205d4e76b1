from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from churn_platform.backups import BackupError, restore_backup


class Command(BaseCommand):
    help = (
        "Restore a `manage.py backup` archive into an empty database and model storage: checks every checksum, "
        "runs pg_restore, writes the artifacts back and compares the rows per table with the manifest."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("archive")
        parser.add_argument("--force", action="store_true", help="Replace a non-empty database and storage.")
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **opts: Any) -> None:
        archive = Path(opts["archive"])
        if not archive.is_file():
            raise CommandError(f"{archive}: no such file")
        try:
            report = restore_backup(archive, alias=opts["database"], force=opts["force"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        if report.mismatched_tables:
            lines = ", ".join(
                f"{t}: {a} in the manifest, {b} restored" for t, (a, b) in report.mismatched_tables.items()
            )
            raise CommandError(f"Restored, but rows differ from the manifest: {lines}")
        self.stdout.write(
            f"Restored {report.tables} tables ({report.rows} rows, as in the manifest) and {report.artifacts} model "
            "artifacts."
        )
