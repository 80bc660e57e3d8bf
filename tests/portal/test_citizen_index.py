# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The index behind citizens' reads gives exactly what a full scan gives, holds no pseudonym or identifier, and
never answers short: what it lacks is read the slow way, what is altered is refused."""

from __future__ import annotations

import json
import os
import string
import time
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from alembic import command
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, func, select, text, update

from hygie.audit import AuditEvent
from hygie.db import migrate, migration_config
from hygie.governance.accounts import SYSTEM
from hygie.governance.citizen_index import (
    EXTRACT_KEY,
    PERSON_KEY_LENGTH,
    CareRow,
    CitizenExtract,
    CitizenExtractBatch,
    CitizenExtractRecent,
    CitizenIndexError,
    CitizenUse,
    CitizenUseGeneration,
    CitizenUseRecent,
    Waiting,
    _care_rows,
    _care_table,
    _extract_markers,
    _lookup_keys,
    _use_markers,
    _uses_of,
    bucket_chars,
    care_rows,
    in_members,
    merge,
    merge_recorded,
    person_keys,
    rebuild,
    unmerged,
)
from hygie.governance.models import ProjectView
from hygie.governance.views import MEMBERSHIP_KEY, projects_including
from hygie.ingest.contract import CARE_TABLE, PSEUDONYM_COLUMN
from hygie.warehouse.catalog import BatchRow, FileRow
from hygie.warehouse.encryption import ParquetCrypto
from tests.portal.test_citizens import hub_pseudonym
from tests.portal.world import World, people

COLUMNS = "EXE_SOI_DTD, PRS_NAT_REF, PRS_ACT_QTE, PRS_PAI_MNT, BSE_REM_MNT"
ALL_TABLES = (
    CitizenExtract, CitizenExtractRecent, CitizenExtractBatch, CitizenUse, CitizenUseRecent, CitizenUseGeneration
)  # fmt: skip


def _total(row: CareRow) -> tuple[tuple[bool, str], ...]:
    """A total order on rows (None first), to compare multisets."""
    return tuple((v is not None, repr(v)) for v in row)


def full_scan(world: World) -> dict[str, list[CareRow]]:
    """Every person's care rows, by hub pseudonym, straight from the warehouse."""
    with world.hub.session() as session:
        con = world.hub.warehouse.connect(session, [CARE_TABLE])
        try:
            found = con.execute(f"SELECT {PSEUDONYM_COLUMN}, {COLUMNS} FROM {CARE_TABLE}").fetchall()
        finally:
            con.close()
    by_person: dict[str, list[CareRow]] = defaultdict(list)
    for psa, *row in found:
        by_person[psa].append((row[0], row[1], row[2], row[3], row[4]))
    return {p: sorted(rows, key=_total) for p, rows in by_person.items()}


def members_by_scan(world: World, psa: str) -> list[int]:
    """Projects including a person, by reading every membership file (the durable record)."""
    crypto = ParquetCrypto(world.hub.custody, master_key=MEMBERSHIP_KEY)
    found = set()
    with world.hub.session() as session:
        for project_id, membership in session.execute(select(ProjectView.project_id, ProjectView.membership_file)):
            dataset = ds.dataset(str(world.hub.settings.data_dir / membership), format=crypto.file_format())
            if dataset.count_rows(filter=pc.field(PSEUDONYM_COLUMN) == psa):
                found.add(project_id)
    return sorted(found)


def everyone(world: World) -> list[str]:
    return world.hub.pseudonymiser.at(1).pseudonyms([p["BEN_NIR"] for p in people(world.delivery)])


def test_every_persons_rows_are_those_of_a_full_scan(shared_world: World) -> None:
    world = shared_world
    expected = full_scan(world)
    pseudonyms = everyone(world)
    assert len(expected) > 200  # the comparison covers most of the population, not a handful
    with world.hub.session() as session:
        indexed = set(session.scalars(select(CitizenExtractBatch.batch_id)))
        assert indexed == set(session.scalars(select(BatchRow.batch_id)))  # ingestion indexed every batch
        for psa in pseudonyms:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])


