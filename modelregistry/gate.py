"""The promotion gate: candidate and active model compared on the same rows.

The rows are the candidate's held-out rows (stored with the version at registration) plus the
customers with an outcome recorded within LIVE_PERFORMANCE_HORIZON_DAYS, each scored by both
models. DeLong's paired test (churn_ml.performance.paired_auc_test) decides:

* refused when the candidate's ROC AUC is significantly below the active model's on those rows
  (one-sided p < MODEL_GATE_ALPHA), or when it is below the absolute floor MODEL_GATE_MIN_ROC_AUC;
* otherwise allowed. The comparison (both figures, n, the difference with its interval and the
  p-value) is stored in the version's model event either way.

Like MLflow's ``MetricThreshold(threshold=..., greater_is_better=True)`` plus a significance test
in place of ``min_absolute_change``: a difference that one split's noise explains never blocks.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from churn_ml.performance import paired_auc_test
from churn_ml.schema import RECORD_FIELDS, validate_columns
from customers.models import Customer, Outcome
from modelregistry import loader
from modelregistry.models import ModelVersion

HOLDOUT_FORMAT = "modelregistry.holdout/1"


def _jsonable(values: np.ndarray) -> list[Any]:
    out = []
    for v in values.tolist():
        if isinstance(v, float) and v != v:
            out.append(None)
        else:
            out.append(v)
    return out


def holdout_file(columns: dict[str, np.ndarray], labels: np.ndarray) -> ContentFile:
    """The held-out rows as a gzipped JSON file for the version's ``holdout`` field."""
    payload = {
        "format": HOLDOUT_FORMAT,
        "columns": {name: _jsonable(np.asarray(col)) for name, col in columns.items() if name in RECORD_FIELDS},
        "labels": np.asarray(labels).astype(bool).tolist(),
    }
    return ContentFile(gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0))


def holdout_rows(version: ModelVersion) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """The version's held-out rows as canonical columns and labels, or None if it has none."""
    if not version.holdout:
        return None
    with version.holdout.open("rb") as fh:
        payload = json.loads(gzip.decompress(fh.read()))
    if payload.get("format") != HOLDOUT_FORMAT:
        return None
    labels = np.asarray(payload["labels"], dtype=bool)
    result = validate_columns(payload["columns"], len(labels))
    valid = result.valid
    return {name: col[valid] for name, col in result.columns.items()}, labels[valid]


def recent_outcome_rows(*, days: int, limit: int) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Stored customers with an outcome observed within ``days``, with their latest such outcome."""
    since = timezone.now() - timedelta(days=days)
    latest = Outcome.objects.filter(customer=OuterRef("pk"), observed_at__gte=since).order_by("-observed_at", "-pk")
    rows = list(
        Customer.objects.annotate(label=Subquery(latest.values("churned")[:1]))
        .filter(label__isnull=False)
        .order_by("-pk")
        .values_list(*RECORD_FIELDS, "label")[:limit]
    )
    if not rows:
        return None
    result = validate_columns({name: [r[i] for r in rows] for i, name in enumerate(RECORD_FIELDS)}, len(rows))
    valid = result.valid
    labels = np.array([r[-1] for r in rows], dtype=bool)[valid]
    return {name: col[valid] for name, col in result.columns.items()}, labels


def _concat(parts: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    names = set.intersection(*(set(c) for c, _ in parts))
    columns = {name: np.concatenate([c[name] for c, _ in parts]) for name in names}
    return columns, np.concatenate([y for _, y in parts])


def promotion_comparison(*, candidate: ModelVersion, active: ModelVersion) -> dict[str, Any]:
    """Both models on the same rows; ``refusal`` is the reason to refuse, or None."""
    alpha, floor = settings.MODEL_GATE_ALPHA, settings.MODEL_GATE_MIN_ROC_AUC
    held_out = holdout_rows(candidate)
    recent = recent_outcome_rows(
        days=settings.LIVE_PERFORMANCE_HORIZON_DAYS, limit=settings.MODEL_GATE_MAX_OUTCOME_ROWS
    )
    parts = [p for p in (held_out, recent) if p is not None and len(p[1])]
    out: dict[str, Any] = {
        "rows": {
            "held_out": len(held_out[1]) if held_out else 0,
            "recent_outcomes": len(recent[1]) if recent else 0,
        },
        "alpha": alpha,
        "min_roc_auc": floor,
        "candidate": candidate.version,
        "active": active.version,
    }
    comparison = None
    if parts:
        columns, labels = _concat(parts)
        p_candidate = loader.load_version(candidate).scorer.predict_proba(columns)
        p_active = loader.load_version(active).scorer.predict_proba(columns)
        comparison = paired_auc_test(p_active, p_candidate, labels)
    if comparison is None:
        out.update(n=sum(out["rows"].values()), method=None, candidate_roc_auc=candidate.roc_auc, active_roc_auc=None)
        auc = candidate.roc_auc
    else:
        out.update(
            n=comparison.n,
            positives=comparison.positives,
            candidate_roc_auc=round(comparison.auc_b, 6),
            active_roc_auc=round(comparison.auc_a, 6),
            difference=round(comparison.difference, 6),
            ci95=[round(x, 6) for x in comparison.ci95],
            p_value=comparison.p_value,
            p_worse=comparison.p_worse,
            method=comparison.method,
        )
        auc = comparison.auc_b
    refusal = None
    if comparison is not None and comparison.p_worse < alpha:
        refusal = (
            f"on the same {comparison.n} rows its ROC AUC {comparison.auc_b:.4f} is significantly below the active "
            f"model's {comparison.auc_a:.4f} (difference {comparison.difference:+.4f}, one-sided p = "
            f"{comparison.p_worse:.2g} < {alpha})"
        )
    elif auc is not None and auc < floor:
        refusal = f"its ROC AUC {auc:.4f} is below the floor MODEL_GATE_MIN_ROC_AUC = {floor}"
    out["refusal"] = refusal
    out["decision"] = "refuse" if refusal else "pass"
    return out
