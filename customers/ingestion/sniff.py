"""What an uploaded file is, decided from its first bytes: refuse binaries, find encoding and format."""

from __future__ import annotations

import codecs
import csv
import json
import re
import threading
from dataclasses import dataclass

SAMPLE_BYTES = 64 * 1024
CSV_DELIMITERS = (",", ";", "\t", "|")

# Signatures of files people upload by mistake, named so the error tells them what they sent.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook is one)"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file (.xls)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"SQLite format 3", "a SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"\x7fELF", "a program"),
)
_UTF16_32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Text files carry tabs and line ends; much else below 0x20 means the bytes are not text.
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\x1a")
_MAX_CONTROL_SHARE = 0.01


class FileRejected(Exception):
    """The file cannot be ingested at all; the message says why, for the person who sent it."""


@dataclass(frozen=True)
class FileFormat:
    kind: str  # "csv", "json" or "jsonl"
    encoding: str  # a Python codec name: "utf-8" or "cp1252"
    bom_bytes: int
    delimiter: str = ","

    @property
    def encoding_label(self) -> str:
        return {"utf-8": "UTF-8", "cp1252": "Windows-1252 / Latin-1"}.get(self.encoding, self.encoding)


# --- decoding with a fallback ---------------------------------------------------------------

FALLBACK_ERRORS = "churn_ingest_fallback"
_fallback = threading.local()


def _decode_fallback(exc: UnicodeError) -> tuple[str, int]:
    """Bytes that are not valid in the file's encoding are read as Windows-1252 / Latin-1.

    Files assembled from several systems mix UTF-8 with Latin-1 lines; reading the odd bytes as
    Latin-1 keeps the row (a customer_id with such a character is refused by the id rule anyway)
    and the count is reported on the run.
    """
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    _fallback.count = getattr(_fallback, "count", 0) + 1
    try:
        return chunk.decode("cp1252"), exc.end
    except UnicodeDecodeError:
        return chunk.decode("latin-1"), exc.end


codecs.register_error(FALLBACK_ERRORS, _decode_fallback)


def fallback_decodes() -> int:
    """Byte sequences read through the fallback in this thread so far."""
    return getattr(_fallback, "count", 0)


# --- sniffing -------------------------------------------------------------------------------


def sniff(sample: bytes) -> FileFormat:
    """Decide the format of a file from its first bytes, or raise FileRejected saying why not."""
    if not sample:
        raise FileRejected("The file is empty (0 bytes).")
    for magic, what in _MAGIC:
        if sample.startswith(magic):
            raise FileRejected(f"This is {what}, not a text file. Upload CSV, JSON or JSON Lines.")
    if sample.startswith(_UTF16_32_BOMS):
        raise FileRejected("The file is UTF-16 or UTF-32 encoded. Save it as UTF-8 and upload it again.")
    if b"\x00" in sample:
        raise FileRejected("The file contains NUL bytes, so it is binary, not CSV or JSON.")
    controls = sum(1 for b in sample if b < 0x20 and b not in _TEXT_CONTROLS)
    if controls > _MAX_CONTROL_SHARE * len(sample):
        raise FileRejected("The file is mostly control characters, so it is binary, not CSV or JSON.")

    bom = len(codecs.BOM_UTF8) if sample.startswith(codecs.BOM_UTF8) else 0
    encoding = "utf-8" if bom or _is_utf8(sample) else "cp1252"
    text = sample[bom:].decode(encoding, errors=FALLBACK_ERRORS)
    stripped = text.lstrip()
    if not stripped:
        raise FileRejected("The file holds only blank space.")
    if "\n" not in text and text.count("\r") > 1:
        raise FileRejected(
            "Lines end with a bare carriage return (classic Mac OS). Save the file with Windows or Unix line ends."
        )
    if stripped[0] == "[":
        return FileFormat("json", encoding, bom)
    if stripped[0] == "{":
        return FileFormat(_json_or_lines(stripped), encoding, bom)
    return FileFormat("csv", encoding, bom, delimiter=_delimiter(text))


_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _is_utf8(sample: bytes) -> bool:
    """UTF-8 unless most non-ASCII bytes fail to form UTF-8 sequences.

    A file of mixed encodings (UTF-8 with some Latin-1 lines) is read as UTF-8, its odd bytes
    through the fallback, which keeps both kinds of line legible.
    """
    non_ascii = sum(1 for b in sample if b >= 0x80)
    if not non_ascii:
        return True
    in_sequences = sum(len(m) for m in _UTF8_SEQUENCE.findall(sample))
    return in_sequences >= non_ascii - in_sequences


def _json_or_lines(text: str) -> str:
    """``{`` starts JSON Lines when its first line is a whole object, else one JSON document."""
    first = text.split("\n", 1)[0].strip()
    try:
        obj = json.loads(first)
    except ValueError:
        return "json"
    # {"customers": [...]} on one line is the bulk endpoint's body, a document rather than lines.
    if isinstance(obj, dict) and set(obj) == {"customers"} and isinstance(obj["customers"], list):
        return "json"
    return "jsonl"


def _delimiter(text: str) -> str:
    """The candidate that splits the header into the most fields, consistently on the next lines."""
    lines = [line for line in text.splitlines()[:20] if line.strip()]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut its last line short
    header = lines[0]
    best, best_score = ",", (0, 0)
    for candidate in CSV_DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        if counts[0] < 2:
            continue
        agreeing = sum(1 for c in counts[1:] if c == counts[0])
        score = (agreeing, counts[0])
        if score > best_score:
            best, best_score = candidate, score
    if best_score == (0, 0) and header.count(",") == 0:
        # One column, or a delimiter we do not know: a comma makes the header check explain it.
        return ","
    return best


def describe_delimiter(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(delimiter, repr(delimiter))
