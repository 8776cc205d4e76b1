from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.ingestion.services import data_source_run_now
from customers.ingestion.sources.stream import stream_drain
from customers.models import DataSource, RunStatus, SourceKind


class Command(BaseCommand):
    help = (
        "Run a data source once, in this process: pull a database or HTTP source, or process what is waiting "
        "in a stream source. Prints the run's counts."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("source", help="The source's name or id.")
        parser.add_argument("--max-events", type=int, default=1_000_000, help="Streams: stop after this many events.")

    def handle(self, *args: Any, **opts: Any) -> None:
        key = opts["source"]
        source = DataSource.objects.filter(name=key).first()
        if source is None and key.isdigit():
            source = DataSource.objects.filter(pk=int(key)).first()
        if source is None:
            raise CommandError(f"No data source {key!r}.")
        if source.kind == SourceKind.STREAM:
            _, run = stream_drain(source=source, max_events=opts["max_events"])
            if run is None:
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
