"""PostgreSQL, MySQL/MariaDB and MongoDB sources, read in pages through a server-side cursor.

The query runs once in a read-only transaction and rows arrive page by page (a named cursor on
PostgreSQL, an unbuffered cursor on MySQL, a batched cursor on MongoDB), so memory holds one page.
With a cursor field, only rows whose value is >= the largest one already ingested are read, in
that order; the boundary rows are read again (they count as unchanged) so that rows sharing the
boundary value are never skipped. The cursor advances with each committed page.
"""

from __future__ import annotations

import abc
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import numpy as np

from customers.ingestion.readers.chunks import Chunk, Reader
from customers.ingestion.readers.records import RecordColumns
from customers.ingestion.secrets import decrypt_secret
from customers.ingestion.sources import (
    SourceError,
    cannot_connect,
    connect_address,
    decode_cursor,
    encode_cursor,
    timeouts,
)
from customers.models import DataSource, SourceKind

DEFAULT_PORTS = {SourceKind.POSTGRESQL: 5432, SourceKind.MYSQL: 3306, SourceKind.MONGODB: 27017}


def plain(value: Any) -> Any:
    """Driver types the validator does not know (Decimal, bytes, ObjectId, UUID) as plain values."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, uuid.UUID):
        return str(value)
    name = type(value).__name__
    if name == "ObjectId":
        return str(value)
    if name == "Decimal128":
        return float(value.to_decimal())
    return value


class _PagedReader(Reader):
    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.builder = RecordColumns(source.column_mapping)
        self.cursor_from = decode_cursor(source.cursor_value) if source.cursor_field else None
        self.details = {
            "format": source.kind,
            "layout": "mapped" if source.column_mapping else "records",
            "incremental_from": source.cursor_value if source.cursor_field else None,
        }

    def notes(self) -> list[str]:
        if self.builder.ignored:
            return [f"Columns ignored (not in the contract): {', '.join(sorted(self.builder.ignored)[:20])}."]
        return []

    @abc.abstractmethod
    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        """The query's rows as dicts, a page at a time."""

    def chunks(self) -> Iterator[Chunk]:
        position = 0
        cursor_field = self.source.cursor_field
        for index, records in enumerate(self._pages()):
            if cursor_field and records and cursor_field not in records[-1]:
                raise SourceError(f"The rows have no column {cursor_field!r} to use as the cursor.")
            lines = np.arange(position + 1, position + len(records) + 1, dtype=np.int64)
            position += len(records)
            yield self.builder.build(
                records,
                index=index,
                lines=lines,
                cursor=encode_cursor(records[-1][cursor_field]) if cursor_field and records else None,
            )


