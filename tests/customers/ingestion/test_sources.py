"""Database sources against the real PostgreSQL and MariaDB here, MongoDB through mongomock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import mongomock
import psycopg2
import pymysql
import pytest
from django.core.exceptions import ValidationError

from accounts.services import SYSTEM
from customers.ingestion.secrets import decrypt_secret
from customers.ingestion.services import data_source_run_now, data_source_save
from customers.models import Customer, DataSource, RunStatus, SourceKind
from tests.factories import record

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = (
    "ext_id", "gender", "senior", "partner", "dependents", "tenure", "phone", "lines", "internet", "security",
    "backup", "protection", "support", "tv", "movies", "contract", "paperless", "payment", "monthly", "total",
    "changed_at",
)  # fmt: skip
MAPPING = {
    "ext_id": "customer_id",
    "senior": "senior_citizen",
    "tenure": "tenure_months",
    "phone": "phone_service",
    "lines": "multiple_lines",
    "internet": "internet_service",
    "security": "online_security",
    "backup": "online_backup",
    "protection": "device_protection",
    "support": "tech_support",
    "tv": "streaming_tv",
    "movies": "streaming_movies",
    "contract": "contract_type",
    "paperless": "paperless_billing",
    "payment": "payment_method",
    "monthly": "monthly_charges",
    "total": "total_charges",
    "changed_at": "",
}


def source_row(customer_id: str, *, tenure: int = 12, changed_at: datetime = T0, contract: str = "Month-to-month"):  # type: ignore[no-untyped-def]
    return (
        customer_id, "Female", False, True, False, tenure, True, "No", "Fiber optic", "No", "No", "No", "No",
        "Yes", "Yes", contract, True, "Electronic check", 85.0, round(85.0 * tenure, 2), changed_at,
    )  # fmt: skip


def make_source(kind: str, **fields) -> DataSource:  # type: ignore[no-untyped-def]
    password = fields.pop("password", "")
    source = DataSource(name=f"{kind}-{uuid.uuid4().hex[:6]}", kind=kind, page_size=3, **fields)
    return data_source_save(source=source, actor=SYSTEM, password=password)


# --- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_source_db():  # type: ignore[no-untyped-def]
    name = f"churn_source_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=name)
    with conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE crm_customers (ext_id text, gender text, senior bool, partner bool, dependents bool, "
            "tenure int, phone bool, lines text, internet text, security text, backup text, protection text, "
            "support text, tv text, movies text, contract text, paperless bool, payment text, monthly numeric, "
            "total numeric, changed_at timestamptz)"
        )
    yield name, conn
    conn.close()
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


def pg_insert(conn, rows) -> None:  # type: ignore[no-untyped-def]
    with conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO crm_customers VALUES ({', '.join(['%s'] * len(COLUMNS))})", rows)


def test_postgresql_source_pulls_in_pages_then_only_what_changed(pg_source_db):
    name, conn = pg_source_db
    pg_insert(conn, [source_row(f"PG-{i}", changed_at=T0 + timedelta(minutes=i)) for i in range(7)])
    pg_insert(conn, [source_row("PG-BAD", tenure=-3, changed_at=T0)])
    source = make_source(
        SourceKind.POSTGRESQL,
        host="127.0.0.1",
        database=name,
        username="postgres",
        password="not-needed-with-trust-auth",
        query="SELECT * FROM crm_customers",
        column_mapping=MAPPING,
        cursor_field="changed_at",
    )
    assert source.secret_encrypted
    assert "not-needed" not in source.secret_encrypted
    assert decrypt_secret(source.secret_encrypted) == "not-needed-with-trust-auth"

    first = data_source_run_now(source_id=source.pk)

    assert first.status == RunStatus.PARTIALLY_SUCCEEDED
    assert first.counts == {"read": 8, "created": 7, "updated": 0, "unchanged": 0, "rejected": 1}
    assert first.chunks.count() == 3  # pages of three
    assert first.quarantined_rows.get().raw["ext_id"] == "PG-BAD"
    assert Customer.objects.get(customer_id="PG-3").source == source.name
    source.refresh_from_db()
    assert source.cursor_value == {"type": "datetime", "value": (T0 + timedelta(minutes=6)).isoformat()}

    # a changed row and a new one, both newer than the cursor
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE crm_customers SET contract = 'Two year', changed_at = %s WHERE ext_id = 'PG-2'",
            (T0 + timedelta(hours=1),),
        )
    pg_insert(conn, [source_row("PG-NEW", changed_at=T0 + timedelta(hours=2))])

    second = data_source_run_now(source_id=source.pk)

    # the boundary row (PG-6, at the old cursor) is read again and is unchanged
    assert second.counts == {"read": 3, "created": 1, "updated": 1, "unchanged": 1, "rejected": 0}
    assert Customer.objects.get(customer_id="PG-2").contract_type == "Two year"


def test_postgresql_source_with_a_bad_query_fails_with_the_database_message(pg_source_db):
    name, _ = pg_source_db
    source = make_source(
        SourceKind.POSTGRESQL, host="127.0.0.1", database=name, username="postgres", query="SELECT * FROM nowhere"
    )
    run = data_source_run_now(source_id=source.pk)
    assert run.status == RunStatus.FAILED
    assert 'relation "nowhere" does not exist' in run.error


def test_unreachable_database_fails_the_run_not_the_worker():
    source = make_source(
        SourceKind.POSTGRESQL, host="127.0.0.1", port=1, database="x", username="x", query="SELECT 1", timeout_seconds=2
    )
    run = data_source_run_now(source_id=source.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == "Could not connect to 127.0.0.1."


# --- MySQL / MariaDB --------------------------------------------------------------------------


@pytest.fixture
def mysql_source_db():  # type: ignore[no-untyped-def]
    name = f"churn_source_{uuid.uuid4().hex[:8]}"
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.MySQLError as exc:
        pytest.fail(f"MariaDB is not reachable on 127.0.0.1:3306 ({exc}); .ci/run starts it")
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(
            f"CREATE TABLE `{name}`.crm_customers (ext_id varchar(64), gender varchar(10), senior bool, "
            "partner bool, dependents bool, tenure int, phone bool, `lines` varchar(20), internet varchar(20), "
            "security varchar(20), backup varchar(20), protection varchar(20), support varchar(20), tv varchar(20), "
            "movies varchar(20), contract varchar(20), paperless bool, payment varchar(30), monthly decimal(8,2), "
            "total decimal(10,2), changed_at datetime(6))"
        )
    yield name, conn
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


def test_mysql_source_pulls_in_pages_then_only_what_changed(mysql_source_db):
    name, conn = mysql_source_db
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    rows = [source_row(f"MY-{i}", changed_at=(T0 + timedelta(minutes=i)).replace(tzinfo=None)) for i in range(5)]
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO `{name}`.crm_customers VALUES ({placeholders})", rows)
    source = make_source(
        SourceKind.MYSQL,
        host="127.0.0.1",
        port=3306,
        database=name,
        username="root",
        query="SELECT * FROM crm_customers",
        column_mapping=MAPPING,
        cursor_field="changed_at",
    )

    first = data_source_run_now(source_id=source.pk)

    assert first.status == RunStatus.SUCCEEDED
    assert first.counts["created"] == 5
    assert Customer.objects.get(customer_id="MY-4").monthly_charges == 85.0  # DECIMAL read as a number
    with conn.cursor() as cur:
        cur.execute(
            f"UPDATE `{name}`.crm_customers SET tenure = 13, total = 1105, changed_at = %s WHERE ext_id = 'MY-1'",
            ((T0 + timedelta(hours=1)).replace(tzinfo=None),),
        )
    second = data_source_run_now(source_id=source.pk)
    assert second.counts == {"read": 2, "created": 0, "updated": 1, "unchanged": 1, "rejected": 0}
    assert Customer.objects.get(customer_id="MY-1").tenure_months == 13


# --- MongoDB ----------------------------------------------------------------------------------


def test_mongodb_source_maps_nested_documents(settings):
    settings.DATA_SOURCE_ALLOWED_NETWORKS = ["mongo.test"]  # allowed by name: connected to by name
    with mongomock.patch(servers=(("mongo.test", 27017),)):
        import pymongo

        collection = pymongo.MongoClient("mongo.test", 27017)["crm"]["customers"]
        documents = []
        for i in range(4):
            doc = {k: v for k, v in record(customer_id=f"MG-{i}").items() if k not in ("contract_type", "customer_id")}
            doc.update({"ref": f"MG-{i}", "plan": {"contract": "One year"}, "seq": i})
            documents.append(doc)
        documents.append({"ref": "MG-BAD", "plan": {}, "seq": 9})
        collection.insert_many(documents)
        source = make_source(
            SourceKind.MONGODB,
            host="mongo.test",
            port=27017,
            database="crm",
            collection="customers",
            query='{"seq": {"$lt": 100}}',
            column_mapping={"ref": "customer_id", "plan.contract": "contract_type", "seq": "", "_id": "", "plan": ""},
            cursor_field="seq",
        )

        run = data_source_run_now(source_id=source.pk)

    assert run.counts == {"read": 5, "created": 4, "updated": 0, "unchanged": 0, "rejected": 1}
    assert Customer.objects.get(customer_id="MG-2").contract_type == "One year"
    bad = run.quarantined_rows.get()
    assert bad.customer_id == "MG-BAD"
    assert "contract_type" in bad.errors
    assert run.details.get("notes") is None  # every field mapped or used


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": SourceKind.POSTGRESQL, "host": "db", "query": "DELETE FROM x"}, "query", "must read"),
        ({"kind": SourceKind.MYSQL, "query": "SELECT 1"}, "host", "needs a host"),
        ({"kind": SourceKind.HTTP, "url": "http://169.254.169.254/latest"}, "url", "internal address"),
        ({"kind": SourceKind.HTTP, "url": "http://x", "schedule": "every hour"}, "schedule", "cron"),
        ({"kind": SourceKind.HTTP, "url": "http://x", "column_mapping": {"a": "nope"}}, "column_mapping", "nope"),
        ({"kind": SourceKind.MONGODB, "collection": "c", "query": "[1]"}, "query", "JSON object"),
    ],
)
def test_source_settings_are_checked(fields, field, message):
    with pytest.raises(ValidationError) as caught:
        data_source_save(source=DataSource(name="bad", **fields), actor=SYSTEM)
    assert message in " ".join(caught.value.message_dict[field])


def test_passwords_need_a_real_key_in_production(settings):
    from cryptography.fernet import Fernet
    from django.core.exceptions import ImproperlyConfigured

    from customers.ingestion.secrets import encrypt_secret

    settings.PRODUCTION = True
    settings.DATA_SOURCE_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="DATA_SOURCE_ENCRYPTION_KEY"):
        encrypt_secret("secret")
    settings.DATA_SOURCE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    token = encrypt_secret("secret")
    assert decrypt_secret(token) == "secret"
    assert settings.SECRET_KEY not in token