def test_the_pages_are_the_full_scan_in_order(shared_world: World) -> None:
    world = shared_world
    mine = full_scan(world)[hub_pseudonym(world, "citizen1")]
    shown: list[dict[str, Any]] = []
    while True:
        page = world.call("citizen1", "GET", "/me/reimbursements", params={"limit": 1, "offset": len(shown)}).json()
        shown += page["reimbursements"]
        if len(shown) >= page["total"] or not page["reimbursements"]:
            break
    assert page["total"] == len(shown) == len(mine) > 1
    dates = [r["care_date"] for r in shown if r["care_date"] is not None]
    assert dates == sorted(dates, reverse=True)  # newest care first

    def amount(value: object) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    def key(row: tuple[str | None, int | None, Decimal | None, Decimal | None]) -> str:
        return repr(row)

    got = sorted(((r["care_date"], r["act_code"], amount(r["amount_paid"]), amount(r["amount_reimbursed"]))
                  for r in shown), key=key)  # fmt: skip
    want = sorted(((None if c is None or c == date(1600, 1, 1) else c.isoformat(), a, amount(p), amount(r))
                   for c, a, _, p, r in mine), key=key)  # fmt: skip
    assert got == want


def test_the_index_holds_no_pseudonym_or_identifier(shared_world: World) -> None:
    world = shared_world
    delivered = people(world.delivery)
    # Hub pseudonyms and NIRs (names are too short to search for in random bytes: 'LAMY' turns up in base64).
    secrets = set(everyone(world)) | {p["BEN_NIR"] for p in delivered}
    stored: list[bytes] = []
    with world.hub.session() as session:
        for model in ALL_TABLES:
            for row in session.execute(select(model.__table__)):
                stored += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        assert any(session.scalar(select(m.person_key).limit(1)) for m in (CitizenExtract, CitizenExtractRecent))
    blob = b"\x00".join(stored)
    assert b"2024-" not in b"".join(v for v in stored if len(v) > 40)  # payloads are ciphertext
    leaked = [s for s in secrets if s.encode() in blob]
    assert leaked == []
    if world.hub.settings.database_url is None:  # SQLite: the database file itself, every page of it
        files = list(world.hub.settings.data_dir.glob("*.db*"))
        assert files
        raw = b"".join(f.read_bytes() for f in files)
        assert [psa for psa in everyone(world) if psa.encode() in raw] == []


def test_uses_match_the_membership_files_through_opt_out_and_closing(world: World) -> None:
    first = world.active_project()
    me, other = hub_pseudonym(world, "citizen1"), hub_pseudonym(world, "citizen2")
    assert world.call("citizen1", "POST", "/me/opt-out").status_code == 200
    second = world.active_project(requester="researcher2")  # built after the objection: leaves citizen1 out
    closed = world.call("researcher2", "POST", f"/projects/{second}/close", json={"reason": "study complete"})
    assert closed.status_code == 200, closed.text
    with world.hub.session() as session:
        assert projects_including(world.hub, session, me) == members_by_scan(world, me) == [first]
        assert projects_including(world.hub, session, other) == members_by_scan(world, other) == [first, second]
        for psa in everyone(world)[::10]:
            assert projects_including(world.hub, session, psa) == members_by_scan(world, psa)
    # A closed project stays on the citizen's record: past uses are still told.
    uses = world.call("citizen2", "GET", "/me/data-uses").json()
    assert sorted(u["project_id"] for u in uses["uses"]) == [first, second]


def test_what_the_index_lacks_is_read_the_slow_way_then_rebuilt(world: World) -> None:
    pid = world.active_project()
    expected = full_scan(world)
    sample = everyone(world)[:40]
    with world.hub.session() as session:
        before = {p: projects_including(world.hub, session, p) for p in sample}
        assert any(before.values())
        for model in ALL_TABLES:
            session.execute(delete(model))  # a hub ingested before the index existed
        session.commit()
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            assert projects_including(world.hub, session, psa) == before[psa]
        done = rebuild(world.hub, session)
        session.commit()
        assert done.batches == len(session.scalars(select(BatchRow.batch_id)).all()) and done.generations == 1
        assert rebuild(world.hub, session).batches == 0  # nothing left to do
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            assert projects_including(world.hub, session, psa) == before[psa]
        assert session.scalar(select(CitizenUseGeneration.project_id)) == pid
        assert not unmerged(session)  # a rebuilt index is merged: reads find it in one place
        for model in (CitizenUseRecent, CitizenExtractRecent):
            assert session.scalar(select(func.count()).select_from(model)) == 0


