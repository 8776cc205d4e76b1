"""The HTTP API source against a small server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.services import SYSTEM
from customers.ingestion.services import data_source_run_now, data_source_save
from customers.models import Customer, DataSource, RunStatus, SourceKind
from tests.factories import record

pytestmark = pytest.mark.django_db

TOKEN = "Bearer s3cret-token"


class Api:
    """Records requests; ``respond(path, query, headers)`` returns (status, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.respond: Callable[[str, dict[str, list[str]], dict[str, str]], tuple[int, dict[str, str], Any]] = (
            lambda *_: (404, {}, {})
        )
        self.url = ""


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            headers = dict(self.headers.items())
            state.requests.append((parts.path, query, headers))
            status, extra, body = state.respond(parts.path, query, headers)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def http_source(url: str, **fields: Any) -> DataSource:
    password = fields.pop("password", TOKEN)
    fields.setdefault("options", {})
    fields["options"].setdefault("backoff_seconds", 0.01)
    source = DataSource(name=f"api-{uuid.uuid4().hex[:6]}", kind=SourceKind.HTTP, url=url, page_size=2, **fields)
    return data_source_save(source=source, actor=SYSTEM, password=password)


def crm(customer_id: str, **overrides: Any) -> dict[str, Any]:
    """A record in the remote API's own names: id and plan instead of customer_id and contract_type."""
    body = record(customer_id=customer_id, **overrides)
    body["id"] = body.pop("customer_id")
    body["plan"] = body.pop("contract_type")
    return body


def test_next_url_pages_with_auth_header_retries_and_mapping(api):
    pages = {
        "/customers": {"results": [crm("H-1"), crm("H-2")], "next": "/customers?page=2"},
        "/customers?page=2": {"results": [crm("H-3"), crm("H-4", tenure_months=-1)], "next": "page3"},
        "/page3": {"results": [crm("H-5")], "next": None},
    }
    failures = {"/page3": 1}

    def respond(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if headers.get("Authorization") != TOKEN:
            return 401, {}, {"detail": "no"}
        key = path + (f"?page={query['page'][0]}" if "page" in query else "")
        if failures.get(key):
            failures[key] -= 1
            return 503, {"Retry-After": "0"}, {"detail": "busy"}
        return 200, {}, pages[key]

    api.respond = respond
    source = http_source(
        f"{api.url}/customers", records_path="results", column_mapping={"id": "customer_id", "plan": "contract_type"}
    )

    run = data_source_run_now(source_id=source.pk)

    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 5, "created": 4, "updated": 0, "unchanged": 0, "rejected": 1}
    assert run.details["pages"] == 3
    assert [path for path, _, _ in api.requests] == ["/customers", "/customers", "/page3", "/page3"]
    assert run.quarantined_rows.get().raw["id"] == "H-4"
    assert Customer.objects.get(customer_id="H-5").contract_type == "Month-to-month"


def test_page_number_pagination_nested_records_and_incremental_cursor(api):
    data = [crm(f"N-{i}") | {"modified": f"2025-01-0{i + 1}T00:00:00Z"} for i in range(3)]

    def respond(path: str, query: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        page, size = int(query["page"][0]), int(query["size"][0])
        since = query.get("since", [""])[0]
        rows = [r for r in data if r["modified"] >= since]
        return 200, {}, {"data": {"items": rows[(page - 1) * size : page * size]}}

    api.respond = respond
    source = http_source(
        f"{api.url}/v2/clients",
        records_path="data.items",
        column_mapping={"id": "customer_id", "plan": "contract_type", "modified": ""},
        options={"pagination": "page", "size_param": "size", "since_param": "since"},
        cursor_field="modified",
    )

    first = data_source_run_now(source_id=source.pk)

    assert first.counts["created"] == 3
    assert [q["page"][0] for _, q, _ in api.requests] == ["1", "2"]
    source.refresh_from_db()
    assert source.cursor_value == "2025-01-03T00:00:00Z"

    data.append(crm("N-9") | {"modified": "2025-02-01T00:00:00Z"})
    second = data_source_run_now(source_id=source.pk)
    assert api.requests[-1][1]["since"] == ["2025-01-03T00:00:00Z"]
    assert second.counts == {"read": 2, "created": 1, "updated": 0, "unchanged": 1, "rejected": 0}


def test_server_errors_are_retried_then_fail_the_run_with_the_reason(api):
    api.respond = lambda *_: (500, {}, {"detail": "boom"})
    source = http_source(f"{api.url}/x", max_retries=2)

    run = data_source_run_now(source_id=source.pk)

    assert run.status == RunStatus.FAILED
    assert "failed 3 times" in run.error
    assert "HTTP 500" in run.error
    assert len(api.requests) == 3


def test_a_client_error_fails_at_once_and_a_redirect_is_not_followed(api):
    api.respond = lambda *_: (403, {}, {"detail": "forbidden"})
    run = data_source_run_now(source_id=http_source(f"{api.url}/x").pk)
    assert "HTTP 403" in run.error
    assert len(api.requests) == 1

    api.respond = lambda *_: (302, {"Location": "http://elsewhere.example/"}, b"")
    run = data_source_run_now(source_id=http_source(f"{api.url}/x").pk)
    assert run.status == RunStatus.FAILED
    assert "redirects to http://elsewhere.example/" in run.error


def test_a_slow_server_times_out(api):
    def slow(*_: Any) -> tuple[int, dict[str, str], Any]:
        time.sleep(1.2)
        return 200, {}, []

    api.respond = slow
    source = http_source(f"{api.url}/slow", timeout_seconds=1, max_retries=0)
    run = data_source_run_now(source_id=source.pk)
    assert run.status == RunStatus.FAILED
    assert "Could not connect to 127.0.0.1." in run.error


def test_a_page_that_is_not_a_list_of_records_fails_clearly(api):
    api.respond = lambda *_: (200, {}, {"results": {"not": "a list"}})
    run = data_source_run_now(source_id=http_source(f"{api.url}/x", records_path="results").pk)
    assert run.status == RunStatus.FAILED
    assert "not a list" in run.error
