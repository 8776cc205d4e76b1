"""The ML core stays plain Python: no Django, DRF or Celery, not even indirectly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("django", "rest_framework", "celery")


def test_importing_the_ml_core_loads_no_web_framework() -> None:
    code = (
        "import sys\n"
        "import churn_ml, churn_ml.schema, churn_ml.features, churn_ml.training, churn_ml.scoring.compiler,"
        " churn_ml.evaluation, churn_ml.tiers, churn_ml.drift, churn_ml.artifact\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print('loaded:', bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_source_file_names_a_web_framework() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(django|rest_framework|celery)\b", re.MULTILINE)
    for path in (REPO_ROOT / "churn_ml").rglob("*.py"):
        assert not pattern.search(path.read_text()), path