@pytest.mark.parametrize("merged", [False, True], ids=["waiting", "merged"])
def test_one_batch_the_index_lacks_is_read_the_slow_way_beside_the_indexed_ones(world: World, merged: bool) -> None:
    # The database picks the care files of batches without extracts: one such batch among indexed ones (waiting in
    # the recent table or merged) must be scanned, and only it, so each care row is counted once.
    world.active_project()
    expected = full_scan(world)
    sample = everyone(world)[:40]
    with world.hub.session() as session:
        if merged:
            assert merge(session).batches
            session.commit()
        batches = sorted(session.scalars(select(CitizenExtractBatch.batch_id)))
        assert len(batches) > 1
        lacking = batches[len(batches) // 2]
        for model in (CitizenExtract, CitizenExtractRecent, CitizenExtractBatch):
            session.execute(delete(model).where(model.batch_id == lacking))
        session.commit()
        assert lacking not in _extract_markers(session)
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])


def test_a_rotated_index_key_keeps_answers_whole_until_rebuilt(world: World) -> None:
    world.active_project()
    me = hub_pseudonym(world, "citizen1")
    expected = full_scan(world)[me]
    world.hub.custody.rotate("citizen-index")
    with world.hub.session() as session:
        # Old entries are keyed under version 1: the read computes the person's key under each version in use.
        assert sorted(care_rows(world.hub, session, me), key=_total) == expected
        assert projects_including(world.hub, session, me) == members_by_scan(world, me)
        rebuild(world.hub, session, from_scratch=True)
        session.commit()
        assert set(session.scalars(select(CitizenExtractBatch.key_version))) == {2}
        assert sorted(care_rows(world.hub, session, me), key=_total) == expected
        assert projects_including(world.hub, session, me) == members_by_scan(world, me)


@pytest.mark.parametrize("merged", [False, True], ids=["waiting", "merged"])
def test_an_extract_moved_to_another_bucket_is_refused_not_shown(world: World, merged: bool) -> None:
    me = hub_pseudonym(world, "citizen1")
    table = CitizenExtract if merged else CitizenExtractRecent
    with world.hub.session() as session:
        if merged:
            assert merge(session).batches
            session.commit()
        assert care_rows(world.hub, session, me)
        [mine] = person_keys(world.hub, [me], 1)
        rows = session.execute(select(table.batch_id, table.person_key, table.payload)).all()
        batch, bucket = next((b, k) for b, k, _ in rows if mine.startswith(k))
        payload = next(p for b, k, p in rows if b == batch and k != bucket)  # another bucket's, same batch and key
        moved = session.execute(
            update(table).where(table.person_key == bucket, table.batch_id == batch).values(payload=payload)
        )
        assert moved.rowcount == 1  # type: ignore[attr-defined]
        session.commit()
        with pytest.raises(CitizenIndexError, match="does not open"):
            care_rows(world.hub, session, me)


def _seal_per_person(world: World, session: Any, batch_id: str) -> None:
    """Rewrite a batch's extracts as batches indexed before buckets hold them: one JSON extract per person."""
    marker = session.get(CitizenExtractBatch, batch_id)
    aead = AESGCM(world.hub.custody.unwrap(EXTRACT_KEY, marker.wrapped_key, batch_id.encode()))
    files = session.scalars(select(FileRow).where(FileRow.batch_id == batch_id, FileRow.table_name == CARE_TABLE))
    table = _care_table(world.hub, [world.hub.warehouse.directory / f.path for f in files])
    by_person: dict[str, list[list[Any]]] = defaultdict(list)
    for psa, day, *numbers in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
        by_person[psa].append([None if day is None else day.isoformat(), *numbers])
    marker.bucket_chars = None  # as batches indexed per person were (no length kept)
    session.execute(delete(CitizenExtractRecent).where(CitizenExtractRecent.batch_id == batch_id))
    for psa, found in by_person.items():
        [key] = person_keys(world.hub, [psa], marker.key_version)
        document = json.dumps(found).encode()
        nonce = os.urandom(12)
        sealed = nonce + aead.encrypt(nonce, document + b" " * (-len(document) % 256), f"{key}|{batch_id}".encode())
        session.add(CitizenExtractRecent(batch_id=batch_id, person_key=key, payload=sealed))


