"""Reads on a real streaming replica, writes never: a standby made by the test from the test server.

The fixture takes a base backup of the PostgreSQL server the tests use (pg_basebackup -R: it writes
standby.signal and primary_conninfo), starts it as a hot standby on a free 127.0.0.1 port as the
postgres user, points the "replica" alias at the test database on it, and stops it by its PID.
The primary must accept replication connections from 127.0.0.1: when its pg_hba.conf has no such
line, the fixture adds `host replication all 127.0.0.1/32 trust` once and reloads (README).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

REPLICATION_LINE = "host replication all 127.0.0.1/32 trust"


def _bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.skip(f"no PostgreSQL server binaries ({name}) under /usr/lib/postgresql")
    return str(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _allow_replication(cursor) -> None:
    cursor.execute("SHOW hba_file")
    hba = Path(cursor.fetchone()[0])
    lines = [line.split() for line in hba.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if any(parts[:2] == ["host", "replication"] and parts[3:4] in (["127.0.0.1/32"], ["all"]) for parts in lines):
        return
    if not os.access(hba, os.W_OK):
        pytest.skip(f"{hba} allows no replication from 127.0.0.1 and is not writable here")
    with hba.open("a") as handle:
        handle.write(f"\n# Added by tests/deploy/test_replica.py: the streaming replica test\n{REPLICATION_LINE}\n")
    cursor.execute("SELECT pg_reload_conf()")


SLOT_PREFIX = "churn_test_standby_"


@pytest.fixture(scope="module")
def standby(django_db_setup, django_db_blocker):
    """(port, pid) of a hot standby of the test server."""
    settings_dict = connections["default"].settings_dict
    if "postgresql" not in settings_dict["ENGINE"]:
        pytest.skip("needs PostgreSQL")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a second cluster as")
    with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
        _allow_replication(cursor)
        # A hot standby needs these at least as high as on its primary.
        inherited = {}
        for name in ("max_connections", "max_worker_processes", "max_wal_senders", "max_prepared_transactions",
                     "max_locks_per_transaction"):
            cursor.execute(f"SHOW {name}")
            inherited[name] = cursor.fetchone()[0]
        # A slot keeps the primary's WAL until the standby has it: without one, other writers on
        # a shared server (benchmarks) recycled a segment before the standby streamed it and it
        # never caught up. Slots a crashed run left behind are dropped first: they pin WAL forever.
        cursor.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                       "WHERE slot_name LIKE %s AND NOT active", [SLOT_PREFIX + "%"])  # fmt: skip
    slot = f"{SLOT_PREFIX}{os.getpid()}"
    directory = Path(tempfile.mkdtemp(prefix="churn-replica-"))
    shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    port = _free_port()
    backup = _as_postgres(_bin("pg_basebackup"), "-h", settings_dict.get("HOST") or "127.0.0.1",
                          "-p", str(settings_dict.get("PORT") or 5432), "-U", settings_dict.get("USER") or "postgres",
                          "-D", str(data), "-R", "-X", "stream", "-c", "fast", "-C", "-S", slot)
    if backup.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"pg_basebackup failed: {backup.stderr}")
    # Debian keeps the server's configuration outside the data directory; the standby gets its own.
    (data / "postgresql.conf").write_text(
        f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{directory}'\n"
        "hot_standby = on\nfsync = off\nshared_buffers = 16MB\n"
        + "".join(f"{name} = {value}\n" for name, value in inherited.items())
    )
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    (data / "pg_ident.conf").write_text("")
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        shutil.chown(data / name, "postgres", "postgres")
    started = _as_postgres(_bin("pg_ctl"), "-D", str(data), "-l", str(directory / "log"), "-w", "-t", "60", "start")
    if started.returncode != 0:
        log = (directory / "log").read_text() if (directory / "log").exists() else ""
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"the standby did not start: {started.stderr}{log[-2000:]}")
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    try:
        yield port, pid, str(directory / "log")
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        shutil.rmtree(directory, ignore_errors=True)
        with django_db_blocker.unblock(), connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                           "WHERE slot_name = %s AND NOT active", [slot])  # fmt: skip


@pytest.fixture
def replica(standby, django_db_blocker):
    """The "replica" alias on the standby, for this test; removed afterwards.

    Not pytest-django's transactional_db: its test case forbids every alias it was not built
    with. The test database is flushed afterwards as transactional_db would (the standby follows).
    """
    from django.core.management import call_command

    port, _, log = standby
    default = connections["default"].settings_dict
    replica_settings = {**default, "HOST": "127.0.0.1", "PORT": str(port), "TEST": {**default.get("TEST", {})},
                        "LOG": log}
    connections.settings["replica"] = replica_settings
    with django_db_blocker.unblock():
        try:
            yield connections["replica"]
        finally:
            connections["replica"].close()
            del connections["replica"]
            del connections.settings["replica"]
            call_command("flush", interactive=False, verbosity=0, database="default")


@pytest.fixture
def staff_client(replica):
    from django.test import Client

    from tests.factories import DepartmentFactory, UserFactory

    client = Client()
    client.force_login(UserFactory(username="operator", department=DepartmentFactory(name="retention"), is_staff=True))
    return client


@pytest.fixture
def api_key_client(replica):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create
    from tests.factories import DepartmentFactory

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=api_key_create(department=DepartmentFactory(name="retention"), name="t")[1])
    return client


def wait_for_replay(replica_connection, timeout: float = 90) -> float:
    """Seconds until the standby has replayed everything the primary has written so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()")
        target = cursor.fetchone()[0]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with replica_connection.cursor() as cursor:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
            if cursor.fetchone()[0]:
                return time.monotonic() - started
        time.sleep(0.02)
    with replica_connection.cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn(), (SELECT status FROM pg_stat_wal_receiver)")
        state = cursor.fetchone()
    log = Path(replica_connection.settings_dict["LOG"]).read_text()[-3000:]
    pytest.fail(f"the standby did not replay {target} within {timeout}s (at {state}); its log: {log}")


