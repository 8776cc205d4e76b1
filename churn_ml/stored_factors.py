"""How a prediction's factors are stored: ``[feature, impact]`` pairs, expanded when read.

The contract's factor object is ``{"feature", "impact", "fields", "label"}``, but ``fields`` and
``label`` follow from ``feature`` (the leading field of a declared factor group,
:data:`churn_ml.features.FACTOR_GROUPS`). Storing them in every row made a prediction row twice as
large (670 of 1,061 bytes on PostgreSQL) and a million-row job twice as slow to write, so a row
keeps ``[["contract_type",1.2121],["tenure_months",-0.8]]`` and readers expand it here.

Three stored forms are read, in the order they were written:

* ``{"feature", "impact"}``: before factor groups, one field's share of the logit; it gets that
  field alone and its words (a group's fields would misdescribe it);
* ``{"feature", "impact", "fields", "label"}``: the full object, kept as stored;
* ``[feature, impact]``: the current compact form, expanded to its group.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from churn_ml.scoring.factors import Factor, factor_fields_and_label, field_label


def compact_factors(factors: Iterable[Factor | Mapping[str, Any]]) -> list[list[Any]]:
    """The stored form of factors (``Factor`` objects or the contract's dicts)."""
    out: list[list[Any]] = []
    for factor in factors:
        if isinstance(factor, Factor):
            out.append([factor.feature, factor.impact])
        else:
            out.append([factor["feature"], factor["impact"]])
    return out


def compact_factors_text(factors: Iterable[Factor | Mapping[str, Any]]) -> str:
    """The stored form as compact JSON text."""
    return json.dumps(compact_factors(factors), separators=(",", ":"))


def expand_factor(item: Sequence[Any] | Mapping[str, Any]) -> dict[str, Any]:
    """One stored factor, in any of the three forms, as the contract's object."""
    if isinstance(item, Mapping):
        if "fields" in item and "label" in item:
            return dict(item)
        # before factor groups: one field's share of the logit, so that field alone and its words
        feature = str(item.get("feature", ""))
        return {**item, "fields": [feature], "label": field_label(feature)}
    feature, impact = str(item[0]), item[1]
    fields, label = factor_fields_and_label(feature)
    return {"feature": feature, "impact": impact, "fields": list(fields), "label": label}


def expand_factors(stored: Iterable[Sequence[Any] | Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """A prediction's stored factors as the contract's objects (``[]`` for none)."""
    return [expand_factor(item) for item in stored or ()]
