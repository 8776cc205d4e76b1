"""Do the explanations point the way the model moves? Prints, over the demo customers:

* the share of top factors whose sign matches the score's move when the factor's fields are set
  to the reference customer's values (derived features recomputed, dependent fields kept valid:
  add-ons follow internet service, multiple lines follows phone service);
* the same with each factor's fields widened to its declared group (tenure, monthly and total
  charges move together), which is how the previous per-field factors can be judged coherently;
* among customers with tenure <= 6 (>= 48) months whose factors name tenure, the share with a
  raising (lowering) tenure factor; and the contract factor's sign by contract type.

The move to the reference is written here independently of ``churn_ml`` (records in, records
out) so that it checks the scorer rather than repeating it. It runs on older code too (factors
without ``fields``, no declared reference): then the reference below is used.

Usage: python bench/bench_explanation_signs.py [--algorithm logistic|gradient_boosting|both]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from churn_ml.features import as_columns  # noqa: E402
from churn_ml.schema import INTERNET_ADDON_FIELDS, load_telco_csv  # noqa: E402
from churn_ml.training import train  # noqa: E402

# Used when the code under test declares no reference customer (the code before issue 10).
FALLBACK_REFERENCE: dict[str, Any] = {
    "senior_citizen": False, "partner": False, "dependents": False, "phone_service": True,
    "multiple_lines": "No", "internet_service": "DSL", **dict.fromkeys(INTERNET_ADDON_FIELDS, "Yes"),
    "contract_type": "One year", "paperless_billing": True, "payment_method": "Mailed check",
    "tenure_months": 29, "monthly_charges": 70.6, "total_charges": 29 * 70.6, "age": None, "income": None,
}
TENURE_GROUP = ("tenure_months", "monthly_charges", "total_charges")


def move(record: dict[str, Any], fields: tuple[str, ...], reference: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for name in fields:
        out[name] = reference[name]
    for addon in INTERNET_ADDON_FIELDS:
        if out["internet_service"] == "No":
            out[addon] = "No internet service"
        elif out[addon] == "No internet service":
            out[addon] = reference[addon]
    if not out["phone_service"]:
        out["multiple_lines"] = "No phone service"
    elif out["multiple_lines"] == "No phone service":
        out["multiple_lines"] = reference["multiple_lines"]
    return out


def measure(algorithm: str, frame: pd.DataFrame, labels: np.ndarray) -> None:
    model = train(frame, labels, algorithm=algorithm)
    scorer = model.scorer
    reference_of = getattr(scorer.features, "reference_record", None)
    reference = dict(reference_of()) if reference_of else FALLBACK_REFERENCE
    columns = as_columns(frame)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    records = [{k: (bool(v) if isinstance(v, np.bool_) else v) for k, v in r.items()} for r in records]
    logits = scorer.logits(columns)
    factors = scorer.explain(columns, top_k=5)

    for widen in (False, True):
        moved, owners, impacts = [], [], []
        for i, row in enumerate(factors):
            for factor in row:
                fields = tuple(getattr(factor, "fields", None) or (factor.feature,))
                if widen and set(fields) & set(TENURE_GROUP):
                    fields = tuple(dict.fromkeys((*fields, *TENURE_GROUP)))
                moved.append(move(records[i], fields, reference))
                owners.append(i)
                impacts.append(factor.impact)
        moved_logits = scorer.logits(as_columns(pd.DataFrame(moved)))
        change = logits[np.asarray(owners)] - moved_logits
        agree = np.sign(change) == np.sign(np.asarray(impacts))
        how = "fields widened to their group" if widen else "the factor's own fields"
        print(f"{algorithm}: moving {how}: {agree.sum()} of {len(agree)} factors agree "
              f"({100 * agree.mean():.1f}%)")

    tenure = columns["tenure_months"]
    contract = columns["contract_type"]

    def impact_of(row: list[Any], name: str) -> float | None:
        return next((f.impact for f in row if f.feature == name), None)

    for label, rows, want in (
        ("tenure <= 6", np.flatnonzero(tenure <= 6), 1),
        ("tenure >= 48", np.flatnonzero(tenure >= 48), -1),
    ):
        named = [impact_of(factors[i], "tenure_months") for i in rows]
        named = [v for v in named if v is not None]
        right = sum(1 for v in named if np.sign(v) == want)
        print(f"  {label}, factors name tenure: {len(named)}; {'raising' if want > 0 else 'lowering'} "
              f"{right} ({100 * right / max(len(named), 1):.1f}%)")
    for kind, want in (("Month-to-month", 1), ("Two year", -1)):
        named = [impact_of(factors[i], "contract_type") for i in np.flatnonzero(contract == kind)]
        named = [v for v in named if v is not None]
        right = sum(1 for v in named if np.sign(v) == want)
        print(f"  {kind}, factors name the contract: {len(named)}; "
              f"{'raising' if want > 0 else 'lowering'} {right}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="both", choices=["logistic", "gradient_boosting", "both"])
    parser.add_argument("--data", default=str(REPO_ROOT / "data" / "telco_customer_churn.csv"))
    args = parser.parse_args()
    frame, labels = load_telco_csv(args.data)
    families = ("logistic", "gradient_boosting") if args.algorithm == "both" else (args.algorithm,)
    for family in families:
        measure(family, frame, labels)


if __name__ == "__main__":
    main()
