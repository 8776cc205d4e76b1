"""Files read in chunks of bounded memory, as columns keyed by contract field.

CSV: the file is cut into blocks at record ends and each block is parsed by pandas' C parser,
with enumeration and boolean columns read as categoricals (a 100,000-row Telco block takes about
25 MB instead of 125 MB as strings). Before trusting the parser, each block's lines are counted:
a line with the wrong number of fields is quarantined on its own, with its text and the count,
and a block whose records do not map one to one onto its lines (a quote left open, a quoted line
break) goes through the csv module line by line, which recovers every well-formed line around
the damage. JSON arrays are decoded one object at a time; JSON Lines one line at a time.
"""

from __future__ import annotations

import abc
import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd

from churn_ml.schema import BOOL_FIELDS, ENUM_FIELDS, MISSING
from churn_ml.schema.values import _json_type
from customers.ingestion.mapping import (
    IGNORE,
    LABEL,
    SKIPPED_COLUMNS,
    ColumnPlan,
    MappingError,
    get_path,
    plan_columns,
)
from customers.ingestion.sniff import (
    CSV_DELIMITERS,
    FALLBACK_ERRORS,
    SAMPLE_BYTES,
    FileFormat,
    FileRejected,
    describe_delimiter,
    fallback_decodes,
    sniff,
)

READ_BYTES = 1 << 20
# A JSON object or a CSV record larger than this is not a customer record; stop looking for its end.
MAX_RECORD_BYTES = 16 << 20
# A line that cannot be read is kept in quarantine up to this many characters.
MAX_RAW_TEXT = 10_000
# Lines a quoted field may span before an open quote is taken for a mistake.
MAX_QUOTED_LINES = 50

_CATEGORICAL_FIELDS = frozenset((*BOOL_FIELDS, *ENUM_FIELDS))


@dataclass
class BadRow:
    """A row that could not be read as a record at all (wrong field count, broken JSON)."""

    line: int
    raw: dict[str, Any]
    errors: dict[str, list[str]]
    customer_id: str = ""


@dataclass
class Chunk:
    """Rows of one source, as contract-field columns, with what is needed to quarantine any of them."""

    index: int
    n: int
    columns: dict[str, Any]
    lines: np.ndarray
    raw: Callable[[int], dict[str, Any]]
    labels: Any = None
    malformed: list[BadRow] = field(default_factory=list)
    progress: float | None = None
    cursor: Any = None

    @property
    def read(self) -> int:
        return self.n + len(self.malformed)


class Reader(abc.ABC):
    """A source of chunks. ``details`` describes what was read; ``fatal`` is set when reading stopped early."""

    details: dict[str, Any]
    fatal: str = ""

    @abc.abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """The source's rows, chunk by chunk, with indexes counting from 0."""

    def notes(self) -> list[str]:
        return []


def open_file_reader(
    stream: IO[bytes], *, size: int | None, chunk_rows: int, mapping: Mapping[str, str] | None = None
) -> Reader:
    """A reader for a CSV, JSON or JSON Lines file; raises FileRejected when it cannot be one."""
    sample = stream.read(SAMPLE_BYTES)
    fmt = sniff(sample)
    if fmt.kind == "csv":
        return CsvReader(stream, sample, fmt, size=size, chunk_rows=chunk_rows, mapping=mapping)
    if fmt.kind == "jsonl":
        return JsonLinesReader(stream, sample, fmt, size=size, chunk_rows=chunk_rows, mapping=mapping)
    return JsonArrayReader(stream, sample, fmt, size=size, chunk_rows=chunk_rows, mapping=mapping)


def _text_excerpt(text: str) -> str:
    return text if len(text) <= MAX_RAW_TEXT else text[:MAX_RAW_TEXT] + "..."


# --- CSV ------------------------------------------------------------------------------------


