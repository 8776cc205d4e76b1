"""The data-source egress policy: no source reaches an internal address unless an operator allows it."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts.services import SYSTEM
from customers.ingestion.egress import EgressRefused, checked_address
from customers.ingestion.services import data_source_run_now, data_source_save
from customers.models import DataSource, QuarantinedRow, RunStatus, SourceKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_allowance(settings):  # type: ignore[no-untyped-def]
    """The default: nothing internal is allowed (the ingestion conftest allows loopback for its servers)."""
    settings.DATA_SOURCE_ALLOWED_NETWORKS = []


INTERNAL_SPELLINGS = [
    "127.0.0.1",
    "127.1",  # short form
    "2130706433",  # 127.0.0.1 as an integer
    "0x7f000001",
    "0177.0.0.1",  # octal
    "localhost",
    "localhost.",
    "::1",
    "[::1]",
    "169.254.169.254",
    "169.254.169.254.",  # trailing dot
    "2852039166",  # 169.254.169.254 as an integer
    "0xa9fea9fe",
    "0251.0376.0251.0376",
    "[::ffff:169.254.169.254]",  # IPv4-mapped IPv6
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",  # NAT64
    "fe80::1",
    "fd00:ec2::254",  # unique-local: the AWS IPv6 metadata address
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.100.100.200",  # shared (CGNAT): Alibaba's metadata address
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "ff02::1",
    "240.0.0.1",  # reserved
]


@pytest.mark.usefixtures("no_allowance")
@pytest.mark.parametrize("host", INTERNAL_SPELLINGS)
def test_every_spelling_of_an_internal_address_is_refused(host):
    with pytest.raises(EgressRefused, match="internal address"):
        checked_address(host)
    with pytest.raises(ValidationError) as caught:
        data_source_save(
            source=DataSource(name="x", kind=SourceKind.POSTGRESQL, host=host, query="SELECT 1"), actor=SYSTEM
        )
    assert "internal address" in " ".join(caught.value.message_dict["host"])


@pytest.mark.usefixtures("no_allowance")
@pytest.mark.parametrize(
    "url",
    ["http://[::ffff:169.254.169.254]/latest/meta-data/", "http://[fd00:ec2::254]/latest", "http://localhost:8000/"],
)
def test_http_sources_to_internal_urls_are_refused_at_save(url, key_client):
    response = key_client.post("/api/v1/data-sources/", {"name": "meta", "kind": "http", "url": url}, format="json")
    assert response.status_code == 400
    assert "internal address" in " ".join(response.json()["errors"]["url"])


@pytest.mark.usefixtures("no_allowance")
def test_a_redis_stream_named_by_the_source_is_checked_too():
    with pytest.raises(ValidationError) as caught:
        data_source_save(
            source=DataSource(
                name="s", kind=SourceKind.STREAM, collection="k", options={"redis_url": "redis://127.0.0.1:6379/0"}
            ),
            actor=SYSTEM,
        )
    assert "internal address" in " ".join(caught.value.message_dict["options"])


def test_public_addresses_pass_and_operators_allow_networks_and_names(settings):
    settings.DATA_SOURCE_ALLOWED_NETWORKS = []
    assert checked_address("93.184.216.34") == "93.184.216.34"
    assert checked_address("2606:2800:220:1:248:1893:25c8:1946") == "2606:2800:220:1:248:1893:25c8:1946"
    settings.DATA_SOURCE_ALLOWED_NETWORKS = ["10.20.0.0/16", "crm-replica.internal", "127.0.0.1"]
    assert checked_address("10.20.3.4") == "10.20.3.4"
    assert checked_address("2130706433") == "127.0.0.1"
    assert checked_address("crm-replica.internal.") == "crm-replica.internal"
    with pytest.raises(EgressRefused):
        checked_address("10.21.0.1")
    with pytest.raises(EgressRefused, match="Could not resolve"):
        checked_address("no-such-host.invalid")


def test_a_postgresql_source_on_the_platforms_own_database_is_refused_by_default(settings, key_client, department):
    """The reported defect: 127.0.0.1:5432 handed every user's password hash back as rejected rows."""
    settings.DATA_SOURCE_ALLOWED_NETWORKS = []
    own = connection.settings_dict
    fields = {
        "name": "crm",
        "kind": "postgresql",
        "host": "127.0.0.1",
        "port": 5432,
        "database": own["NAME"],
        "username": own["USER"] or "postgres",
        "query": "SELECT username AS customer_id, password FROM auth_user",
    }
    response = key_client.post("/api/v1/data-sources/", fields, format="json")
    assert response.status_code == 400
    assert "internal address" in " ".join(response.json()["errors"]["host"])

    # A source stored before the policy (or before the operator withdrew an allowance) is refused when it connects.
    fields.pop("kind")
    source = DataSource.objects.create(kind=SourceKind.POSTGRESQL, department=department, **fields)
    run = data_source_run_now(source_id=source.pk)
    assert run.status == RunStatus.FAILED
    assert "127.0.0.1 is, or resolves to, an internal address" in run.error
    assert run.read_count == 0
    assert not QuarantinedRow.objects.exists()


