# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The bulk paths of a large import give exactly what the row-by-row code gives: columnar parsing, the blocking
index built column by column (with its index dropped and rebuilt), and matching split across forked workers."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from sqlalchemy import delete, select

from hygie.breach import blocking, service
from hygie.breach.columns import parse_dates
from hygie.breach.mapping import infer
from hygie.breach.matcher import RowParser
from hygie.breach.models import BreachBlockKey, BreachBlockState
from hygie.breach.normalise import fold, parse_date, postcode
from hygie.breach.reader import read_table
from hygie.breach.service import Incidents
from hygie.breach.synthetic import make_leak, swap_columns
from hygie.keys import KeyPurpose
from tests.portal.world import World, people


@pytest.mark.parametrize("form", ["csv", "xlsx"])
def test_columnar_parsing_equals_parsing_row_by_row(
    shared_world: World, outsiders: list[dict[str, str]], form: str
) -> None:
    leak = swap_columns(make_leak(people(shared_world.delivery)[:150], outsiders[:20], seed=21), 0, 7)
    table = read_table(f"leak.{form}", leak.csv() if form == "csv" else leak.xlsx())
    parser = RowParser(infer(table.header, table.rows))
    one_by_one = [parser(i + 1, r) for i, r in enumerate(table.rows)]
    assert parser.parse(1, table.rows) == one_by_one
    assert sum(p.nir is not None for p in one_by_one) > 100  # the NIR fast path was exercised
    # Ragged rows (cells missing at the end), as hand-made files have them.
    rng = random.Random(3)
    ragged = [r[: rng.randrange(len(r) + 1)] for r in table.rows]
    assert parser.parse(1, ragged) == [parser(i + 1, r) for i, r in enumerate(ragged)]


def test_dates_parsed_in_arrow_read_as_parse_date_reads_them() -> None:
    cells = [
        "1990-02-30",
        "1990-02-28",
        "28/02/1990",
        "30/02/1990",
        "1990-2-3",
        "3/2/1990",
        "19900203",
        "33000",
        "",
        "abc",
        "29/02/2000",
        "29/02/1900",
        "1900-02-29",
        "31.12.1999",
        "1950-01-01T00:00",
        "01/13/1990",
    ]
    expected = [(d.isoformat() if (d := parse_date(c)) else None) for c in cells]
    assert parse_dates(cells) == expected
    assert expected[:4] == [None, "1990-02-28", "1990-02-28", None]  # 30 February is no date, in either form


def test_bulk_blocking_keys_are_the_row_keys(shared_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = shared_world.hub
    hub.custody.ensure(blocking.BLOCKING_KEY, KeyPurpose.PSEUDONYM)
    with hub.session() as session:
        vault = hub.vault(session)
        expected = set()
        for _, person_index, identity in vault.records(0, 100_000):
            names = [fold(identity.last_name), fold(identity.first_name)]  # as a row with both columns gives them
            messages = blocking.block_messages(identity.birth_date, names, postcode(identity.postcode or ""))
            expected |= {(k, person_index) for k in blocking.block_keys(hub.custody, messages)}
        # Rebuild from scratch through the bulk path (index dropped and recreated), then compare.
        session.execute(delete(BreachBlockKey))
        session.execute(delete(BreachBlockState))
        monkeypatch.setattr(blocking, "BULK_LOAD", 1)
        assert blocking.refresh(session, hub.custody, vault) >= len(people(shared_world.delivery))
        built = {
            (bytes(b), bytes(p)) for b, p in session.execute(select(BreachBlockKey.block, BreachBlockKey.person_index))
        }
        assert built == expected
        probe = next(iter(expected))
        assert probe[1] in blocking.candidates(session, [probe[0]])[probe[0]]
        session.rollback()


def test_columns_and_keys_agree_on_accents_and_damage(shared_world: World) -> None:
    people_ = {
        "last_name": pa.array(["Éloïse", "d'Arc", "ß", "", "Martin"]),
        "first_name": pa.array(["Jean-Paul", "Anne", "Émile", "x", "MARIE"]),
        "birth_date": pa.array(["1990-01-01"] * 5),
        "postcode": pa.array(["1234", "75001.0", "abc", None, "75001"]),
    }
    indexes = [bytes([i]) * 32 for i in range(5)]
    custody = shared_world.hub.custody
    custody.ensure(blocking.BLOCKING_KEY, KeyPurpose.PSEUDONYM)
    table = blocking.people_keys(custody, people_, pa.array(indexes, pa.binary()))
    got = set(zip(table["block"].to_pylist(), table["person_index"].to_pylist(), strict=True))
    expected = set()
    for i in range(5):
        cell = {k: people_[k][i].as_py() or "" for k in people_}
        names = [fold(cell["last_name"]), fold(cell["first_name"])]
        messages = blocking.block_messages(cell["birth_date"], names, postcode(cell["postcode"]))
        expected |= {(k, indexes[i]) for k in blocking.block_keys(custody, messages)}
    # Two names, their pair of initials and a postcode: 4 keys; "ß" folds to nothing, so the third and fourth
    # people have one name, no pair, and no usable postcode.
    assert got == expected and len(got) == 14


def test_parallel_matching_gives_the_outcomes_of_one_process(
    shared_world: World, outsiders: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = shared_world.hub
    with hub.session() as session:  # workers read committed data: the index must be current for them to run
        blocking.refresh(session, hub.custody, hub.vault(session))
        session.commit()
    blob = make_leak(people(shared_world.delivery), outsiders, seed=31).csv()
    with hub.session() as session:
        single = Incidents(hub, session).import_file("test", "single", "l.csv", blob).outcomes
        session.rollback()
    monkeypatch.setattr(hub.settings, "breach_parallel_rows", 10)
    # Earlier tests may leave idle threads (an analysis pool until its hub is collected); forking from this
    # test's main thread is what the console does.
    monkeypatch.setattr(service, "may_fork", lambda: True)
    with hub.session() as session:
        incidents = Incidents(hub, session)
        split = incidents.import_file("test", "split", "l.csv", blob).outcomes
        assert "parallel match (wall)" in incidents.timings  # the workers did run
        session.rollback()
    assert [(o.row, o.status, o.confidence, o.person_index) for o in split] == [
        (o.row, o.status, o.confidence, o.person_index) for o in single
    ]
