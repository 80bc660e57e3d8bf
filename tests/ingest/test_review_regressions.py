# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Regressions found in review: each once leaked an identifier, lost accepted data or crashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine.default import DefaultDialect

from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batch
from hygie.keys import KeyPurpose, WrongPurpose
from hygie.warehouse.stats import collect
from tests.conftest import make_settings
from tests.delivery import small_delivery


def test_a_missing_header_row_never_echoes_the_data_row(hub: Hub, tmp_path: Path) -> None:
    d = small_delivery()
    folder = d.write(tmp_path / "b", "B")
    path = folder / "IR_BEN_R.csv"
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[1:]) + "\n", encoding="utf-8")
    result = ingest_batch(hub, folder)
    assert result.status == "rejected"
    text = json.dumps([e.as_dict() for e in result.errors], ensure_ascii=False)
    person = d.rows["IR_BEN_R"][0]
    for field in ("BEN_NIR", "NOM", "EMAIL", "TELEPHONE", "ADRESSE"):
        assert person[field] not in text
    assert any(e.line == 1 and "header row missing" in e.reason for e in result.errors)


@pytest.mark.parametrize(
    ("table", "row", "field", "value"),
    [
        ("IR_BEN_R", 2, "BEN_NIR", "1"),
        ("IR_BEN_R", 2, "BEN_NAI_MOI", "ja"),
        ("ER_PRS_F", 1, "DCT_ORD_NUM", "99999999999999999999"),
        ("ER_PRS_F", 1, "DCT_ORD_NUM", "-9223372036854775808"),
        ("ER_PRS_F", 1, "EXE_SOI_DTD", "0000-01-01"),
    ],
)
def test_hostile_values_are_errors_not_crashes(
    hub: Hub, tmp_path: Path, table: str, row: int, field: str, value: str
) -> None:
    d = small_delivery()
    d.rows[table][row][field] = value
    result = ingest_batch(hub, d.write(tmp_path / "b", "B"))
    assert result.status == "rejected"
    assert any(e.file == f"{table}.csv" and e.line == row + 2 and e.field == field for e in result.errors), (
        result.errors
    )
    if len(value) >= 3:
        assert all(value not in e.reason for e in result.errors)


def test_an_interrupt_right_after_the_commit_keeps_the_batch(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = DefaultDialect.do_commit
    armed = {"once": True}

    def commit_then_interrupt(self: DefaultDialect, connection: object) -> None:
        real(self, connection)  # the batch is committed...
        if armed.pop("once", False):
            raise KeyboardInterrupt  # ...and Ctrl-C lands on the very next bytecode

    folder = small_delivery().write(tmp_path / "b", "B")
    monkeypatch.setattr(DefaultDialect, "do_commit", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest_batch(hub, folder)
    monkeypatch.undo()
    reopened = Hub.open(hub.settings)
    try:
        assert collect(reopened)["batches"] == 1
        with reopened.session() as session:
            assert reopened.warehouse.verify(session) == []
    finally:
        reopened.close()


def test_opening_with_another_catalog_deletes_nothing(hub: Hub, tmp_path: Path) -> None:
    ingest_batch(hub, small_delivery().write(tmp_path / "b", "B"))
    files = sorted(hub.warehouse.directory.rglob("*.parquet"))
    other_db = make_settings(hub.settings.data_dir, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    Hub.open(other_db).close()
    assert sorted(hub.warehouse.directory.rglob("*.parquet")) == files


def test_key_purpose_is_enforced_even_when_cached(hub: Hub) -> None:
    hub.custody.ensure("w", KeyPurpose.WRAP)
    hub.custody.wrap("w", b"k" * 32)
    with pytest.raises(WrongPurpose):
        hub.custody.mac("w", [b"x"], version=1)
