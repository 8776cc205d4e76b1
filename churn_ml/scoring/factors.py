"""Explanations: the factors of a score, each a factor group's signed impact on the churn logit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from churn_ml.features import (
    FACTOR_BY_FEATURE,
    FACTOR_GROUPS,
    FIELD_LABELS,
    FactorGroup,
)

IMPACT_DECIMALS: Final = 4
"""Impacts are rounded to 1e-4 logit: finer differences mean nothing to a reader, and a factor
whose impact rounds to zero is left out."""
DEFAULT_TOP_K: Final = 5


@dataclass(frozen=True)
class Factor:
    """One factor's signed impact on the churn logit (positive raises the risk).

    ``feature`` is the group's leading contract field; ``fields`` and ``label`` default to the
    declared group's.
    """

    feature: str
    impact: float
    fields: tuple[str, ...] = ()
    label: str = ""

    def __post_init__(self) -> None:
        if not self.fields or not self.label:
            fields, label = factor_fields_and_label(self.feature)
            object.__setattr__(self, "fields", self.fields or fields)
            object.__setattr__(self, "label", self.label or label)

    def as_dict(self) -> dict[str, Any]:
        """The contract's ``{"feature", "impact", "fields", "label"}`` object."""
        return {"feature": self.feature, "impact": self.impact, "fields": list(self.fields), "label": self.label}


def factor_fields_and_label(feature: str) -> tuple[tuple[str, ...], str]:
    """The fields and words of the factor group led by ``feature`` (a field outside any group: itself)."""
    group = FACTOR_BY_FEATURE.get(feature)
    if group is not None:
        return group.fields, group.label
    return (feature,), field_label(feature)


def field_label(name: str) -> str:
    """A contract field's words ("Total charges")."""
    return FIELD_LABELS.get(name, name.replace("_", " ").capitalize())


@dataclass(frozen=True, eq=False)
class Contributions:
    """Per-row, per-factor impacts in logit units: ``values[i, j]`` is factor ``groups[j]`` of row i."""

    groups: tuple[FactorGroup, ...]
    values: np.ndarray

    @property
    def fields(self) -> tuple[str, ...]:
        """The leading contract field of each column."""
        return tuple(g.feature for g in self.groups)


def _factor(j: int, impact: float) -> Factor:
    group = FACTOR_GROUPS[j]
    return Factor(group.feature, impact + 0.0, group.fields, group.label)  # + 0.0 turns -0.0 into 0.0


def _top_factors(row: Sequence[float], top_k: int) -> list[Factor]:
    """The top_k factors by absolute impact, rounded; factors rounding to 0 are dropped."""
    order = sorted(range(len(row)), key=lambda i: -abs(row[i]))
    out: list[Factor] = []
    for i in order[:top_k]:
        impact = round(float(row[i]), IMPACT_DECIMALS)
        if impact == 0.0:
            break
        out.append(_factor(i, impact))
    return out


def _explain_matrix(values: np.ndarray, top_k: int) -> list[list[Factor]]:
    if values.shape[0] == 0:
        return []
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    picked = np.round(np.take_along_axis(values, order, axis=1), IMPACT_DECIMALS)
    out = []
    for idx_row, val_row in zip(order.tolist(), picked.tolist(), strict=True):
        factors = []
        for i, v in zip(idx_row, val_row, strict=True):
            if v == 0.0:
                break
            factors.append(_factor(i, v))
        out.append(factors)
    return out
