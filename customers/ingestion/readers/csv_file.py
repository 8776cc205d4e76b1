"""CSV files: cut into blocks at record ends, each parsed by pandas' C parser and checked line by line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np

from churn_ml.deferred import deferred
from churn_ml.schema import BOOL_FIELDS, ENUM_FIELDS
from customers.ingestion.mapping import (
    MappingError,
    plan_columns,
)
from customers.ingestion.readers.chunks import (
    MAX_RECORD_BYTES,
    READ_BYTES,
    BadRow,
    Chunk,
    Reader,
    _text_excerpt,
)
from customers.ingestion.sniff import (
    CSV_DELIMITERS,
    FALLBACK_ERRORS,
    SAMPLE_BYTES,
    FileFormat,
    FileRejected,
    describe_delimiter,
    fallback_decodes,
)

# pandas loads on first use (churn_ml.deferred): a web worker that scores single records never needs it.
pd = deferred("pandas")

# Lines a quoted field may span before an open quote is taken for a mistake.
MAX_QUOTED_LINES = 50


_CATEGORICAL_FIELDS = frozenset((*BOOL_FIELDS, *ENUM_FIELDS))


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
