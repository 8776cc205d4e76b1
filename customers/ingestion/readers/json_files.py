"""JSON Lines and JSON array files, decoded one object at a time."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np

from churn_ml.schema.values import _json_type
from customers.ingestion.readers.chunks import (
    MAX_RECORD_BYTES,
    READ_BYTES,
    BadRow,
    Chunk,
    Reader,
    _text_excerpt,
)
from customers.ingestion.readers.records import RecordColumns
from customers.ingestion.sniff import (
    FALLBACK_ERRORS,
    SAMPLE_BYTES,
    FileFormat,
    fallback_decodes,
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
