# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A corrupted delivery is rejected whole, with errors naming file, line and field, and leaves nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batch
from hygie.warehouse.stats import collect
from tests.delivery import Delivery, care, refresh_manifest, small_delivery


def _bad_nir_key(d: Delivery) -> None:
    nir = d.rows["IR_BEN_R"][3]["BEN_NIR"]
    d.rows["IR_BEN_R"][3]["BEN_NIR"] = nir[:13] + f"{(int(nir[13:]) % 97) + 1:02d}"


def _impossible_date(d: Delivery) -> None:
    d.rows["ER_PRS_F"][4]["EXE_SOI_DTD"] = "2024-02-30"


def _unknown_code(d: Delivery) -> None:
    d.rows["ER_PRS_F"][2]["PRS_NAT_REF"] = "7777"


def _orphan(d: Delivery) -> None:
    d.rows["ER_BIO_F"][0]["DCT_ORD_NUM"] = "999999"


def _birth_date_typo(d: Delivery) -> None:
    d.rows["IR_BEN_R"][5]["DATE_NAISSANCE"] = "19x0-01-01"


CASES: list[tuple[str, Callable[[Delivery], None], str, int, str]] = [
    ("bad NIR key", _bad_nir_key, "IR_BEN_R.csv", 5, "BEN_NIR"),
    ("impossible date", _impossible_date, "ER_PRS_F.csv", 6, "EXE_SOI_DTD"),
    ("unknown code", _unknown_code, "ER_PRS_F.csv", 4, "PRS_NAT_REF"),
    ("orphan detail row", _orphan, "ER_BIO_F.csv", 2, None),  # type: ignore[list-item]
    ("malformed birth date", _birth_date_typo, "IR_BEN_R.csv", 7, "DATE_NAISSANCE"),
]


def assert_nothing_stored(hub: Hub) -> None:
    stats = collect(hub)
    assert stats["tables"] == {} and stats["identities"] == 0 and stats["batches"] == 0
    assert not list(hub.warehouse.directory.rglob("*.parquet"))


@pytest.mark.parametrize(("name", "corrupt", "file", "line", "field"), CASES, ids=[c[0] for c in CASES])
def test_corrupted_rows(
    hub: Hub, tmp_path: Path, name: str, corrupt: Callable[[Delivery], None], file: str, line: int, field: str
) -> None:
    d = small_delivery()
    clean_nirs = [p["BEN_NIR"] for p in d.rows["IR_BEN_R"]]
    corrupt(d)
    result = ingest_batch(hub, d.write(tmp_path / "b", "B"))
    assert result.status == "rejected"
    assert any(e.file == file and e.line == line and e.field == field for e in result.errors), result.errors
    text = json.dumps([e.as_dict() for e in result.errors])
    assert not any(n[:13] in text for n in clean_nirs + [p["BEN_NIR"] for p in d.rows["IR_BEN_R"]])
    assert_nothing_stored(hub)


