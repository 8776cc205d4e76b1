from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from churn_platform.backups import BackupError, create_backup


class Command(BaseCommand):
    help = (
        "Write one backup archive: a pg_dump of the database (custom format), every model artifact, and a "
        "manifest with checksums, versions and rows per table. Prints the archive's path on its last line."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--output", default=".", help="A directory (made if missing; the name is dated) or a path ending in .tar."
        )
        parser.add_argument("--database", default="default")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            path, manifest = create_backup(Path(opts["output"]), alias=opts["database"])
        except (BackupError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Backed up {len(manifest['row_counts'])} tables ({sum(manifest['row_counts'].values())} rows) and "
            f"{len(manifest['artifacts'])} model artifacts ({path.stat().st_size} bytes):"
        )
        self.stdout.write(str(path))