def _tables(queries) -> str:
    return " ".join(q["sql"] for q in queries)


@pytest.mark.django_db
def test_without_a_replica_every_read_is_on_the_primary():
    # (Also what makes pytest-django create the test database this module's standby copies.)
    from churn_infra.replica import read_alias, replica_reads

    assert "replica" not in connections.settings
    with replica_reads():
        assert read_alias() == "default"
        assert CustomerFactory().pk


def test_the_standby_is_a_read_only_streaming_replica(replica):
    with replica.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is True
    customer = CustomerFactory(customer_id="C-REPLICATED")
    lag = wait_for_replay(replica)
    with replica.cursor() as cursor:
        cursor.execute("SELECT customer_id FROM customers_customer WHERE id = %s", [customer.pk])
        assert cursor.fetchone() == ("C-REPLICATED",)
    print(f"replication lag observed: {lag * 1000:.0f} ms")


def test_staff_pages_read_from_the_replica(replica, staff_client):
    CustomerFactory(customer_id="C-ON-REPLICA", tenure_months=3)
    client = staff_client  # its session row was written on the primary
    wait_for_replay(replica)
    with CaptureQueriesContext(replica) as on_replica, CaptureQueriesContext(connections["default"]) as on_primary:
        response = client.get("/staff/customers/C-ON-REPLICA/")
    assert response.status_code == 200
    assert b"C-ON-REPLICA" in response.content
    assert "customers_customer" in _tables(on_replica.captured_queries)
    assert "django_session" in _tables(on_replica.captured_queries)
    assert "customers_customer" not in _tables(on_primary.captured_queries)


def test_writes_and_api_calls_never_reach_the_replica(replica, api_key_client):
    key_client = api_key_client
    from tests.factories import record

    with CaptureQueriesContext(replica) as on_replica:
        created = key_client.post("/api/v1/customers/", record(customer_id="C-WRITTEN"), format="json")
        read_back = key_client.get("/api/v1/customers/C-WRITTEN/")
    assert created.status_code == 201, created.content
    assert read_back.status_code == 200  # not under DATABASE_REPLICA_PATHS: read on the primary
    assert on_replica.captured_queries == []


def test_a_read_after_a_write_or_inside_a_transaction_stays_on_the_primary(replica):
    from churn_infra.replica import replica_reads
    from customers.models import Customer

    CustomerFactory(customer_id="C-BEFORE")
    wait_for_replay(replica)
    with replica_reads():
        with CaptureQueriesContext(replica) as on_replica:
            assert Customer.objects.filter(customer_id="C-BEFORE").exists()
        assert len(on_replica.captured_queries) == 1
        with CaptureQueriesContext(replica) as on_replica, transaction.atomic():
            Customer.objects.filter(customer_id="C-BEFORE").exists()
        assert on_replica.captured_queries == []
        CustomerFactory(customer_id="C-JUST-WRITTEN")  # pins this block to the primary
        with CaptureQueriesContext(replica) as on_replica:
            # Not replicated yet or not: the read after the write sees it, on the primary.
            assert Customer.objects.filter(customer_id="C-JUST-WRITTEN").exists()
        assert on_replica.captured_queries == []