def test_checksum_mismatch(hub: Hub, tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    path = folder / "ER_PRS_F.csv"
    path.write_text(path.read_text().replace("30.00", "31.00", 1))
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    assert any(e.file == "ER_PRS_F.csv" and "checksum" in e.reason for e in result.errors)
    assert_nothing_stored(hub)


def test_truncated_file(hub: Hub, tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    path = folder / "ER_PRS_F.csv"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    errors = [e for e in result.errors if e.file == "ER_PRS_F.csv"]
    assert any("checksum" in e.reason for e in errors), errors
    # The cut last line is found and named too (a row with fewer fields, or a value cut short).
    assert any(e.line == 14 or "fields than the header" in e.reason for e in errors), errors
    assert_nothing_stored(hub)


def test_missing_column(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    for row in d.rows["ER_PRS_F"]:
        del row["EXE_SOI_DTD"]
    folder = d.write(tmp_path / "b", "B")
    path = folder / "ER_PRS_F.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    idx = header.index("EXE_SOI_DTD")
    path.write_text("\n".join(",".join(c for j, c in enumerate(ln.split(",")) if j != idx) for ln in lines) + "\n")
    refresh_manifest(folder)
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    assert any(
        e.file == "ER_PRS_F.csv" and e.line == 1 and e.field == "EXE_SOI_DTD" and "missing" in e.reason
        for e in result.errors
    ), result.errors
    assert_nothing_stored(hub)


def test_care_for_unknown_beneficiary(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    d.rows["IR_BEN_R"].pop(2)
    result = ingest_batch(hub, d.write(tmp_path / "b", "B"))
    assert result.status == "rejected"
    assert any(e.file == "ER_PRS_F.csv" and e.line == 4 and e.field == "BEN_NIR" for e in result.errors)


def test_error_cap(hub: Hub, tmp_path: Path) -> None:
    hub.settings.ingest_max_errors = 5
    d = small_delivery(40)
    for row in d.rows["ER_PRS_F"]:
        row["PRS_NAT_REF"] = "7777"
    result = ingest_batch(hub, d.write(tmp_path / "b", "B"))
    assert result.status == "rejected"
    assert len(result.errors) == 5
    assert result.errors_not_shown >= 36


def test_duplicate_batch_is_not_stored_twice(hub: Hub, tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    assert ingest_batch(hub, folder).status == "accepted"
    before = collect(hub)
    again = ingest_batch(hub, folder)
    assert again.status == "duplicate"
    copy = small_delivery().write(tmp_path / "c", "B-resent")
    assert ingest_batch(hub, copy).status == "duplicate"
    assert collect(hub) == before


def test_same_batch_id_other_content_is_rejected(hub: Hub, tmp_path: Path) -> None:
    assert ingest_batch(hub, small_delivery().write(tmp_path / "b", "B")).status == "accepted"
    other = small_delivery(13).write(tmp_path / "c", "B")
    result = ingest_batch(hub, other)
    assert result.status == "rejected"
    assert result.errors[0].field == "batch_id"


def test_blank_line_is_refused_and_later_lines_keep_their_numbers(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    d.rows["ER_PRS_F"][8]["PRS_NAT_REF"] = "7777"
    folder = d.write(tmp_path / "b", "B")
    path = folder / "ER_PRS_F.csv"
    lines = path.read_text().splitlines()
    lines.insert(4, "")  # becomes line 5; the bad row (data row 9, line 10) moves to line 11
    path.write_text("\n".join(lines) + "\n")
    refresh_manifest(folder)
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    found = {(e.line, e.field) for e in result.errors if e.file == "ER_PRS_F.csv"}
    # The blank line is read as a row of missing values (each required field named), not skipped.
    assert (5, "BEN_NIR") in found and (11, "PRS_NAT_REF") in found, result.errors
    assert_nothing_stored(hub)


def test_a_damaged_copy_of_an_accepted_batch_is_not_a_duplicate(hub: Hub, tmp_path: Path) -> None:
    folder = small_delivery().write(tmp_path / "b", "B")
    assert ingest_batch(hub, folder).status == "accepted"
    path = folder / "ER_PRS_F.csv"
    path.write_bytes(path.read_bytes()[:-30])
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    assert [(e.file, e.line) for e in result.errors] == [("ER_PRS_F.csv", None)]


def test_the_same_claims_under_another_batch_id_and_other_bytes_are_refused(hub: Hub, tmp_path: Path) -> None:
    assert ingest_batch(hub, small_delivery().write(tmp_path / "b", "B")).status == "accepted"
    d = small_delivery()
    d.rows.pop("IR_BEN_R")  # the people are known now; the claims are re-sent on their own
    folder = d.write(tmp_path / "c", "B-reexport")
    path = folder / "ER_PRS_F.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # other bytes, same rows
    refresh_manifest(folder)
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    lines = {e.line for e in result.errors if "already in the warehouse" in e.reason}
    assert lines == set(range(2, 15)), result.errors


def test_care_rows_repeating_their_nine_keys_within_a_batch_are_named(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    nir = d.rows["IR_BEN_R"][2]["BEN_NIR"]
    # Same nine keys as line 4 (person 2's row), another amount: two rows of the batch claim one identity.
    d.rows["ER_PRS_F"].append({**care(2, nir), "PRS_PAI_MNT": "45.00"})
    d.rows["ER_PRS_F"].append({**care(2, nir, line=2)})  # keys differ by one field: not a repeat
    result = ingest_batch(hub, d.write(tmp_path / "b", "B"))
    assert result.status == "rejected"
    assert [(e.file, e.line, e.field) for e in result.errors] == [("ER_PRS_F.csv", 15, None)], result.errors
    assert "repeat those of line 4" in result.errors[0].reason
    assert_nothing_stored(hub)