class CsvReader(Reader):
    def __init__(
        self,
        stream: IO[bytes],
        sample: bytes,
        fmt: FileFormat,
        *,
        size: int | None,
        chunk_rows: int,
        mapping: Mapping[str, str] | None,
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.size = size
        self.buffer = sample[fmt.bom_bytes :]
        self.consumed = fmt.bom_bytes  # bytes of the file handed to parsing so far
        self.eof = len(sample) < SAMPLE_BYTES
        self._fallback_start = fallback_decodes()
        self._carry = b""

        header = self._header_line()
        names = self._header_names(header)
        try:
            self.plan = plan_columns(names, mapping)
        except MappingError as exc:
            raise FileRejected(str(exc)) from None
        if not self.plan.fields:
            shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
            raise FileRejected(
                f"The first line is not a header of known columns: split at each "
                f"{describe_delimiter(fmt.delimiter)} it reads {shown}. Name the columns as the contract's "
                "fields (customer_id, tenure_months, ...) or as the IBM Telco layout (customerID, tenure, ...)."
            )
        if self.plan.missing_required:
            raise FileRejected(f"The header lacks required columns: {self.plan.describe_missing()}.")
        self.names = names
        self.n_fields = len(names)
        self.dtypes = {
            name: "category" if self.plan.fields.get(name) in _CATEGORICAL_FIELDS or name == self.plan.label else str
            for name in names
        }
        # Blocks of about chunk_rows lines, judged by the sample's average line length.
        newlines = max(sample.count(b"\n"), 1)
        self.block_bytes = int(min(max(chunk_rows * len(sample) / newlines, 1), 64 << 20))
        self.details = {
            "format": "csv",
            "encoding": fmt.encoding_label,
            "delimiter": describe_delimiter(fmt.delimiter),
            "layout": self.plan.layout,
            "columns": names,
            "ignored_columns": self.plan.ignored,
        }

    # header

    def _header_line(self) -> bytes:
        while b"\n" not in self.buffer and not self.eof and len(self.buffer) < MAX_RECORD_BYTES:
            self._fill(len(self.buffer) + READ_BYTES)
        end = self.buffer.find(b"\n")
        end = len(self.buffer) if end < 0 else end + 1
        header, self.buffer = self.buffer[:end], self.buffer[end:]
        self.consumed += len(header)
        return header

    def _header_names(self, header: bytes) -> list[str]:
        text = header.decode(self.fmt.encoding, errors=FALLBACK_ERRORS).rstrip("\r\n")
        try:
            names = next(csv.reader([text], delimiter=self.fmt.delimiter), [])
        except csv.Error as exc:
            raise FileRejected(f"The header line cannot be read as CSV: {exc}.") from None
        names = [name.strip() or f"column_{i + 1}" for i, name in enumerate(names)]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise FileRejected(f"The header names the column {name!r} twice.")
            seen.add(name)
        return names

    # blocks

    def _fill(self, wanted: int = READ_BYTES) -> None:
        pieces = [self.buffer]
        size = len(self.buffer)
        while size < wanted:
            data = self.stream.read(min(max(wanted - size, READ_BYTES), 16 * READ_BYTES))
            if not data:
                self.eof = True
                break
            pieces.append(data)
            size += len(data)
        self.buffer = b"".join(pieces)

    def _next_block(self) -> bytes:
        if not self.eof and len(self.buffer) <= self.block_bytes:
            self._fill(self.block_bytes + 1)
        if self.eof and len(self.buffer) <= self.block_bytes:
            block, self.buffer = self.buffer, b""
            return block
        cut = _record_end(self.buffer, self.block_bytes)
        while cut <= 0 and not self.eof and len(self.buffer) < 2 * self.block_bytes + READ_BYTES:
            self._fill(len(self.buffer) + READ_BYTES)
            cut = _record_end(self.buffer, len(self.buffer))
        if cut <= 0 and self.eof:
            block, self.buffer = self.buffer, b""
            return block
        if cut <= 0:
            # An open quote that never closes: cut at a line end and let the careful parser sort it out.
            cut = self.buffer.rfind(b"\n", 0, 2 * self.block_bytes + READ_BYTES) + 1 or len(self.buffer)
        block, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return block

    def chunks(self) -> Iterator[Chunk]:
        line = 2
        index = 0
        while True:
            block = self._next_block()
            if block:
                self.consumed += len(block)
                chunk = self._parse_block(block, line, index)
                if self._carry:
                    self.buffer = self._carry + self.buffer
                    self.consumed -= len(self._carry)
                    block = block[: len(block) - len(self._carry)]
                    self._carry = b""
                line += block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
                if chunk.read:
                    yield chunk
                    index += 1
            if not self.buffer and self.eof:
                return

    def _progress(self) -> float | None:
        return min(self.consumed / self.size, 1.0) if self.size else None

    def notes(self) -> list[str]:
        replaced = fallback_decodes() - self._fallback_start
        if replaced:
            return [f"{replaced} byte sequence(s) were not valid {self.fmt.encoding_label} and were read as Latin-1."]
        return []

    def _parse_block(self, block: bytes, first_line: int, index: int) -> Chunk:
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == 10)
        if not block.endswith(b"\n"):
            ends = np.append(ends, len(block))
        starts = np.concatenate(([0], ends[:-1] + 1))
        lengths = ends - starts
        carriage = np.zeros(len(ends), dtype=bool)
        nonempty = lengths > 0
        carriage[nonempty] = data[ends[nonempty] - 1] == 13
        blank = (lengths - carriage) == 0

        fields = _per_line(data, ord(self.fmt.delimiter), starts, ends) + 1
        if b'"' in block:
            quotes = _per_line(data, ord('"'), starts, ends)
            if (quotes % 2).any():
                return self._parse_carefully(block, first_line, index)
            for i in np.flatnonzero((quotes > 0) & ~blank):
                fields[i] = len(self._split(self._line_text(block, starts[i], ends[i])) or ())
        bad = ~blank & (fields != self.n_fields)
        malformed = [
            self._bad_line(self._line_text(block, starts[i], ends[i]), first_line + int(i), int(fields[i]))
            for i in np.flatnonzero(bad)
        ]
        if bad.any():
            keep = np.flatnonzero(~bad)
            parse = b"".join(block[starts[i] : ends[i]] + b"\n" for i in keep)
        else:
            parse = block
        good = np.flatnonzero(~bad & ~blank)
        try:
            frame = self._read_frame(parse)
        except (pd.errors.ParserError, ValueError):
            return self._parse_carefully(block, first_line, index)
        if len(frame) != len(good):
            return self._parse_carefully(block, first_line, index)
        return self._frame_chunk(frame, first_line + good.astype(np.int64), malformed, index)

    def _read_frame(self, data: bytes) -> pd.DataFrame:
        if not data.strip():
            return pd.DataFrame({name: pd.Series([], dtype=object) for name in self.names})
        options = {
            "header": None,
            "names": self.names,
            "dtype": self.dtypes,
            "sep": self.fmt.delimiter,
            "quotechar": '"',
            "keep_default_na": False,
            "na_filter": False,
            "skip_blank_lines": True,
            "encoding": self.fmt.encoding,
            "engine": "c",
            "index_col": False,
            # Parsed in one piece: in pieces, pandas must merge each categorical's categories.
            "low_memory": False,
        }
        try:
            # Strict decoding stays in pandas' C code; the fallback handler needs a Python decoder.
            return pd.read_csv(io.BytesIO(data), **options)
        except UnicodeDecodeError:
            return pd.read_csv(io.BytesIO(data), encoding_errors=FALLBACK_ERRORS, **options)

    def _frame_chunk(self, frame: pd.DataFrame, lines: np.ndarray, malformed: list[BadRow], index: int) -> Chunk:
        names = self.names

        def raw(i: int) -> dict[str, Any]:
            return {name: str(frame.iat[i, j]) for j, name in enumerate(names)}

        return Chunk(
            index=index,
            n=len(frame),
            columns={target: frame[name] for name, target in self.plan.fields.items()},
            lines=lines,
            raw=raw,
            labels=frame[self.plan.label] if self.plan.label else None,
            malformed=malformed,
            progress=self._progress(),
        )

    # the careful path

    def _line_text(self, block: bytes, start: int, end: int) -> str:
        return block[start:end].decode(self.fmt.encoding, errors=FALLBACK_ERRORS).rstrip("\r")

    def _split(self, text: str) -> list[str] | None:
        try:
            return next(csv.reader([text], delimiter=self.fmt.delimiter, quotechar='"', strict=False), [])
        except csv.Error:
            return None

    def _bad_line(self, text: str, line: int, found: int | None) -> BadRow:
        if found is None:
            message = "The line cannot be read as CSV (a quote is left open or misplaced)."
        else:
            message = f"Expected {self.n_fields} fields, found {found}."
            for other in CSV_DELIMITERS:
                if other != self.fmt.delimiter and text.count(other) + 1 == self.n_fields:
                    message += (
                        f" Split at each {describe_delimiter(other)} it has {self.n_fields}: the file mixes "
                        f"delimiters (the header uses the {describe_delimiter(self.fmt.delimiter)})."
                    )
                    break
            else:
                if '"' in text:
                    message += " Check the quoting: a quote opened in this line is not closed in it."
        return BadRow(line=line, raw={"_text": _text_excerpt(text)}, errors={"non_field_errors": [message]})

    def _parse_carefully(self, block: bytes, first_line: int, index: int) -> Chunk:
        text = block.decode(self.fmt.encoding, errors=FALLBACK_ERRORS)
        physical = text.split("\n")
        if text.endswith("\n"):
            physical.pop()
        records: list[list[str]] = []
        lines: list[int] = []
        malformed: list[BadRow] = []
        i = 0
        while i < len(physical):
            line = physical[i].rstrip("\r")
            if not line:
                i += 1
                continue
            fields = self._split(line)
            if fields is not None and len(fields) == self.n_fields and line.count('"') % 2 == 0:
                records.append(fields)
                lines.append(first_line + i)
                i += 1
                continue
            joined = self._join_quoted(physical, i) if line.count('"') % 2 else False
            if isinstance(joined, tuple):
                fields, last = joined
                records.append(fields)
                lines.append(first_line + i)
                i = last + 1
                continue
            if joined is True and i > 0 and not (self.eof and not self.buffer):
                # A quoted field still open at the end of the block: read it again with the next block.
                self._carry = block[sum(len(raw) + 1 for raw in block.split(b"\n")[:i]) :]
                break
            malformed.append(self._bad_line(line, first_line + i, None if fields is None else len(fields)))
            i += 1
        names = self.names
        columns_by_name = {name: np.array([r[j] for r in records], dtype=object) for j, name in enumerate(names)}

        def raw(k: int) -> dict[str, Any]:
            return dict(zip(names, records[k], strict=True))

        return Chunk(
            index=index,
            n=len(records),
            columns={target: columns_by_name[name] for name, target in self.plan.fields.items()},
            lines=np.array(lines, dtype=np.int64),
            raw=raw,
            labels=columns_by_name[self.plan.label] if self.plan.label else None,
            malformed=malformed,
            progress=self._progress(),
        )

    def _join_quoted(self, physical: list[str], start: int) -> tuple[list[str], int] | bool:
        """A record whose quoted field holds line breaks: (fields, its last line's index).

        False when the quote closes into something that is not a record or stays open for too
        many lines; True when the block ends with the quote still open.
        """
        joined = physical[start].rstrip("\r")
        end = start + MAX_QUOTED_LINES
        for j in range(start + 1, min(end, len(physical))):
            joined += "\n" + physical[j].rstrip("\r")
            if joined.count('"') % 2 == 0:
                fields = self._split(joined)
                return (fields, j) if fields is not None and len(fields) == self.n_fields else False
        return len(physical) < end