def test_batches_indexed_per_person_before_buckets_are_still_read(world: World) -> None:
    expected = full_scan(world)
    with world.hub.session() as session:
        batches = sorted(session.scalars(select(FileRow.batch_id).where(FileRow.table_name == CARE_TABLE).distinct()))
        assert len(batches) > 1
        _seal_per_person(world, session, batches[0])
        session.commit()
        assert any(len(k) == PERSON_KEY_LENGTH for k in session.scalars(select(CitizenExtractRecent.person_key)))
        for merged in (False, True):  # waiting, then merged beside the buckets of the other batches
            for psa in everyone(world):
                assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            merge(session)
            session.commit()


def rows_in(session: Any, model: type[CitizenUse] | type[CitizenUseRecent]) -> set[tuple[int, int, str]]:
    return {(p, g, k) for p, g, k in session.execute(select(model.project_id, model.generation, model.person_key))}


def test_new_generations_wait_generation_first_and_a_merge_moves_them_whole(world: World) -> None:
    first = world.active_project()
    second = world.active_project(requester="researcher2")
    sample = everyone(world)[::7]
    with world.hub.session() as session:
        waiting = rows_in(session, CitizenUseRecent)
        assert rows_in(session, CitizenUse) == set()  # written generation first, nothing person first yet
        assert {(p, g) for p, g, _ in waiting} == {(first, 1), (second, 1)}
        assert unmerged(session).generations == 2
        before = _use_markers(session)
        expected = {psa: members_by_scan(world, psa) for psa in sample}
        assert any(expected.values())
        for psa in sample:
            assert projects_including(world.hub, session, psa) == expected[psa]
        assert merge(session).generations == 2
        session.commit()
        assert rows_in(session, CitizenUse) == waiting  # every row moved, none lost or added
        assert rows_in(session, CitizenUseRecent) == set()
        assert not unmerged(session) and not merge(session)
        for psa in sample:
            assert projects_including(world.hub, session, psa) == expected[psa]
            # A read that took the markers before the merge and looks up after it still finds every use.
            assert sorted(_uses_of(world.hub, session, psa, before).projects) == expected[psa]
    third = world.active_project(requester="researcher2")  # after a merge, the next one waits again
    with world.hub.session() as session:
        assert {(p, g) for p, g, _ in rows_in(session, CitizenUseRecent)} == {(third, 1)}
        for psa in sample:
            assert projects_including(world.hub, session, psa) == members_by_scan(world, psa)


def test_new_batches_wait_batch_first_and_a_merge_moves_them_whole(shared_world: World) -> None:
    world = shared_world
    expected = full_scan(world)
    sample = everyone(world)[::5]

    def extracts(model: type[CitizenExtract] | type[CitizenExtractRecent]) -> set[tuple[str, str, bytes]]:
        found = session.execute(select(model.person_key, model.batch_id, model.payload))
        return {(k, b, bytes(p)) for k, b, p in found}

    with world.hub.session() as session:
        waiting = extracts(CitizenExtractRecent)
        assert waiting and extracts(CitizenExtract) == set()  # written batch first at ingestion
        batches = set(session.scalars(select(BatchRow.batch_id)))
        assert unmerged(session).batches == len(batches) > 1
        before = _extract_markers(session)
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
        assert merge(session).batches == len(batches)
        session.commit()
        assert extracts(CitizenExtract) == waiting  # every extract moved, none lost, altered or added
        assert extracts(CitizenExtractRecent) == set()
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            # A read that took the markers before the merge and looks up after it still finds every row.
            assert sorted(_care_rows(world.hub, session, psa, before), key=_total) == expected.get(psa, [])


