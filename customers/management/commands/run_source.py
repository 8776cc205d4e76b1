from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.ingestion.services import data_source_run_now
from customers.ingestion.sources.stream import EventConsumer
from customers.models import DataSource, RunStatus, SourceKind


class Command(BaseCommand):
    help = (
        "Run a data source once, in this process: pull a database or HTTP source, or drain a stream source "
        "until no entry is left. Prints the run's counts."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("source", help="The source's name or id.")

    def handle(self, *args: Any, **opts: Any) -> None:
        key = opts["source"]
        source = DataSource.objects.filter(name=key).first()
        if source is None and key.isdigit():
            source = DataSource.objects.filter(pk=int(key)).first()
        if source is None:
            raise CommandError(f"No data source {key!r}.")
        if source.kind == SourceKind.STREAM:
            handled = EventConsumer(source).run(until_idle=True)
            run = source.runs.order_by("-created_at").first()
            if handled == 0 or run is None:
                self.stdout.write(f"{source.name}: no events waiting.")
                return
        else:
            run = data_source_run_now(source_id=source.pk)
            if run is None:
                raise CommandError(f"No data source {key!r}.")
        counts = run.counts
        self.stdout.write(
            f"{source.name}: {run.status}: read {counts['read']}, created {counts['created']}, updated "
            f"{counts['updated']}, unchanged {counts['unchanged']}, rejected {counts['rejected']} (run {run.pk})."
        )
        if run.status == RunStatus.FAILED:
            raise CommandError(f"{source.name}: {run.error}")
