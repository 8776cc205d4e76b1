"""CSV cells that a spreadsheet shows as text: the one guard against CSV formula injection.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK(...)``, ``-2+3``, ``@SUM(...)``), and a leading tab or carriage return lets
one slip past some checks. Every CSV the platform lets people download (rejected rows, batch job
results, follow-up lists) writes its cells through ``safe_cell``, which prefixes such a cell with
an apostrophe, as OWASP recommends, so that it is shown as the text it was. A number stays a number:
``-12.5`` or ``+3e5`` is written unchanged, since a spreadsheet reads it as the value it is.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_PREFIXES = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """The value to write into a CSV cell: a formula-like string gets a leading apostrophe."""
    if isinstance(value, str) and value and value[0] in FORMULA_PREFIXES and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``; writerow returns what it wrote."""

    def __init__(self, stream: Any, **options: Any) -> None:
        self._writer = csv.writer(stream, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
