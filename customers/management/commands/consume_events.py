from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from customers.ingestion.sources.stream import EventConsumer, default_consumer_name
from customers.models import DataSource, SourceKind


class Command(BaseCommand):
    help = (
        "Consume customer events from a Redis stream source (consumer group, acknowledgement after commit, "
        "pending entries reclaimed, dead letters). Runs until SIGTERM/SIGINT, finishing the batch in hand."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--source", help="Name of the stream source (needed when there are several).")
        parser.add_argument("--consumer", default=None, help="Consumer name in the group (default: host name).")
        parser.add_argument("--until-idle", action="store_true", help="Stop when no entry is left to read.")
        parser.add_argument("--max-events", type=int, default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        sources = DataSource.objects.filter(kind=SourceKind.STREAM, enabled=True)
        if opts["source"]:
            sources = sources.filter(name=opts["source"])
        found = list(sources[:2])
        if not found:
            raise CommandError("No enabled stream source" + (f" named {opts['source']!r}." if opts["source"] else "."))
        if len(found) > 1:
            raise CommandError("Several stream sources are enabled; name one with --source.")
        source = found[0]
        consumer = EventConsumer(source, consumer=opts["consumer"] or default_consumer_name())
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(
            f"Consuming {consumer.conf.stream} as {consumer.consumer} in group {consumer.conf.group} "
            f"(dead letters: {consumer.conf.dead_letter})."
        )
        handled = consumer.run(stop=stop, until_idle=opts["until_idle"], max_events=opts["max_events"])
        self.stdout.write(f"Processed {handled} events.")
