from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from predictions.operations import status_report


class Command(BaseCommand):
    help = "Show Celery queue depths, the live workers and their tasks, running batch jobs and retraining runs."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--timeout", type=float, default=1.0, help="Seconds to wait for workers to answer.")

    def handle(self, *args: Any, **opts: Any) -> None:
        report = status_report(inspect_timeout=opts["timeout"])
        if opts["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        out = self.stdout.write
        if report["eager"]:
            out("Tasks run in-process (CELERY_TASK_ALWAYS_EAGER): there are no queues or workers.")
        else:
            out("Queues (messages waiting):")
            if report["queues"] is None:
                out("  unknown: the broker is not Redis or cannot be reached")
            else:
                for name, depth in report["queues"].items():
                    out(f"  {name:<12} {depth:>8,}")
            out("Workers:")
            if not report["workers"]:
                out("  none answered")
            for worker in report["workers"] or []:
                out(f"  {worker['name']}  queues {','.join(worker['queues']) or '-'}  "
                    f"running {len(worker['active'])}")
                for task in worker["active"]:
                    out(f"    {task}")
        out("Batch jobs queued or running:")
        if not report["jobs"]:
            out("  none")
        now = timezone.now()
        for job in report["jobs"]:
            chunks = job["chunks"]
            since = f", for {int((now - job['started_at']).total_seconds())} s" if job["started_at"] else ""
            out(f"  #{job['id']} {job['scope']} ({job['origin']}) {job['status']} {job['progress']:.0%}: "
                f"{job['scored']:,} scored, {job['failed']:,} failed of {job['total']:,}{since}; "
                f"chunks {chunks['done']} done, {chunks['running']} running, {chunks['pending']} pending, "
                f"{chunks['failed']} failed; model {job['model_version']}")
            if job["workers"]:
                out(f"    on {', '.join(job['workers'])}")
        out("Retraining queued or running:")
        if not report["retraining"]:
            out("  none")
        for run in report["retraining"]:
            since = run["started_at"] or run["created_at"]
            out(f"  #{run['id']} {run['trigger']} {run['status']} since {since:%Y-%m-%d %H:%M} UTC")
