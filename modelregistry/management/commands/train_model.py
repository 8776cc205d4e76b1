from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from churn_ml.training import ALGORITHMS
from modelregistry.services import PromotionRefused, model_train, training_data_from_file, training_data_from_store


class Command(BaseCommand):
    help = (
        "Train a churn model on a Telco-layout file (or on stored customers with recorded outcomes), evaluate "
        "it on a held-out split, store it as a new model version, and with --activate make it the active one."
    )

    def add_arguments(self, parser: Any) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--data", help="CSV in the IBM Telco Customer Churn layout (with the Churn column).")
        source.add_argument("--from-store", action="store_true", help="Stored customers and their outcomes.")
        parser.add_argument("--activate", action="store_true", help="Promote the new version (registry rules apply).")
        parser.add_argument("--force", action="store_true", help="Promote even if worse than the active model.")
        parser.add_argument("--reason", default="", help="Why; required with --force.")
        parser.add_argument("--algorithm", choices=ALGORITHMS, default="auto")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--notes", default="")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            if opts["data"]:
                if not Path(opts["data"]).is_file():
                    raise CommandError(f"{opts['data']}: no such file")
                data = training_data_from_file(opts["data"])
            else:
                data = training_data_from_store()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Training on {len(data.frame)} customers ({data.labels.mean():.1%} churned) from {data.source} ..."
        )
        try:
            version = model_train(
                data=data,
                activate=opts["activate"],
                algorithm=opts["algorithm"],
                seed=opts["seed"],
                force=opts["force"],
                reason=opts["reason"],
                notes=opts["notes"],
            )
        except PromotionRefused as exc:
            raise CommandError(f"The model was stored but not activated. {exc}") from exc
        metrics = {k: v for k, v in version.metrics.items() if not isinstance(v, dict)}
        self.stdout.write(f"Model version {version.version} ({version.algorithm}), status {version.status}")
        self.stdout.write(json.dumps(metrics, indent=2, sort_keys=True))