def test_the_background_merge_waits_for_enough_to_wait_and_is_recorded(world: World) -> None:
    def merges() -> list[dict[str, Any]]:
        with world.hub.session() as session:
            found = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "citizen_index.merge"))
            return [dict(d) for d in found]

    ingested = merge_recorded(world.hub, SYSTEM)  # by hand (the CLI's way): whatever waits, recorded
    assert ingested.batches > 1 and merges() == [{"batches": ingested.batches, "generations": 0}]
    world.hub.settings = world.hub.settings.model_copy(update={"citizen_index_merge_waiting": 2})
    world.active_project()
    assert merge_recorded(world.hub, SYSTEM, due_only=True) == Waiting(0, 0)  # one waits: not due, not recorded
    assert len(merges()) == 1
    world.active_project(requester="researcher2")
    assert merge_recorded(world.hub, SYSTEM, due_only=True) == Waiting(batches=0, generations=2)
    assert merges()[1:] == [{"batches": 0, "generations": 2}]
    with world.hub.session() as session:
        assert not unmerged(session)


def _index_per_person(world: World, session: Any, project_id: int, generation: int) -> None:
    """Rewrite a generation's index rows as generations indexed before buckets hold them: one row per person."""
    marker = session.get(CitizenUseGeneration, (project_id, generation))
    view = session.scalars(
        select(ProjectView).where(ProjectView.project_id == project_id, ProjectView.generation == generation)
    ).one()
    crypto = ParquetCrypto(world.hub.custody, master_key=MEMBERSHIP_KEY)
    members = ds.dataset(str(world.hub.settings.data_dir / view.membership_file), format=crypto.file_format())
    keys = person_keys(world.hub, members.to_table().column(PSEUDONYM_COLUMN).to_pylist(), marker.key_version)
    marker.bucket_chars = None  # as generations indexed per person were (no length kept)
    model = CitizenUse if marker.merged else CitizenUseRecent
    session.execute(delete(model).where(model.project_id == project_id, model.generation == generation))
    session.add_all(model(project_id=project_id, generation=generation, person_key=k) for k in keys)


def test_generations_indexed_per_person_before_buckets_are_still_read(world: World) -> None:
    first = world.active_project()
    second = world.active_project(requester="researcher2")
    sample = everyone(world)[::3]
    expected = {psa: members_by_scan(world, psa) for psa in sample}
    assert any(expected.values())
    with world.hub.session() as session:
        _index_per_person(world, session, first, 1)
        session.commit()
        assert any(k is None for k in session.scalars(select(CitizenUseRecent.members)))
        for _ in ("waiting", "merged"):  # then merged beside the buckets of the other generation
            for psa in sample:
                assert projects_including(world.hub, session, psa) == expected[psa]
            merge(session)
            session.commit()
        assert {len(k) for k in session.scalars(select(CitizenUse.person_key).where(CitizenUse.project_id == second))}
        assert all(len(k) == PERSON_KEY_LENGTH for k in session.scalars(
            select(CitizenUse.person_key).where(CitizenUse.project_id == first)))  # fmt: skip


def test_a_generation_is_indexed_by_bucket_holding_exactly_its_people(world: World) -> None:
    pid = world.active_project()
    with world.hub.session() as session:
        view = session.scalars(select(ProjectView).where(ProjectView.project_id == pid)).one()
        crypto = ParquetCrypto(world.hub.custody, master_key=MEMBERSHIP_KEY)
        members = ds.dataset(str(world.hub.settings.data_dir / view.membership_file), format=crypto.file_format())
        psas = members.to_table().column(PSEUDONYM_COLUMN).to_pylist()
        marker = session.get(CitizenUseGeneration, (pid, 1))
        wanted = sorted(person_keys(world.hub, psas, marker.key_version))
        rows = session.execute(select(CitizenUseRecent.person_key, CitizenUseRecent.members)).all()
        assert len(rows) < len(psas) / 4  # a row per bucket, not per person
        assert {len(bucket) for bucket, _ in rows} == {bucket_chars(len(psas))}
        listed = []
        for bucket, packed in sorted(rows):
            assert packed is not None and len(packed) % PERSON_KEY_LENGTH == 0
            keys = [packed[i : i + PERSON_KEY_LENGTH].decode() for i in range(0, len(packed), PERSON_KEY_LENGTH)]
            assert keys == sorted(keys) and all(k.startswith(bucket) for k in keys)
            listed += keys
        assert listed == wanted  # everyone in it, once, and nobody else