# --- connect time: the address checked is the address connected to --------------------------


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]] = []
    pages: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:
        type(self).seen.append((self.path, dict(self.headers.items())))
        status, headers, body = type(self).pages.get(self.path.split("?")[0], (404, {}, b"{}"))
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[type[Recorder], int]]:
    handler = type("Handler", (Recorder,), {"seen": [], "pages": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def fake_dns(monkeypatch, answers: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    """crm.example resolves to each of ``answers`` in turn (the last one from then on)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host != "crm.example":
            return real(host, port, *args, **kwargs)
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def http_source(url: str, **options: Any) -> DataSource:
    return data_source_save(
        source=DataSource(name=f"api-{uuid.uuid4().hex[:6]}", kind=SourceKind.HTTP, url=url, options=options),
        actor=SYSTEM,
        password="Bearer s3cret",
    )


def test_dns_rebinding_to_an_internal_address_is_refused_at_connect_time(settings, monkeypatch, server):
    handler, port = server
    settings.DATA_SOURCE_ALLOWED_NETWORKS = []
    asked = fake_dns(monkeypatch, ["93.184.216.34", "127.0.0.1"])  # public when saved, loopback when connecting
    source = http_source(f"http://crm.example:{port}/customers")

    run = data_source_run_now(source_id=source.pk)

    assert len(asked) >= 2
    assert run.status == RunStatus.FAILED
    assert "crm.example is, or resolves to, an internal address" in run.error
    assert handler.seen == []


def test_the_connection_goes_to_the_address_that_was_checked(settings, monkeypatch, server):
    handler, port = server
    handler.pages["/customers"] = (200, {}, b"[]")
    settings.DATA_SOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    fake_dns(monkeypatch, ["127.0.0.1"])  # not in any real DNS: only the checked address can reach the server
    source = http_source(f"http://crm.example:{port}/customers", pagination="none")

    run = data_source_run_now(source_id=source.pk)

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert handler.seen[0][1]["Host"] == f"crm.example:{port}"


@pytest.mark.parametrize("style", ["next_url", "link_header"])
def test_a_next_page_on_another_host_is_refused_and_never_gets_the_secret(style, server):
    handler, port = server
    other = f"http://localhost:{port}/page2"  # the same server under another name: it would see the header
    if style == "next_url":
        handler.pages["/page1"] = (200, {}, b'{"results": [{"customer_id": "X"}], "next": "%s"}' % other.encode())
    else:
        handler.pages["/page1"] = (200, {"Link": f'<{other}>; rel="next"'}, b'[{"customer_id": "X"}]')
    source = http_source(f"http://127.0.0.1:{port}/page1", pagination=style)
    if style == "next_url":
        source.records_path = "results"
        source.save(update_fields=["records_path"])

    run = data_source_run_now(source_id=source.pk)

    assert run.status == RunStatus.FAILED
    assert "another origin" in run.error
    assert [path for path, _ in handler.seen] == ["/page1"]


def test_connection_errors_do_not_tell_which_ports_are_open(tcp_port):
    """A closed port, a port that accepts and hangs up, and one that accepts and says nothing read the same."""
    errors = set()
    for kind in (SourceKind.POSTGRESQL, SourceKind.MYSQL):
        for port in (1, tcp_port(hang_up=True), tcp_port()):
            source = data_source_save(
                source=DataSource(
                    name=f"db-{uuid.uuid4().hex[:6]}",
                    kind=kind,
                    host="127.0.0.1",
                    port=port,
                    database="x",
                    username="x",
                    query="SELECT 1",
                    timeout_seconds=2,
                ),
                actor=SYSTEM,
            )
            errors.add(data_source_run_now(source_id=source.pk).error)
    assert errors == {"Could not connect to 127.0.0.1."}
