"""The layers contract (pyproject.toml, issue 14): apps depend downward only, imports in function bodies included."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint(cwd: Path) -> tuple[int, str]:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--contract", "layers", "--no-cache"],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False, env={"PYTHONPATH": str(cwd)},
    )
    return result.returncode, re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def test_the_contract_states_the_issue_order_of_layers():
    (layers,) = [c["layers"] for c in CONFIG["contracts"] if c.get("id") == "layers"]
    wiring, *apps, helpers, ml_core = layers
    assert (wiring, helpers, ml_core) == ("churn_platform", "churn_infra", "churn_ml")
    assert apps == ["campaigns", "predictions", "modelregistry", "customers", "accounts"]
    assert set(layers) == set(CONFIG["root_packages"])


def test_the_code_keeps_the_layers():
    returncode, output = _lint(ROOT)
    assert returncode == 0, output


def test_an_upward_import_hidden_in_a_function_body_breaks_the_contract(tmp_path):
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "customers" / "selectors.py").open("a") as module:
        module.write("\n\ndef _upward():\n    from predictions.models import Prediction\n\n    return Prediction\n")

    returncode, output = _lint(tmp_path)

    assert returncode == 1
    assert "customers is not allowed to import predictions" in output
    assert "customers.selectors -> predictions.models" in output
