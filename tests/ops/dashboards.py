"""The Grafana dashboards' queries, read as Grafana runs them: every target of every panel of every
dashboard file (panels inside rows included) and every annotation query, with Grafana's variables
substituted."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))

# Grafana's built-in variables as Grafana sets them for "the last hour" on a wide panel, with the
# 15 s scrape interval of deploy/prometheus ($__rate_interval is max(4 x scrape, $__interval + scrape)).
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str  # as written in the dashboard
    promql: str  # what Grafana sends: the variables substituted
    annotation: bool = False  # an annotation query (events on every panel), not a panel target

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} [{self.ref_id}]: {self.promql}"


def template_values(dashboard: dict) -> dict[str, str]:
    """Each template variable's selected value (else its first option); several values, or
    "All", become the regex alternation Grafana sends for a multi-value variable."""
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        options = [o["value"] for o in var.get("options", []) if o.get("value") not in (None, "$__all")]
        current = (var.get("current") or {}).get("value")
        if isinstance(current, str):
            current = [current]
        if not current or "$__all" in current:
            if var.get("allValue") and "$__all" in (current or []):
                current = [var["allValue"]]
            else:
                current = options if (current or var.get("multi")) else options[:1]
        if not current:
            current = [str(var.get("query", ""))]
        values[var["name"]] = current[0] if len(current) == 1 else "(" + "|".join(map(re.escape, current)) + ")"
    return values


def substitute(expr: str, variables: dict[str, str]) -> str:
    """``expr`` with ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]`` replaced; an unknown
    variable fails loudly rather than sending a query Grafana would not."""

    def one(match: re.Match) -> str:
        name = next(g for g in match.groups() if g)
        if name not in variables:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(one, expr)


def all_panels(panels: Iterable[dict]) -> list[dict]:
    """Every panel, including those inside rows (a collapsed row keeps its panels in ``panels``)."""
    out: list[dict] = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def dashboard_queries(paths: Iterable[Path] = DASHBOARDS) -> list[PanelQuery]:
    """Every PromQL target of every panel, then every annotation query, of the files ``paths``."""
    queries = []
    for path in paths:
        dashboard = json.loads(path.read_text())
        variables = {**BUILTIN_VARIABLES, **template_values(dashboard)}
        for panel in all_panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append(PanelQuery(
                        dashboard=path.name, panel=panel.get("title") or f"panel {panel.get('id')}",
                        ref_id=target.get("refId", "?"), expr=target["expr"],
                        promql=substitute(target["expr"], variables),
                    ))
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                queries.append(PanelQuery(
                    dashboard=path.name, panel=f"annotation {annotation.get('name', '?')}", ref_id="-",
                    expr=annotation["expr"], promql=substitute(annotation["expr"], variables), annotation=True,
                ))
    return queries
