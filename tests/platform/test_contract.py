"""docs/API_CONTRACT.md and the OpenAPI schema describe the same API.

The endpoint reference table must list exactly the schema's operations, and every endpoint the
contract's main table promises must be served.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "API_CONTRACT.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_METHOD = "(?:GET|POST|PUT|PATCH|DELETE)"
OPERATION = re.compile(rf"\s*({_METHOD}(?:\s*,\s*{_METHOD})*)\s+(\S+)")

pytestmark = pytest.mark.django_db


def _normalise(path: str) -> str:
    """'/api/v1/models/{version}/' and 'models/{version}/' -> 'models/{}/'."""
    path = path.split("?", 1)[0].strip().strip("`")
    path = path.removeprefix("/api/v1/")
    return re.sub(r"\{[^}]+\}", "{}", path)


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def _schema_operations(client) -> set[tuple[str, str]]:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    operations = set()
    for path, item in response.json()["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method in item:
            if method.upper() in METHODS:
                operations.add((method.upper(), _normalise(path)))
    return operations


def _reference_operations() -> set[tuple[str, str]]:
    table = _section(CONTRACT.read_text(), "## Endpoint reference")
    operations = set()
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] in METHODS:
            operations.add((cells[0], _normalise(cells[1])))
    return operations


def _promised_operations() -> set[tuple[str, str]]:
    """'GET, POST campaigns/ ; GET campaigns/{id}/' and the like, from the main endpoints table."""
    table = _section(CONTRACT.read_text(), "## Endpoints")
    operations = set()
    for line in table.splitlines():
        if not line.startswith("| ") or line.startswith("| method"):
            continue
        first = line.strip("|").split("|")[0]
        for part in first.split(";"):
            match = OPERATION.match(part)
            if match:
                for method in re.split(r"\s*,\s*", match.group(1)):
                    operations.add((method, _normalise(match.group(2))))
    return operations


def test_the_endpoint_reference_lists_exactly_the_schemas_operations(client):
    schema = _schema_operations(client)
    reference = _reference_operations()

    assert sorted(schema - reference) == [], "served but missing from docs/API_CONTRACT.md's endpoint reference"
    assert sorted(reference - schema) == [], "in docs/API_CONTRACT.md's endpoint reference but not served"


def test_every_endpoint_the_contract_promises_is_served(client):
    promised = _promised_operations()
    assert len(promised) >= 15  # the table was parsed, not skipped

    assert sorted(promised - _schema_operations(client)) == []


def test_the_readme_points_at_the_contract_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "docs/API_CONTRACT.md" in readme
    assert "../shared/API_CONTRACT.md" not in readme


def test_the_api_docs_warn_that_try_it_out_writes_real_data(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert "Try it out" in schema["info"]["description"]
    assert "real" in schema["info"]["description"]
