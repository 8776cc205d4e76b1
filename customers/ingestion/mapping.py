"""Which source column carries which contract field.

A file or source may use the contract's names (``customer_id``, ``tenure_months``), the IBM Telco
layout (``customerID``, ``tenure``), or names configured on a DataSource. Matching is by name,
ignoring case and surrounding blanks; the churn label (``Churn``, ``churned``) becomes an outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from churn_ml.schema import KNOWN_FIELDS, OPTIONAL_FIELDS, RECORD_FIELDS, TELCO_COLUMNS

LABEL = "churned"
"""Target name for a source column that holds churn labels (Yes/No, true/false, 1/0)."""

IGNORE = ""
"""Target name for a source column to leave out on purpose (it is not reported as ignored)."""

# Columns a quarantine download adds in front of the raw columns; a repaired download re-uploads
# cleanly because these are skipped.
QUARANTINE_COLUMNS = ("_line", "_reason", "_errors", "_text")
# ...and after them, raw keys outside the file's header, as JSON.
EXTRA_COLUMN = "_extra"
SKIPPED_COLUMNS = frozenset((*QUARANTINE_COLUMNS, EXTRA_COLUMN))

_BY_NAME: dict[str, str] = {
    **{name.lower(): telco_field for name, telco_field in TELCO_COLUMNS.items()},
    **{name: name for name in RECORD_FIELDS},
    "churn": LABEL,
    LABEL: LABEL,
}
_TELCO_NAMES = frozenset(name.lower() for name in TELCO_COLUMNS)
REQUIRED_FIELDS = tuple(name for name in RECORD_FIELDS if name not in OPTIONAL_FIELDS)


class MappingError(ValueError):
    """The columns cannot be mapped onto the contract (a repeated field, an unknown target)."""


@dataclass(frozen=True)
class ColumnPlan:
    """source column -> contract field, the label column, and what is left unused."""

    fields: dict[str, str]
    label: str | None = None
    ignored: list[str] = field(default_factory=list)
    layout: str = "contract"

    @property
    def missing_required(self) -> list[str]:
        present = set(self.fields.values())
        return [name for name in REQUIRED_FIELDS if name not in present]

    def describe_missing(self) -> str:
        telco = {v: k for k, v in TELCO_COLUMNS.items()}
        names = [f"{name} ({telco[name]})" if name in telco else name for name in self.missing_required]
        return ", ".join(names)


def validate_mapping(mapping: Mapping[str, str]) -> None:
    """Raise MappingError unless every target is a contract field, ``churned`` or ``""``."""
    if not isinstance(mapping, Mapping):
        raise MappingError("The column mapping must be an object of source column -> contract field.")
    for source, target in mapping.items():
        if not isinstance(source, str) or not isinstance(target, str):
            raise MappingError("The column mapping must map names to names.")
        if target not in KNOWN_FIELDS and target not in (LABEL, IGNORE):
            raise MappingError(f"{source!r} maps to {target!r}, which is not a field of the customer record.")
    targets = [t for t in mapping.values() if t != IGNORE]
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    if repeated:
        raise MappingError(f"Several columns map to {', '.join(repeated)}.")


def plan_columns(names: Sequence[str], mapping: Mapping[str, str] | None = None) -> ColumnPlan:
    """Map source column names onto contract fields; raise MappingError when two land on one field."""
    mapping = mapping or {}
    configured = {k.strip().lower(): v for k, v in mapping.items()}
    fields: dict[str, str] = {}
    label: str | None = None
    ignored: list[str] = []
    taken: dict[str, str] = {}
    telco_hits = contract_hits = 0
    for name in names:
        key = name.strip().lower()
        if key in configured:
            target = configured[key]
        elif name in SKIPPED_COLUMNS:
            continue
        else:
            target = _BY_NAME.get(key)
            if target is None:
                ignored.append(name)
                continue
            telco_hits += key in _TELCO_NAMES and key not in KNOWN_FIELDS
            contract_hits += key in KNOWN_FIELDS and key not in _TELCO_NAMES
        if target == IGNORE:
            continue
        if target in taken:
            raise MappingError(f"The columns {taken[target]!r} and {name!r} both hold {target}.")
        taken[target] = name
        if target == LABEL:
            label = name
        else:
            fields[name] = target
    if mapping:
        layout = "mapped"
    elif telco_hits and not contract_hits:
        layout = "telco"
    elif telco_hits:
        layout = "mixed"
    else:
        layout = "contract"
    return ColumnPlan(fields=fields, label=label, ignored=ignored, layout=layout)


def get_path(record: Mapping[str, object], path: str) -> object:
    """``record["a"]["b"]`` for ``"a.b"``; a KeyError when any step is missing."""
    value: object = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            raise KeyError(path)
        value = value[part]
    return value
