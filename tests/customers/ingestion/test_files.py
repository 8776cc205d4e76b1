"""Files in every accepted shape, and every kind of damage, as the uploader sees the result."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import Actor
from customers.ingestion.selectors import quarantine_csv
from customers.ingestion.services import ingestion_upload
from customers.ingestion.sniff import FileRejected
from customers.models import Customer, IngestionChunk, Outcome, QuarantineReason, RunStatus
from tests.customers.ingestion.conftest import TELCO_HEADER, telco, telco_csv
from tests.factories import record

pytestmark = pytest.mark.django_db


def ids() -> set[str]:
    return set(Customer.objects.values_list("customer_id", flat=True))


def test_telco_file_in_chunks_stores_valid_rows_and_quarantines_the_rest_with_every_reason(upload):
    # given 10 rows over three chunks, two of them invalid (one with two problems)
    rows = [telco(f"T-{i}") for i in range(10)]
    rows[3] = telco("T-3", tenure="-4", Contract="Weekly")
    rows[7] = telco("T-7", MonthlyCharges="abc")
    # when
    run = upload(telco_csv(rows))
    # then
    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert run.counts == {"read": 10, "created": 8, "updated": 0, "unchanged": 0, "rejected": 2}
    assert ids() == {f"T-{i}" for i in range(10)} - {"T-3", "T-7"}
    assert run.chunks.count() == 3
    bad = list(run.quarantined_rows.order_by("line"))
    assert [(q.line, q.customer_id, q.reason) for q in bad] == [(5, "T-3", "invalid"), (9, "T-7", "invalid")]
    assert set(bad[0].errors) == {"tenure_months", "contract_type"}
    assert bad[0].raw["tenure"] == "-4"
    assert bad[0].raw["customerID"] == "T-3"
    assert "monthly_charges" in bad[1].errors
    # the Churn column became outcomes for the stored customers
    assert Outcome.objects.count() == 8
    assert run.details["outcomes_recorded"] == 8
    assert run.details["layout"] == "telco"
    assert run.progress == 1.0
    assert run.quality["completeness"]["customer_id"] == 100.0
    assert run.quality["quality_pct"] == pytest.approx(8 / 10 * 90.48, abs=0.05)


def test_contract_layout_as_json_array_json_lines_and_bulk_body(upload):
    array = json.dumps([record(customer_id="J-1"), record(customer_id="J-2", tenure_months=-1)]).encode()
    lines = "\n".join(json.dumps(record(customer_id=f"L-{i}")) for i in range(3)).encode()
    body = json.dumps({"customers": [record(customer_id="B-1")]}).encode()

    first = upload(array, name="a.json")
    second = upload(lines, name="b.jsonl")
    third = upload(body, name="c.json")

    assert (first.details["format"], first.counts["created"], first.counts["rejected"]) == ("json", 1, 1)
    assert first.quarantined_rows.get().raw["tenure_months"] == -1
    assert (second.details["format"], second.counts["created"]) == ("jsonl", 3)
    assert (third.details["format"], third.counts["created"]) == ("json", 1)
    assert ids() == {"J-1", "L-0", "L-1", "L-2", "B-1"}


@pytest.mark.parametrize(("sep", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_delimiter_is_detected(upload, sep, name):
    run = upload(telco_csv([telco("D-1"), telco("D-2")], sep=sep))
    assert run.status == RunStatus.SUCCEEDED
    assert run.details["delimiter"] == name
    assert ids() == {"D-1", "D-2"}


def test_utf8_with_bom_latin1_and_mixed_encodings(upload):
    bom = codecs.BOM_UTF8 + telco_csv([telco("U-1")])
    latin1 = telco_csv([telco("L-1"), telco("L-2", gender="Féminin")]).decode().encode("latin-1")
    latin1_line = "M-2,Femälé,0,Yes\n".encode("latin-1")
    mixed = telco_csv([telco("M-1")]) + latin1_line + telco_csv([telco("M-3")]).split(b"\n", 1)[1]

    assert upload(bom).counts["created"] == 1
    run = upload(latin1)
    assert run.details["encoding"] == "Windows-1252 / Latin-1"
    assert run.quarantined_rows.get().raw["gender"] == "Féminin"  # read correctly, then refused as a gender
    run = upload(mixed)
    assert run.counts["created"] == 2
    bad = run.quarantined_rows.get()
    assert bad.line == 3
    assert "Femälé" in bad.raw["_text"]
    assert ids() >= {"U-1", "L-1", "M-1", "M-3"}


def test_rows_with_the_wrong_number_of_fields_are_quarantined_alone(upload):
    good = telco_csv([telco("W-1")]).decode().splitlines()[1]
    semicolons = good.replace("W-1", "W-2").replace(",", ";")
    short = ",".join(good.replace("W-1", "W-3").split(",")[:15])
    data = telco_csv([telco("W-0"), semicolons, short, telco("W-4")])

    run = upload(data)

    assert run.status == RunStatus.PARTIALLY_SUCCEEDED
    assert ids() == {"W-0", "W-4"}
    by_line = {q.line: q for q in run.quarantined_rows.all()}
    assert by_line[3].reason == QuarantineReason.MALFORMED
    assert "Expected 21 fields, found 1" in by_line[3].errors["non_field_errors"][0]
    assert "semicolon" in by_line[3].errors["non_field_errors"][0]
    assert by_line[3].raw["_text"] == semicolons
    assert "found 15" in by_line[4].errors["non_field_errors"][0]


def test_a_quote_broken_across_lines_loses_only_its_own_line(upload):
    rows = [telco(f"Q-{i}") for i in range(6)]
    text = telco_csv(rows).decode().splitlines()
    text[2] = text[2].replace("Female", '"Female')  # opening quote, never closed
    text[4] = text[4].replace("Female", '"Fe\nmale"')  # a legitimately quoted line break
    run = upload("\n".join(text).encode() + b"\n")

    assert ids() == {"Q-0", "Q-2", "Q-4", "Q-5"}  # Q-3's gender "Fe\nmale" is read, and is not a gender
    lines = {q.line: q for q in run.quarantined_rows.all()}
    assert lines[3].reason == QuarantineReason.MALFORMED
    assert lines[5].reason == QuarantineReason.INVALID
    assert "gender" in lines[5].errors
    assert run.counts["read"] == 6


def test_extra_columns_are_ignored_and_reported(upload):
    header = [*TELCO_HEADER, "notes", "segment"]
    run = upload(telco_csv([{**telco("X-1"), "notes": "called twice", "segment": "B2C"}], header=header))
    assert run.status == RunStatus.SUCCEEDED
    assert run.details["ignored_columns"] == ["notes", "segment"]
    assert ids() == {"X-1"}


def test_missing_columns_fail_the_run_with_their_names(upload):
    header = [h for h in TELCO_HEADER if h not in ("Contract", "tenure")]
    run = upload(telco_csv([telco("N-1")], header=header))
    assert run.status == RunStatus.FAILED
    assert "tenure_months (tenure)" in run.error
    assert "contract_type (Contract)" in run.error
    assert Customer.objects.count() == 0


def test_wrong_delimiter_in_the_whole_file_fails_with_what_was_read(upload):
    run = upload(b"id;name;plan\n1;Ann;gold\n")
    assert run.status == RunStatus.FAILED
    assert "not a header of known columns" in run.error


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty (0 bytes)"),
        (b"PK\x03\x04\x14\x00\x00\x00binary", "ZIP archive"),
        (b"\x00\x01\x02\x03" * 100, "binary"),
        (b"   \n\n  ", "blank space"),
    ],
)
def test_empty_and_binary_files_are_refused_with_the_reason(department, data, message):
    actor = Actor(department_id=department.pk)
    with pytest.raises(FileRejected, match=re.escape(message)):
        ingestion_upload(upload=SimpleUploadedFile("x.csv", data), actor=actor)


def test_header_only_fails_as_having_no_rows(upload):
    run = upload(telco_csv([]))
    assert run.status == RunStatus.FAILED
    assert "no data rows" in run.error


def test_a_customer_twice_in_a_file_keeps_the_last_row_and_quarantines_the_earlier(upload):
    # given D-1 twice in the first chunk, D-2 in chunks one and three (chunks of 4 rows)
    rows = [
        telco("D-1", tenure=1, TotalCharges=85),
        telco("D-2", tenure=2, TotalCharges=170),
        telco("D-1", tenure=3, TotalCharges=255),
        telco("A-1"),
        telco("A-2"),
        telco("A-3"),
        telco("A-4"),
        telco("A-5"),
        telco("D-2", tenure=9, TotalCharges=765),
    ]
    run = upload(telco_csv(rows))

    assert Customer.objects.get(customer_id="D-1").tenure_months == 3
    assert Customer.objects.get(customer_id="D-2").tenure_months == 9
    superseded = {q.line: q for q in run.quarantined_rows.filter(reason=QuarantineReason.SUPERSEDED)}
    assert set(superseded) == {2, 3}
    assert "line 4" in superseded[2].errors["customer_id"][0]
    assert "line 10" in superseded[3].errors["customer_id"][0]
    assert superseded[3].raw["tenure_months"] == 2  # the earlier row's values, as stored before
    counts = run.counts
    assert counts == {"read": 9, "created": 7, "updated": 0, "unchanged": 0, "rejected": 2}
    assert sum(c.created + c.rejected for c in IngestionChunk.objects.filter(run=run)) == 9


def test_the_same_file_again_changes_nothing_unless_forced(upload):
    data = telco_csv([telco("S-1"), telco("S-2")])
    first = upload(data)
    again = upload(data)
    forced = upload(data, force=True)

    assert again.pk == first.pk
    assert forced.pk != first.pk
    assert forced.counts == {"read": 2, "created": 0, "updated": 0, "unchanged": 2, "rejected": 0}
    assert Outcome.objects.count() == 2  # the same labels are not recorded twice


def test_re_ingesting_with_one_row_changed_updates_only_that_row(upload):
    rows = [telco(f"R-{i}") for i in range(9)]
    upload(telco_csv(rows))
    before = dict(Customer.objects.values_list("customer_id", "updated_at"))
    rows[4] = telco("R-4", MonthlyCharges="86.5", Churn="Yes")

    run = upload(telco_csv(rows))

    assert run.counts == {"read": 9, "created": 0, "updated": 1, "unchanged": 8, "rejected": 0}
    after = dict(Customer.objects.values_list("customer_id", "updated_at"))
    assert [cid for cid in after if after[cid] != before[cid]] == ["R-4"]
    assert Outcome.objects.filter(customer__customer_id="R-4").order_by("-observed_at").first().churned is True


def test_quarantine_download_repaired_and_uploaded_again_stores_the_rows(upload):
    rows = [telco("F-1"), telco("F-2", tenure="-1"), telco("F-3", Contract="Weekly"), telco("F-4")]
    run = upload(telco_csv(rows))
    download = "".join(quarantine_csv(run=run))
    table = list(csv.DictReader(io.StringIO(download)))
    listed = [(r["_line"], r["customerID"], r["_reason"]) for r in table]
    assert listed == [("3", "F-2", "invalid"), ("4", "F-3", "invalid")]
    assert "tenure_months" in table[0]["_errors"]

    # unchanged, the download is refused for the same reasons
    again = upload(download.encode(), name="rejected.csv")
    assert again.counts["rejected"] == 2
    assert again.status == RunStatus.FAILED

    table[0]["tenure"] = "12"
    table[1]["Contract"] = "One year"
    repaired = io.StringIO()
    writer = csv.DictWriter(repaired, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerows(table)
    fixed = upload(repaired.getvalue().encode(), name="repaired.csv")

    assert fixed.status == RunStatus.SUCCEEDED
    assert fixed.counts["created"] == 2
    assert ids() == {"F-1", "F-2", "F-3", "F-4"}


def test_outliers_against_the_stored_customers_are_flagged_not_rejected(upload, settings):
    settings.INGESTION_CHUNK_ROWS = 1_000
    population = [telco(f"P-{i}", tenure=12 + i % 30, MonthlyCharges=60 + i % 40, TotalCharges="") for i in range(300)]
    for row in population:
        row["TotalCharges"] = f"{int(row['tenure']) * float(row['MonthlyCharges']):.2f}"
    upload(telco_csv(population))

    run = upload(telco_csv([telco("O-1", MonthlyCharges="9500", TotalCharges="114000"), telco("O-2")]))

    assert run.counts["created"] == 2
    assert run.counts["rejected"] == 0
    assert run.quality["anomaly_count"] == 1
    assert run.quality["anomalies_by_field"]["monthly_charges"] == 1
    warnings = Customer.objects.get(customer_id="O-1").quality_warnings
    assert any(w.startswith("anomaly: monthly_charges 9500") for w in warnings)
    assert Customer.objects.get(customer_id="O-2").quality_warnings == []
