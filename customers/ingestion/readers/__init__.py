"""Files read in chunks of bounded memory, as columns keyed by contract field.

CSV: the file is cut into blocks at record ends and each block is parsed by pandas' C parser,
with enumeration and boolean columns read as categoricals (a 100,000-row Telco block takes about
25 MB instead of 125 MB as strings). Before trusting the parser, each block's lines are counted:
a line with the wrong number of fields is quarantined on its own, with its text and the count,
and a block whose records do not map one to one onto its lines (a quote left open, a quoted line
break) goes through the csv module line by line, which recovers every well-formed line around
the damage. JSON arrays are decoded one object at a time; JSON Lines one line at a time.

* :mod:`.chunks`: ``Chunk``, ``BadRow`` and the ``Reader`` interface every source implements;
* :mod:`.csv_file`: ``CsvReader``;
* :mod:`.json_files`: ``JsonLinesReader`` and ``JsonArrayReader``;
* :mod:`.records`: ``RecordColumns``, dict records to columns (JSON files, databases, HTTP APIs).

:func:`open_file_reader`, here, picks the reader for an uploaded or fetched file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

from customers.ingestion.readers.chunks import Reader
from customers.ingestion.readers.csv_file import CsvReader
from customers.ingestion.readers.json_files import JsonArrayReader, JsonLinesReader
from customers.ingestion.sniff import SAMPLE_BYTES, sniff


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
