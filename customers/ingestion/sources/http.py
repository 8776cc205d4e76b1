"""An HTTP API source: JSON pages from a URL, with an auth header, pagination, timeouts and retries.

Options (DataSource.options), all optional:

    pagination     "next_url" (default: follow a URL found at next_path, e.g. DRF's "next"),
                   "link_header" (RFC 8288 rel="next"), "page", "offset", "cursor" or "none"
    next_path      dotted path to the next page's URL                  (default "next")
    page_param     page number parameter, start_page its first value   ("page", 1)
    size_param     page size parameter, sent with page and cursor      ("page_size")
    offset_param   / limit_param for offset pagination                 ("offset", "limit")
    cursor_param   / cursor_path for cursor pagination                 ("cursor", "next_cursor")
    since_param    parameter that receives the stored cursor value for incremental pulls
    params         extra query parameters (an object)
    backoff_seconds first retry delay, doubled each time               (0.5)
    max_pages      stop after this many pages                          (100000)

Connection errors, timeouts, 429 and 5xx are retried ``max_retries`` times with exponential
backoff, honouring Retry-After. Redirects are refused rather than followed, and a ``next`` URL or
Link header that points to another origin (scheme, host, port) than the source's URL fails the run,
so the auth header is never sent to another host. Every connection goes to an address checked
by the egress policy just before it is opened (see customers.ingestion.egress); a connection
that fails or times out is reported as "Could not connect to <host>", nothing more. Connect and
read together take at most ``timeout_seconds`` per request.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from customers.ingestion.mapping import get_path
from customers.ingestion.readers.chunks import BadRow, Chunk, Reader
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
from customers.models import DataSource

PAGINATION_STYLES = ("next_url", "link_header", "page", "offset", "cursor", "none")
_MAX_BACKOFF_SECONDS = 30.0
_MAX_RETRY_AFTER_SECONDS = 120.0
_READ_BYTES = 256 * 1024


class _CheckedConnection(HTTPConnection):
    """Resolves and checks the host as each connection opens, then connects to that very address."""

    def _new_conn(self):  # type: ignore[no-untyped-def]
        self._dns_host = connect_address(self.host, self.port)
        return super()._new_conn()


class _CheckedHTTPSConnection(HTTPSConnection):
    # TLS still verifies the certificate against the host name (server_hostname is self.host).
    def _new_conn(self):  # type: ignore[no-untyped-def]
        self._dns_host = connect_address(self.host, self.port)
        return super()._new_conn()


class _CheckedPool(HTTPConnectionPool):
    ConnectionCls = _CheckedConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class EgressAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedPool, "https": _CheckedHTTPSPool}


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").rstrip("."), parts.port or default


class HttpReader(Reader):
    def __init__(self, source: DataSource) -> None:
        self.source = source
        self.options: dict[str, Any] = dict(source.options or {})
        self.style = self.options.get("pagination", "next_url")
        if self.style not in PAGINATION_STYLES:
            raise SourceError(f"Unknown pagination {self.style!r}; use one of {', '.join(PAGINATION_STYLES)}.")
        self.builder = RecordColumns(source.column_mapping)
        self.session = requests.Session()
        self.session.trust_env = False  # no proxies or .netrc credentials from the worker's environment
        self.session.mount("http://", EgressAdapter())
        self.session.mount("https://", EgressAdapter())
        self.host = urlsplit(source.url).hostname or source.url
        self.session.headers["Accept"] = "application/json"
        self.session.headers["User-Agent"] = "churn-platform-ingestion/1"
        secret = decrypt_secret(source.secret_encrypted)
        if secret:
            self.session.headers[source.auth_header or "Authorization"] = secret
        self.final_cursor: Any = None
        self.details = {"format": "http", "layout": "mapped" if source.column_mapping else "records", "pages": 0}

    def notes(self) -> list[str]:
        if self.builder.ignored:
            return [f"Fields ignored (not in the contract): {', '.join(sorted(self.builder.ignored)[:20])}."]
        return []

    # requests

    def fetch(self, url: str, params: dict[str, Any]) -> Any:
        """One page as parsed JSON, retrying what is worth retrying."""
        source = self.source
        backoff = float(self.options.get("backoff_seconds", 0.5))
        limit = settings.INGESTION_HTTP_MAX_PAGE_BYTES
        connect, read = timeouts(source)
        problem = ""
        for attempt in range(source.max_retries + 1):
            if attempt:
                time.sleep(min(backoff * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS))
            deadline = time.monotonic() + connect + read
            try:
                response = self.session.get(
                    url, params=params, timeout=(connect, read), allow_redirects=False, stream=True
                )
            except (requests.ConnectionError, requests.Timeout):
                problem = str(cannot_connect(self.host))
                continue
            with response:
                status = response.status_code
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}"
                    retry_after = response.headers.get("Retry-After", "")
                    if retry_after.isdigit() and attempt < source.max_retries:
                        time.sleep(min(float(retry_after), _MAX_RETRY_AFTER_SECONDS))
                    continue
                if 300 <= status < 400:
                    raise SourceError(
                        f"{url} redirects to {response.headers.get('Location', '?')}; "
                        "set the source's URL to the final address."
                    )
                try:
                    body = self._body(response, limit, deadline)
                except (requests.RequestException, OSError):
                    problem = str(cannot_connect(self.host))
                    continue
                if body is None:
                    problem = str(cannot_connect(self.host))
                    continue
                if status >= 400:
                    excerpt = body[:300].decode("utf-8", "replace")
                    raise SourceError(f"{url} answered HTTP {status}: {excerpt}")
                if len(body) > limit:
                    raise SourceError(f"A page of {url} is larger than {limit} bytes (INGESTION_HTTP_MAX_PAGE_BYTES).")
                try:
                    return json.loads(body), response.headers
                except ValueError as exc:
                    raise SourceError(f"{url} did not answer JSON: {exc}") from None
        raise SourceError(f"{url} failed {source.max_retries + 1} times; last: {problem}")

    @staticmethod
    def _body(response: requests.Response, limit: int, deadline: float) -> bytes | None:
        """Up to limit + 1 bytes of the body, or None when the deadline passes first."""
        parts, size = [], 0
        while size <= limit:
            if time.monotonic() > deadline:
                return None
            part = response.raw.read(min(_READ_BYTES, limit + 1 - size), decode_content=True)
            if not part:
                break
            parts.append(part)
            size += len(part)
        return b"".join(parts)

    # pages

    def chunks(self) -> Iterator[Chunk]:
        source, options = self.source, self.options
        url = source.url
        params: dict[str, Any] = dict(options.get("params") or {})
        size_param = options.get("size_param", "page_size")
        if self.style in ("page", "cursor") and size_param:
            params[size_param] = source.page_size
        if self.style == "page":
            params[options.get("page_param", "page")] = int(options.get("start_page", 1))
        if self.style == "offset":
            params[options.get("offset_param", "offset")] = 0
            params[options.get("limit_param", "limit")] = source.page_size
        since_param = options.get("since_param")
        if source.cursor_field and since_param and source.cursor_value is not None:
            since = decode_cursor(source.cursor_value)
            params[since_param] = since.isoformat() if hasattr(since, "isoformat") else since
        position = 0
        largest: Any = None
        visited: set[str] = set()
        for index in range(int(options.get("max_pages", 100_000))):
            data, headers = self.fetch(url, params)
            self.details["pages"] = index + 1
            try:
                records = get_path(data, source.records_path) if source.records_path else data
            except KeyError:
                raise SourceError(f"The response has no {source.records_path!r}.") from None
            if not isinstance(records, list):
                raise SourceError(
                    f"The records at {source.records_path or 'the top level'} are not a list; set records_path."
                )
            good, lines, bad = [], [], []
            for record in records:
                position += 1
                if isinstance(record, dict):
                    good.append(record)
                    lines.append(position)
                else:
                    bad.append(
                        BadRow(
                            line=position,
                            raw={"_text": json.dumps(record)[:10_000]},
                            errors={"non_field_errors": ["Must be a JSON object."]},
                        )
                    )
                    continue
                if source.cursor_field and record.get(source.cursor_field) is not None:
                    value = record[source.cursor_field]
                    with contextlib.suppress(TypeError):  # values of mixed types are not compared
                        largest = value if largest is None or value > largest else largest
            if good or bad:
                yield self.builder.build(good, index=index, lines=np.array(lines, dtype=np.int64), malformed=bad)
            following = self._next(url, data, headers, params, len(records))
            if following is None:
                break
            url, key = following
            if key in visited:
                raise SourceError(f"The pagination loops back to {key}.")
            visited.add(key)
        # Pages need not come in cursor order, so the cursor moves only once every page is in.
        self.final_cursor = encode_cursor(largest) if largest is not None else None

    def _same_origin(self, url: str) -> str:
        """A next page's URL, refused when it leaves the source's origin (the secret goes with every request)."""
        if origin(url) != origin(self.source.url):
            scheme, host, port = origin(url)
            raise SourceError(
                f"The next page is at {scheme}://{host}:{port}, another origin than the source's URL; pages are "
                "read only from the source's own origin, so that its secret is never sent elsewhere."
            )
        return url

    def _next(self, url: str, data: Any, headers: Any, params: dict[str, Any], count: int) -> tuple[str, str] | None:
        """(next URL, a key naming the page) with params updated in place, or None after the last page."""
        options, size = self.options, self.source.page_size
        if self.style == "none" or count == 0:
            return None
        if self.style == "next_url":
            try:
                nxt = get_path(data, options.get("next_path", "next"))
            except KeyError:
                return None
            if not nxt:
                return None
            params.clear()  # the next URL carries its own query
            nxt = self._same_origin(urljoin(url, str(nxt)))
            return nxt, nxt
        if self.style == "link_header":
            link = requests.utils.parse_header_links(headers.get("Link", "")) if headers.get("Link") else []
            nxt = next((item["url"] for item in link if item.get("rel") == "next"), None)
            params.clear()
            if not nxt:
                return None
            nxt = self._same_origin(urljoin(url, nxt))
            return nxt, nxt
        if self.style == "page":
            if count < size:
                return None
            key = options.get("page_param", "page")
            params[key] = int(params[key]) + 1
            return url, f"{key}={params[key]}"
        if self.style == "offset":
            if count < size:
                return None
            key = options.get("offset_param", "offset")
            params[key] = int(params[key]) + count
            return url, f"{key}={params[key]}"
        # cursor
        try:
            token = get_path(data, options.get("cursor_path", "next_cursor"))
        except KeyError:
            return None
        if not token:
            return None
        key = options.get("cursor_param", "cursor")
        params[key] = token
        return url, f"{key}={token}"
