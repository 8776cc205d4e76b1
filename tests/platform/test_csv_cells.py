"""The one CSV formula guard (issue 11, finding 7): formulas become text, numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from churn_infra.csv_cells import SafeCsvWriter, safe_cell


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-12.5", "-12.5"),
        ("+3", "+3"),
        ("-1e5", "-1e5"),
        ("-.5", "-.5"),
        ("plain", "plain"),
        ("", ""),
        (-12.5, -12.5),
        (None, None),
    ],
)
def test_safe_cell(value, written):
    assert safe_cell(value) == written


def test_the_writer_guards_every_cell():
    out = io.StringIO()
    SafeCsvWriter(out, lineterminator="\n").writerow(["=cmd|' /C calc'!A0", -1, "-1", "ok"])
    assert next(csv.reader(io.StringIO(out.getvalue()))) == ["'=cmd|' /C calc'!A0", "-1", "-1", "ok"]