@given(
    st.sets(st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=22, max_size=22), max_size=60),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=22, max_size=22),
)
def test_a_bucket_holds_a_key_exactly_when_it_was_listed(listed: set[str], probe: str) -> None:
    packed = b"".join(k.encode() for k in sorted(listed))
    assert in_members(packed, probe) == (probe in listed)
    assert all(in_members(packed, k) for k in listed)


def test_a_read_looks_up_the_bucket_lengths_in_use_and_every_length_where_none_was_kept(world: World) -> None:
    world.active_project()
    expected = full_scan(world)
    sample = everyone(world)[::6]
    uses = {psa: members_by_scan(world, psa) for psa in sample}
    with world.hub.session() as session:
        markers = _extract_markers(session)
        assert {chars for *_, chars in markers.values()} == {1}  # the test hub's batches: one character
        mine = {1: "abcdefghijklmnopqrstuv"}
        assert _lookup_keys(mine, [(1, 1), (1, 2)]) == ["a", "ab"]
        assert _lookup_keys(mine, [(1, None)]) == ["a", "ab", "abc", "abcd", mine[1]]
        for model in (CitizenExtractBatch, CitizenUseGeneration):  # as a hub indexed before lengths were kept
            session.execute(update(model).values(bucket_chars=None))
        session.commit()
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            assert projects_including(world.hub, session, psa) == uses[psa]


def test_a_key_spanning_two_members_is_not_one_of_them() -> None:
    first, second = "A" * 11 + "C" * 11, "C" * 11 + "B" * 11
    packed = (first + second).encode()
    assert in_members(packed, first) and in_members(packed, second)
    assert not in_members(packed, "C" * 22)  # the bytes are there, across the two entries: not a member


def test_the_migrations_keep_what_each_version_can_read(world: World) -> None:
    """Down to the one-table index, what waits is merged first (nothing lost), and what is indexed by bucket (which
    the code of that version cannot read) is taken out of the index whole, to be read the slow way; up again,
    every read gives what a full scan gives, and a rebuild indexes what was taken out."""
    pid = world.active_project()
    second = world.active_project(requester="researcher2")
    expected = full_scan(world)
    sample = everyone(world)[::9]
    with world.hub.session() as session:
        batches = sorted(session.scalars(select(FileRow.batch_id).where(FileRow.table_name == CARE_TABLE).distinct()))
        _seal_per_person(world, session, batches[0])
        _index_per_person(world, session, pid, 1)
        session.commit()
        kept_uses = {r for r in rows_in(session, CitizenUseRecent) if r[0] == pid}
        kept_extracts = {
            tuple(r)
            for r in session.execute(
                select(CitizenExtractRecent.person_key, CitizenExtractRecent.batch_id).where(
                    CitizenExtractRecent.batch_id == batches[0]
                )
            )
        }
        assert kept_uses and kept_extracts
        all_batches = set(session.scalars(select(CitizenExtractBatch.batch_id)))
    with world.hub.engine.begin() as connection:
        command.downgrade(migration_config(connection), "0015fm")
    with world.hub.engine.connect() as connection:
        found = connection.exec_driver_sql("SELECT project_id, generation, person_key FROM citizen_use")
        assert {tuple(r) for r in found} == kept_uses
        found = connection.exec_driver_sql("SELECT person_key, batch_id FROM citizen_extract")
        assert {tuple(r) for r in found} == kept_extracts
        markers = connection.exec_driver_sql("SELECT batch_id FROM citizen_extract_batch")
        assert {b for (b,) in markers} == {batches[0]} | {  # batches without care rows have no rows to read
            b for b in all_batches if b not in batches
        }
        assert [tuple(r) for r in connection.exec_driver_sql("SELECT project_id FROM citizen_use_generation")] == [
            (pid,)
        ]
    migrate(world.hub.engine)
    with world.hub.session() as session:
        assert not unmerged(session)
        for psa in sample:  # what the index lost is read from the warehouse and the membership files
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            assert projects_including(world.hub, session, psa) == members_by_scan(world, psa)
        done = rebuild(world.hub, session)
        session.commit()
        assert done.batches == len(batches) - 1 and done.generations == 1
        assert session.get(CitizenUseGeneration, (second, 1)) is not None
        for psa in sample:
            assert sorted(care_rows(world.hub, session, psa), key=_total) == expected.get(psa, [])
            assert projects_including(world.hub, session, psa) == members_by_scan(world, psa)
        assert any(projects_including(world.hub, session, psa) == [pid, second] for psa in sample)


