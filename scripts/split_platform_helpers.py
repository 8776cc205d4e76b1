"""Move the shared helpers out of churn_platform (the wiring) into churn_infra, and rewrite every reference.

Issue 14: churn_platform held both the wiring (settings, urls, Celery, health, collectors) and the
helpers the apps share (db, metrics, api, ...), so no layers contract could place it. This script
is idempotent: run it again after a rebase to rewrite the imports that arrived since
(``python scripts/split_platform_helpers.py``; it prints the files it changed). It can be deleted
once no branch from before the split is left.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD, NEW = "churn_platform", "churn_infra"
HELPERS = (
    "api", "cache_backends", "client_address", "csv_cells", "datetimes", "db", "exceptions", "form_fields",
    "heartbeat", "json_api", "logging", "metrics", "outages", "pagination", "redis_client", "replica", "svg",
)
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".yml", ".yaml", ".cfg", ".ini", ".sh", ".html", ".example", ""}
INIT = '''"""Infrastructure helpers the apps share: database, metrics registry, JSON API helpers, pagination,
the error base classes and handler, outages, dates, CSV cells, client addresses, Redis, charts.

The bottom layer but one (only churn_ml is below it): nothing here imports an app or the wiring
(churn_platform). See the layers contract in pyproject.toml.
"""
'''

_names = "|".join(HELPERS)
# churn_platform.metrics, churn_platform/metrics.py, "churn_platform.metrics.X" in settings and patches.
DOTTED = re.compile(rf"\b{OLD}([./])({_names})\b")
# ROOT / "churn_platform" / "exceptions.py" in tests that read a source file.
PATH_PARTS = re.compile(rf"\"{OLD}\" / \"({_names})\.py\"")
# from churn_platform import metrics[, svg]
FROM_PACKAGE = re.compile(rf"^(\s*)from {OLD} import ([\w, ()]+?)(\s*(#.*)?)$", re.MULTILINE)


def _from_package(match: re.Match[str]) -> str:
    names = [n.strip() for n in match.group(2).strip("()").split(",") if n.strip()]
    bare = [n.split(" as ")[0].strip() for n in names]
    helpers = [n for n, b in zip(names, bare, strict=True) if b in HELPERS]
    if not helpers:
        return match.group(0)
    if len(helpers) != len(names):
        raise SystemExit(f"mixed import, split it by hand: {match.group(0).strip()}")
    return f"{match.group(1)}from {NEW} import {', '.join(names)}{match.group(3)}"


def rewrite(text: str) -> str:
    text = DOTTED.sub(rf"{NEW}\1\2", text)
    text = PATH_PARTS.sub(rf'"{NEW}" / "\1.py"', text)
    return FROM_PACKAGE.sub(_from_package, text)


def main() -> int:
    package = ROOT / NEW
    package.mkdir(exist_ok=True)
    if not (package / "__init__.py").exists():
        (package / "__init__.py").write_text(INIT)
    for name in HELPERS:
        old = ROOT / OLD / f"{name}.py"
        if old.exists():
            subprocess.run(["git", "mv", str(old), str(package / f"{name}.py")], cwd=ROOT, check=True)
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True)
    changed = []
    for rel in tracked.stdout.split("\0"):
        path = ROOT / rel
        if not rel or rel.startswith("scripts/split_platform_helpers") or not path.is_file():
            continue
        if path.suffix not in TEXT_SUFFIXES and path.name not in {"Makefile", "Dockerfile"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite(text)
        if new != text:
            path.write_text(new)
            changed.append(rel)
    subprocess.run(["git", "add", NEW], cwd=ROOT, check=True)
    print("\n".join(changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
