"""Helpers for ingestion tests: Telco-layout files, and running an upload through its worker task."""

from __future__ import annotations

import csv
import io
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import Actor
from customers.ingestion.services import ingestion_upload
from customers.models import IngestionRun

TELCO_ROW: dict[str, str] = {
    "customerID": "C-1",
    "gender": "Female",
    "SeniorCitizen": "0",
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": "12",
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "Fiber optic",
    "OnlineSecurity": "No",
    "OnlineBackup": "No",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "Yes",
    "StreamingMovies": "Yes",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": "85.0",
    "TotalCharges": "1020.0",
    "Churn": "No",
}
TELCO_HEADER = list(TELCO_ROW)


def telco(customer_id: str, **overrides: Any) -> dict[str, str]:
    """A valid Telco-layout row; overrides by column name."""
    return {**TELCO_ROW, "customerID": customer_id, **{k: str(v) for k, v in overrides.items()}}


def telco_csv(rows: Iterable[Mapping[str, str] | str], *, header: list[str] | None = None, sep: str = ",") -> bytes:
    """CSV bytes; a str row is written as it is (for malformed lines)."""
    header = header or TELCO_HEADER
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        if isinstance(row, str):
            out.write(row + "\n")
        else:
            writer.writerow([row.get(name, "") for name in header])
    return out.getvalue().encode()


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Uploads go to a temporary directory; small chunks so that several make up a file."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    settings.INGESTION_CHUNK_ROWS = 4


@pytest.fixture(autouse=True)
def _loopback_sources(settings):  # type: ignore[no-untyped-def]
    """The test servers (PostgreSQL, MariaDB, HTTP, Redis) listen on 127.0.0.1: allow it, as an operator would.

    Tests of the egress policy itself set DATA_SOURCE_ALLOWED_NETWORKS back to nothing.
    """
    settings.DATA_SOURCE_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def upload(django_capture_on_commit_callbacks, department) -> Callable[..., IngestionRun]:  # type: ignore[no-untyped-def]
    """Upload bytes as the department's API client would, and let the worker task run (eagerly)."""

    def run(
        data: bytes, *, name: str = "customers.csv", force: bool = False, actor: Actor | None = None
    ) -> IngestionRun:
        actor = actor or Actor(department_id=department.pk, scopes=frozenset({"ingestion:write"}))
        with django_capture_on_commit_callbacks(execute=True):
            result, _ = ingestion_upload(upload=SimpleUploadedFile(name, data), actor=actor, force=force)
        result.refresh_from_db()
        return result

    return run


@pytest.fixture
def tcp_port() -> Iterator[Callable[..., int]]:
    """tcp_port(hang_up=False): a port on 127.0.0.1 that accepts and then hangs up at once, or never says a word."""
    stop = threading.Event()
    opened: list[tuple[socket.socket, threading.Thread]] = []
    accepted: list[socket.socket] = []

    def open_port(*, hang_up: bool = False) -> int:
        listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        listener.settimeout(0.2)

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                if hang_up:
                    conn.close()
                else:
                    accepted.append(conn)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        opened.append((listener, thread))
        return listener.getsockname()[1]

    yield open_port
    stop.set()
    for listener, thread in opened:
        thread.join()
        listener.close()
    for conn in accepted:
        conn.close()