def _per_line(data: np.ndarray, byte: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many times ``byte`` occurs in each line [start, end) of ``data``."""
    if not len(data):
        return np.zeros(len(starts), dtype=np.int64)
    counts = np.add.reduceat(data == byte, np.minimum(starts, len(data) - 1)).astype(np.int64)
    counts[ends <= starts] = 0  # reduceat gives an empty line the byte at its start
    return counts


def _record_end(buffer: bytes, limit: int) -> int:
    """Offset just past the last line end before ``limit`` that is not inside a quoted field, or -1.

    The buffer starts at a record boundary, so a line end after an even number of quotes is
    outside any quoted field (doubled quotes inside a field count twice).
    """
    last = buffer.rfind(b"\n", 0, limit)
    if last < 0:
        return -1
    if buffer.find(b'"', 0, last) < 0:
        return last + 1
    quotes = buffer.count(b'"', 0, last)
    steps = 0
    while quotes % 2:
        previous = buffer.rfind(b"\n", 0, last)
        steps += 1
        if previous < 0 or steps > 100_000:
            return -1
        quotes -= buffer.count(b'"', previous, last)
        last = previous
    return last + 1


# --- records (JSON, databases, HTTP) ----------------------------------------------------------


class RecordColumns:
    """Builds contract-field columns from dict records, mapping keys once per distinct key."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.mapping = dict(mapping or {})
        self.paths = {path: target for path, target in self.mapping.items() if "." in path}
        self._targets: dict[str, str | None] = {}
        self.ignored: set[str] = set()

    def target(self, key: str) -> str | None:
        if key in self._targets:
            return self._targets[key]
        plan: ColumnPlan = plan_columns([key], {k: v for k, v in self.mapping.items() if "." not in k})
        if plan.label:
            target: str | None = LABEL
        elif plan.fields:
            target = plan.fields[key]
        else:
            target = None
            if key not in SKIPPED_COLUMNS and self.mapping.get(key) != IGNORE and key not in self.paths:
                self.ignored.add(key)
        self._targets[key] = target
        return target

    def build(
        self,
        records: list[Mapping[str, Any]],
        *,
        index: int,
        lines: np.ndarray,
        malformed: list[BadRow] | None = None,
        progress: float | None = None,
        cursor: Any = None,
    ) -> Chunk:
        n = len(records)
        columns: dict[str, np.ndarray] = {}
        for i, record in enumerate(records):
            for key, value in record.items():
                target = self.target(key) if isinstance(key, str) else None
                if target is None:
                    continue
                column = columns.get(target)
                if column is None:
                    column = columns[target] = np.full(n, MISSING, dtype=object)
                column[i] = value
            for path, target in self.paths.items():
                if target == IGNORE:
                    continue
                try:
                    value = get_path(record, path)
                except KeyError:
                    continue
                column = columns.get(target)
                if column is None:
                    column = columns[target] = np.full(n, MISSING, dtype=object)
                column[i] = value
        labels = columns.pop(LABEL, None)
        if labels is not None:
            labels = np.where(labels == MISSING, None, labels)
        return Chunk(
            index=index,
            n=n,
            columns=columns,
            lines=lines,
            raw=lambda i: dict(records[i]),
            labels=labels,
            malformed=malformed or [],
            progress=progress,
            cursor=cursor,
        )


class _RecordFileReader(Reader):
    def __init__(
        self,
        stream: IO[bytes],
        sample: bytes,
        fmt: FileFormat,
        *,
        size: int | None,
        chunk_rows: int,
        mapping: Mapping[str, str] | None,
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.size = size
        self.sample = sample
        self.chunk_rows = chunk_rows
        self.consumed = 0
        self.builder = RecordColumns(mapping)
        self._fallback_start = fallback_decodes()
        self.details = {"format": fmt.kind, "encoding": fmt.encoding_label, "layout": "records"}

    def _progress(self) -> float | None:
        return min(self.consumed / self.size, 1.0) if self.size else None

    def notes(self) -> list[str]:
        notes = []
        if self.builder.ignored:
            names = sorted(self.builder.ignored)
            more = " ..." if len(names) > 20 else ""
            notes.append(f"Fields ignored (not in the contract): {', '.join(names[:20])}{more}.")
        replaced = fallback_decodes() - self._fallback_start
        if replaced:
            notes.append(
                f"{replaced} byte sequence(s) were not valid {self.fmt.encoding_label} and were read as Latin-1."
            )
        return notes

    def _chunk(self, records: list[Any], lines: list[int], malformed: list[BadRow], index: int) -> Chunk:
        return self.builder.build(
            records, index=index, lines=np.array(lines, dtype=np.int64), malformed=malformed, progress=self._progress()
        )


class JsonLinesReader(_RecordFileReader):
    """One JSON object per line; a line that is not one is quarantined and reading goes on."""

    def chunks(self) -> Iterator[Chunk]:
        buffer = self.sample[self.fmt.bom_bytes :]
        self.consumed = len(self.sample)
        eof = len(self.sample) < SAMPLE_BYTES
        line_no = 0
        index = 0
        records: list[Any] = []
        lines: list[int] = []
        malformed: list[BadRow] = []
        while True:
            if not eof and b"\n" not in buffer:
                data = self.stream.read(READ_BYTES)
                self.consumed += len(data)
                eof = not data
                buffer += data
                if len(buffer) < MAX_RECORD_BYTES or eof:
                    continue
            cut = buffer.rfind(b"\n") + 1 if not eof else len(buffer)
            if cut == 0:
                cut = len(buffer)
            block, buffer = buffer[:cut], buffer[cut:]
            for raw_line in block.split(b"\n"):
                line_no += 1
                text = raw_line.decode(self.fmt.encoding, errors=FALLBACK_ERRORS).strip()
                if not text:
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    malformed.append(
                        BadRow(
                            line=line_no,
                            raw={"_text": _text_excerpt(text)},
                            errors={"non_field_errors": [f"Not valid JSON: {exc.msg} at column {exc.colno}."]},
                        )
                    )
                    continue
                if not isinstance(obj, dict):
                    malformed.append(
                        BadRow(
                            line=line_no,
                            raw={"_text": _text_excerpt(text)},
                            errors={"non_field_errors": [f"Must be a JSON object; got {_json_type(obj)}."]},
                        )
                    )
                    continue
                records.append(obj)
                lines.append(line_no)
                if len(records) >= self.chunk_rows:
                    yield self._chunk(records, lines, malformed, index)
                    index += 1
                    records, lines, malformed = [], [], []
            if block.endswith(b"\n"):
                line_no -= 1  # the empty piece after the last line end is not a line
            if eof and not buffer:
                break
        if records or malformed:
            yield self._chunk(records, lines, malformed, index)


_WHITESPACE = re.compile(r"[ \t\r\n]*")
_WRAPPED = re.compile(r'\{[ \t\r\n]*"customers"[ \t\r\n]*:[ \t\r\n]*\[')


class JsonArrayReader(_RecordFileReader):
    """``[{...}, ...]`` or ``{"customers": [...]}``, decoded one object at a time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoder = codecs.getincrementaldecoder(self.fmt.encoding)(errors=FALLBACK_ERRORS)
        self._json = json.JSONDecoder()
        self.text = self._decoder.decode(self.sample[self.fmt.bom_bytes :])
        self.consumed = len(self.sample)
        self.eof = len(self.sample) < SAMPLE_BYTES
        self.pos = 0
        self.line = 1

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.stream.read(READ_BYTES)
        self.consumed += len(data)
        if not data:
            self.eof = True
            self.text += self._decoder.decode(b"", final=True)
            return False
        if self.pos > READ_BYTES:  # drop what has been read, keeping memory flat
            self.text = self.text[self.pos :]
            self.pos = 0
        self.text += self._decoder.decode(data)
        return True

    def _skip_blank(self) -> bool:
        """Move past blank space; False at the end of the input."""
        while True:
            end = _WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end
            if self.pos < len(self.text):
                return True
            if not self._more():
                return False

    def _fatal(self, message: str) -> BadRow:
        self.fatal = f"{message} (line {self.line}); nothing after it was read."
        excerpt = self.text[self.pos : self.pos + 500]
        return BadRow(line=self.line, raw={"_text": excerpt}, errors={"non_field_errors": [self.fatal]})

    def chunks(self) -> Iterator[Chunk]:
        records: list[Any] = []
        lines: list[int] = []
        malformed: list[BadRow] = []
        index = 0
        self._skip_blank()
        wrapped = False
        while len(self.text) - self.pos < 200 and self._more():
            pass
        if self.text.startswith("[", self.pos):
            self.pos += 1
        else:
            match = _WRAPPED.match(self.text, self.pos)
            if match is None:
                # A single object: one record.
                try:
                    obj, _end = self._json.raw_decode(self.text, self.pos)
                except json.JSONDecodeError:
                    while self._more():
                        pass
                    try:
                        obj, _end = self._json.raw_decode(self.text, self.pos)
                    except json.JSONDecodeError as exc:
                        yield self._chunk([], [], [self._fatal(f"Not valid JSON: {exc.msg}")], index)
                        return
                records = [obj] if isinstance(obj, dict) else []
                yield self._chunk(records, [self.line] if records else [], [], index)
                return
            self.line += self.text.count("\n", self.pos, match.end())
            self.pos = match.end()
            wrapped = True
        while True:
            if not self._skip_blank():
                malformed.append(self._fatal("The JSON array is not closed"))
                break
            if self.text[self.pos] == "]":
                self.pos += 1
                break
            obj, ok = self._decode_one()
            if not ok:
                malformed.append(self._fatal(obj))
                break
            if isinstance(obj, dict):
                records.append(obj)
                lines.append(self.line_of_object)
            else:
                malformed.append(
                    BadRow(
                        line=self.line_of_object,
                        raw={"_text": _text_excerpt(json.dumps(obj))},
                        errors={"non_field_errors": [f"Must be a JSON object; got {_json_type(obj)}."]},
                    )
                )
            if len(records) >= self.chunk_rows:
                yield self._chunk(records, lines, malformed, index)
                index += 1
                records, lines, malformed = [], [], []
            if not self._skip_blank():
                malformed.append(self._fatal("The JSON array is not closed"))
                break
            if self.text[self.pos] == ",":
                self.pos += 1
            elif self.text[self.pos] != "]":
                malformed.append(self._fatal(f"Expected ',' or ']' but found {self.text[self.pos]!r}"))
                break
        if wrapped and not self.fatal and self._skip_blank() and self.text[self.pos] != "}":
            malformed.append(self._fatal("The object around the customers array is not closed"))
        if records or malformed:
            yield self._chunk(records, lines, malformed, index)

    def _decode_one(self) -> tuple[Any, bool]:
        """The next JSON value: (value, True), or (error message, False)."""
        self.line_of_object = self.line
        while True:
            try:
                obj, end = self._json.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # The value may just be cut off by the end of what has been read so far.
                if len(self.text) - self.pos < MAX_RECORD_BYTES and self._more():
                    continue
                self.line += self.text.count("\n", self.pos, exc.pos)
                self.pos = exc.pos
                return f"Not valid JSON: {exc.msg}", False
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end
            return obj, True