def test_a_merge_is_not_cut_short_by_the_statement_timeout(world: World) -> None:
    """A national merge moves tens of millions of rows in one statement: PostgreSQL's per-connection timeout
    (HYGIE_DATABASE_STATEMENT_TIMEOUT_MS, for requests) is lifted for the merge's transaction, and only there."""
    if world.hub.settings.database_url is None:
        pytest.skip("SQLite has no statement timeout")
    world.active_project()
    with world.hub.session() as session:
        configured = session.scalar(text("SHOW statement_timeout"))
        assert configured not in (None, "0")
        assert merge(session)
        assert session.scalar(text("SHOW statement_timeout")) == "0"
        session.commit()
        assert session.scalar(text("SHOW statement_timeout")) == configured


def test_the_background_tasks_merge_once_enough_waits(world: World) -> None:
    from hygie.portal.background import start_background

    world.active_project()
    world.active_project(requester="researcher2")
    world.hub.settings = world.hub.settings.model_copy(
        update={"citizen_index_merge_waiting": 2, "citizen_index_merge_seconds": 0.05}
    )
    stop = start_background(world.hub)
    try:
        deadline = time.monotonic() + 120  # a wait for the thread, not a timing assertion
        while True:
            with world.hub.session() as session:
                if not unmerged(session):
                    break
            assert time.monotonic() < deadline, "the background tasks never merged the waiting generations"
            time.sleep(0.05)
    finally:
        stop()
    with world.hub.session() as session:
        assert rows_in(session, CitizenUseRecent) == set()
        assert session.scalar(select(func.count()).where(AuditEvent.action == "citizen_index.merge")) == 1


def _unmerge(session: Any) -> None:
    """The inverse of a merge (for the test only): every row back to the recent tables, markers unmerged."""
    for marker, recent, main in (
        (CitizenExtractBatch, CitizenExtractRecent, CitizenExtract),
        (CitizenUseGeneration, CitizenUseRecent, CitizenUse),
    ):
        names = [c.name for c in recent.__table__.columns]
        session.execute(recent.__table__.insert().from_select(names, select(*(main.__table__.c[n] for n in names))))
        session.execute(delete(main))
        session.execute(update(marker).values(merged=False))


def test_reads_stay_whole_while_merges_commit_under_them(world: World) -> None:
    """Rows move between the two tables in commits made while citizens read: every read gives the whole answer
    (one statement sees both tables at one moment; a changed marker starts the read again)."""
    import threading

    world.active_project()
    sample = everyone(world)[::25]
    expected_care = full_scan(world)
    expected_uses = {psa: members_by_scan(world, psa) for psa in sample}
    assert any(expected_uses.values())
    stop = threading.Event()
    moves: list[int] = []

    def churn() -> None:
        while not stop.is_set() and len(moves) < 40:
            with world.hub.session() as session:
                if unmerged(session):
                    merge(session)
                else:
                    _unmerge(session)
                session.commit()
            moves.append(1)

    mover = threading.Thread(target=churn)
    mover.start()
    reads = 0
    try:
        with world.hub.session() as session:
            while mover.is_alive() or reads < len(sample):
                psa = sample[reads % len(sample)]
                try:
                    care = sorted(care_rows(world.hub, session, psa), key=_total)
                    uses = projects_including(world.hub, session, psa)
                except CitizenIndexError as exc:
                    assert "being rebuilt" in str(exc)  # refused after three tries: never a short answer
                    continue
                finally:
                    session.rollback()  # each read in a transaction of its own, as a request's
                assert care == expected_care.get(psa, []), psa
                assert uses == expected_uses[psa], psa
                reads += 1
    finally:
        stop.set()
        mover.join()
    assert len(moves) >= 2 and reads >= len(sample)
