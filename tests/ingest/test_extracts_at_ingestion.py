# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A batch's citizen extracts are built from the care rows its ingestion checked (reading its encrypted files back
cost a decryption of the whole batch again), and hold exactly what extracts built from those files hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hygie.governance import citizen_index
from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batches
from tests.delivery import Delivery, care, person

PEOPLE = range(8)


def _rows(hub: Hub, pseudonyms: list[str]) -> list[list[Any]]:
    with hub.session() as session:
        return [sorted(citizen_index.care_rows(hub, session, p), key=repr) for p in pseudonyms]


def test_extracts_come_from_the_checked_rows_and_equal_those_of_the_files(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_back(*args: object, **kwargs: object) -> None:
        raise AssertionError("the batch's care files were read back to build its extracts")

    # Several rows for some people, none for others, across two months (files), amounts that differ.
    rows = [care(n, person(n % 5)["BEN_NIR"], day=1 + n) | {"PRS_PAI_MNT": f"{10 + n}.50"} for n in range(17)]
    for row in rows[::3]:
        row.update({"EXE_SOI_DTD": "2024-01-20", "EXE_SOI_AMD": "2024-01"})
    delivery = Delivery({"IR_BEN_R": [person(i) for i in PEOPLE], "ER_PRS_F": rows}).write(tmp_path / "d", "B1")
    monkeypatch.setattr(citizen_index, "_care_table", read_back)
    assert [r.status for r in ingest_batches(hub, [delivery])] == ["accepted"]
    monkeypatch.undo()

    pseudonyms = hub.pseudonymiser.at(1).pseudonyms([person(i)["BEN_NIR"] for i in PEOPLE])
    at_ingestion = _rows(hub, pseudonyms)
    assert sum(map(len, at_ingestion)) == len(rows) and not at_ingestion[7] and len(at_ingestion[0]) == 4
    with hub.session() as session:
        citizen_index.rebuild(hub, session, from_scratch=True)  # from the encrypted files
        session.commit()
    assert _rows(hub, pseudonyms) == at_ingestion