class SqlReader(_PagedReader):
    """PostgreSQL through psycopg2, MySQL and MariaDB through PyMySQL."""

    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        source = self.source
        password = decrypt_secret(source.secret_encrypted)
        query = source.query.strip().rstrip(";").strip()
        if not query:
            raise SourceError("The source has no query.")
        if source.kind == SourceKind.POSTGRESQL:
            yield from self._postgres(query, password)
        else:
            yield from self._mysql(query, password)

    def _postgres(self, query: str, password: str) -> Iterator[list[dict[str, Any]]]:
        import psycopg2
        from psycopg2 import sql

        source = self.source
        options = source.options or {}
        port = source.port or DEFAULT_PORTS[SourceKind.POSTGRESQL]
        connect, read = timeouts(source)
        address = connect_address(source.host, port)
        try:
            # libpq connects to hostaddr (the checked address) and keeps host for TLS verification.
            conn = psycopg2.connect(
                host=source.host,
                hostaddr=address if address != source.host else None,
                port=port,
                dbname=source.database,
                user=source.username,
                password=password,
                connect_timeout=max(int(connect), 1),
                sslmode=options.get("sslmode", "prefer"),
                application_name="churn-ingestion",
                # a peer that accepts and then says nothing is given up on like one that never answers
                keepalives=1,
                keepalives_idle=max(int(read), 1),
                keepalives_interval=1,
                keepalives_count=1,
                tcp_user_timeout=int(read * 1000),
            )
        except psycopg2.Error:
            raise cannot_connect(source.host) from None
        try:
            conn.set_session(readonly=True)
            with conn.cursor() as setup:
                setup.execute("SET statement_timeout = %s", (int(read * 1000),))
            statement: Any = sql.SQL(query)
            params: tuple[Any, ...] = ()
            if source.cursor_field:
                field = sql.Identifier(source.cursor_field)
                where = sql.SQL("WHERE {} >= %s").format(field) if self.cursor_from is not None else sql.SQL("")
                statement = sql.SQL("SELECT * FROM ({}) AS churn_source {} ORDER BY {}").format(statement, where, field)
                params = (self.cursor_from,) if self.cursor_from is not None else ()
            cursor = conn.cursor(name=f"churn_ingest_{uuid.uuid4().hex[:12]}")
            cursor.itersize = source.page_size
            try:
                cursor.execute(statement, params)
                while True:
                    rows = cursor.fetchmany(source.page_size)
                    if not rows:
                        break
                    names = [d[0] for d in cursor.description]
                    yield [{n: plain(v) for n, v in zip(names, row, strict=True)} for row in rows]
            except psycopg2.Error as exc:
                raise SourceError(f"The PostgreSQL query failed: {str(exc).strip()}") from None
        finally:
            conn.close()

    def _mysql(self, query: str, password: str) -> Iterator[list[dict[str, Any]]]:
        import pymysql
        import pymysql.cursors

        source = self.source
        options = source.options or {}
        port = source.port or DEFAULT_PORTS[SourceKind.MYSQL]
        connect, read = timeouts(source)
        address = connect_address(source.host, port)
        try:
            conn = pymysql.connect(
                host=address,
                port=port,
                user=source.username,
                password=password,
                database=source.database or None,
                connect_timeout=connect,
                read_timeout=read,
                write_timeout=read,
                charset=options.get("charset", "utf8mb4"),
                cursorclass=pymysql.cursors.SSDictCursor,
                ssl={"ca": options["ssl_ca"]} if options.get("ssl_ca") else None,
            )
        except pymysql.MySQLError:
            raise cannot_connect(source.host) from None
        try:
            statement = query
            params: tuple[Any, ...] = ()
            if source.cursor_field:
                field = "`" + source.cursor_field.replace("`", "``") + "`"
                where = f"WHERE {field} >= %s" if self.cursor_from is not None else ""
                statement = f"SELECT * FROM ({query}) AS churn_source {where} ORDER BY {field}"  # noqa: S608 - the source's own query
                params = (self.cursor_from,) if self.cursor_from is not None else ()
            with conn.cursor() as cursor:
                cursor.execute("START TRANSACTION READ ONLY")
                cursor.execute(statement, params or None)
                while True:
                    rows = cursor.fetchmany(source.page_size)
                    if not rows:
                        break
                    yield [{k: plain(v) for k, v in row.items()} for row in rows]
        except pymysql.MySQLError as exc:
            raise SourceError(f"The MySQL query failed: {_mysql_message(exc)}") from None
        finally:
            conn.close()


class MongoReader(_PagedReader):
    """A MongoDB collection through pymongo; the query is a JSON filter document."""

    def _pages(self) -> Iterator[list[dict[str, Any]]]:
        import pymongo
        from pymongo.errors import PyMongoError

        source = self.source
        options = source.options or {}
        try:
            filter_doc = json.loads(source.query) if source.query.strip() else {}
        except ValueError as exc:
            raise SourceError(f"The MongoDB filter is not valid JSON: {exc}") from None
        if not isinstance(filter_doc, dict):
            raise SourceError("The MongoDB filter must be a JSON object.")
        if not source.collection:
            raise SourceError("The source names no collection.")
        if source.cursor_field and self.cursor_from is not None:
            filter_doc = {"$and": [filter_doc, {source.cursor_field: {"$gte": self.cursor_from}}]}
        password = decrypt_secret(source.secret_encrypted)
        credentials = {"username": source.username, "password": password} if source.username else {}
        connect, read = timeouts(source)
        port = source.port or DEFAULT_PORTS[SourceKind.MONGODB]
        client: Any = pymongo.MongoClient(
            # the checked address, alone: no discovery of other (unchecked) members
            host=connect_address(source.host, port),
            port=port,
            directConnection=True,
            authSource=options.get("auth_source", source.database or "admin"),
            serverSelectionTimeoutMS=int(connect * 1000),
            connectTimeoutMS=int(connect * 1000),
            socketTimeoutMS=int(read * 1000),
            timeoutMS=int((connect + read) * 1000),
            **credentials,
        )
        try:
            cursor = client[source.database or "test"][source.collection].find(filter_doc)
            if source.cursor_field:
                cursor = cursor.sort(source.cursor_field, 1)
            cursor = cursor.batch_size(source.page_size)
            page: list[dict[str, Any]] = []
            for document in cursor:
                page.append({k: _plain_document(v) for k, v in document.items()})
                if len(page) >= source.page_size:
                    yield page
                    page = []
            if page:
                yield page
        except PyMongoError as exc:
            raise SourceError(f"Reading MongoDB {source.collection!r} failed: {exc}") from None
        finally:
            client.close()


def _mysql_message(exc: Exception) -> str:
    return str(exc.args[-1]) if exc.args else str(exc)


def _plain_document(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_document(v) for v in value]
    return plain(value)
