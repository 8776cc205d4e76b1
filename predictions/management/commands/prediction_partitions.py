from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from predictions.partitions import is_partitioned, prediction_partitions_ensure, prediction_partitions_report


class Command(BaseCommand):
    help = (
        "List the predictions table's partitions, the lower catch-all first and the upper one last (estimated "
        "rows, size, bounds); --ensure creates this month's and the months ahead that are missing, as the beat "
        "task does."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--ensure", action="store_true", help="Create the missing partitions first.")
        parser.add_argument("--months-ahead", type=int, default=None,
                            help="With --ensure: months after this one (default PREDICTION_PARTITIONS_AHEAD).")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not is_partitioned():
            self.stdout.write("The predictions table is not partitioned here (SQLite, or before migration 0008).")
            return
        if opts["ensure"]:
            created = prediction_partitions_ensure(months_ahead=opts["months_ahead"])
            self.stdout.write(f"Created {', '.join(created)}." if created else "Nothing to create.")
        for row in prediction_partitions_report():
            self.stdout.write(f"{row['name']:<40} {row['estimated_rows']:>14,} rows {row['bytes'] / 2**20:>10,.1f} MiB"
                              f"  {row['bounds']}")
