# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rotation of the hub pseudonym key (issue 16, item 3): every stored hub pseudonym re-keyed under a new version
while the hub keeps answering, resumable after a kill, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from hygie.audit.events import AuditEvent
from hygie.governance.citizen_index import CitizenExtractBatch, care_rows, for_person
from hygie.governance.models import OptOut, ProjectView
from hygie.governance.pseudonym_rotation import PseudonymRotationFile, rotate, versions_in_use
from hygie.governance.views import projects_including
from hygie.hub import Hub
from hygie.identity.pseudonym import HubPseudonymState, active_version
from hygie.identity.vault import IdentityRow
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.synth import generate
from hygie.warehouse.catalog import BatchRow, FileRow
from tests.conftest import cli_env

from .conftest import START, make_project
from .test_views import BROAD, build, objector, query, rekeyed, view_people, warehouse

TOTALS = "SELECT count(*), count(DISTINCT BEN_NIR_PSA), round(sum(PRS_PAI_MNT), 2) FROM ER_PRS_F"
JOINED = "SELECT count(*) FROM ER_PRS_F p JOIN IR_BEN_R b USING (BEN_NIR_PSA)"


def everyone(hub: Hub) -> dict[bytes, str]:
    """Blind index -> NIR of everyone in the vault."""
    with hub.session() as session:
        indexes = list(session.scalars(select(IdentityRow.person_index).distinct()))
        return {i: identity.nir for i, identity in hub.vault(session).identities_of(indexes).items()}


def stored_pseudonyms(hub: Hub) -> set[str]:
    rows = warehouse(hub, "SELECT BEN_NIR_PSA FROM IR_BEN_R UNION SELECT BEN_NIR_PSA FROM ER_PRS_F")
    return {r[0] for r in rows}


def citizen(hub: Hub, index: bytes) -> tuple[list[Any], list[int]]:
    with hub.session() as session:
        rows = for_person(hub, session, index, lambda p: care_rows(hub, session, p))
        uses = for_person(hub, session, index, lambda p: projects_including(hub, session, p))
    assert rows is not None and uses is not None
    return sorted(rows, key=repr), uses


def actions(hub: Hub) -> list[str]:
    with hub.session() as session:
        events = select(AuditEvent.action).where(AuditEvent.action.like("key.pseudonym.%")).order_by(AuditEvent.id)
        return list(session.scalars(events))


def test_a_rotation_rekeys_every_stored_pseudonym_and_every_answer_stays(populated: Hub, tmp_path: Path) -> None:
    hub = populated
    hub.settings.pseudonym_rotation_grace_seconds = 0.0
    people = everyone(hub)
    index, _ = objector(hub)  # someone with care in the view's year
    nir = people[index]
    project = make_project(hub, BROAD)
    build(hub, project)
    before_people = view_people(hub, project)
    totals, joined = warehouse(hub, TOTALS), warehouse(hub, JOINED)
    answers = citizen(hub, index)
    assert answers[1] == [project.id] and answers[0]
    old = stored_pseudonyms(hub)
    v1 = hub.pseudonymiser.at(1)
    assert old == set(v1.pseudonyms(people.values(), cache=False))
    with hub.session() as session:
        leaked = tmp_path / "leaked.parquet"  # a warehouse file copied by someone before the rotation
        path = (
            hub.warehouse.directory
            / session.scalars(select(FileRow.path).where(FileRow.table_name == "ER_PRS_F")).first()
        )  # type: ignore[operator]
        leaked.write_bytes(path.read_bytes())

    done = rotate(hub, actor="console")

    assert (done.from_version, done.to_version, done.people) == (1, 2, len(people))
    assert done.views_on_older_versions == 1  # the project's view, built through version 1
    with hub.session() as session:
        assert active_version(session) == 2
        assert session.scalar(select(func.count()).select_from(PseudonymRotationFile)) == 0
        assert hub.warehouse.verify(session) == []
        catalogued = {hub.warehouse.directory / p for p in session.scalars(select(FileRow.path))}
        # The citizen index was rebuilt: every batch indexed again, under the new pseudonyms.
        assert session.scalar(select(func.count()).select_from(CitizenExtractBatch)) == session.scalar(
            select(func.count()).select_from(BatchRow)
        )
    assert set(hub.warehouse.directory.rglob("*.parquet")) == catalogued  # the old files are gone
    new = stored_pseudonyms(hub)
    assert new == set(hub.pseudonymiser.at(2).pseudonyms(people.values(), cache=False))
    assert new.isdisjoint(old)  # the leaked file joins nothing kept after the rotation
    decrypting = hub.warehouse.crypto.decryption_properties()
    leaked_psa = set(
        pq.read_table(leaked, columns=["BEN_NIR_PSA"], decryption_properties=decrypting).column(0).to_pylist()
    )
    assert leaked_psa <= old and leaked_psa.isdisjoint(new)
    assert warehouse(hub, TOTALS) == totals and warehouse(hub, JOINED) == joined
    assert citizen(hub, index) == answers  # "my reimbursements" and "who used my data" unchanged
    assert actions(hub) == ["key.pseudonym.rotate.start", "key.pseudonym.rotate", "key.pseudonym.rotate.finish"]

    # The view built before keeps its people, and an objection made now still leaves the objector out of it:
    # their project pseudonym is derived through the version the view was built with.
    assert view_people(hub, project) == before_people
    (pid,) = rekeyed(hub, project, {v1.pseudonym(nir)})
    assert pid in before_people
    with hub.session() as session:
        session.add(OptOut(person_index=index, created_at=datetime.now(UTC)))
        session.commit()
    assert query(hub, project, f"SELECT count(*) FROM IR_BEN_R WHERE BEN_NIR_PSA = '{pid}'") == [(0,)]
    with hub.session() as session:
        assert versions_in_use(session) == {1, 2}
    rebuilt = build(hub, project)
    assert rebuilt.pseudonym_version == 2
    (new_pid,) = rekeyed(hub, project, {hub.pseudonymiser.at(2).pseudonym(nir)})
    assert new_pid not in view_people(hub, project) and len(view_people(hub, project)) == len(before_people) - 1
    with hub.session() as session:
        assert versions_in_use(session) == {2}  # version 1 may now be destroyed


def test_ingestion_and_view_builds_during_a_rotation_land_under_the_new_version(populated: Hub, tmp_path: Path) -> None:
    hub = populated
    hub.settings.pseudonym_rotation_grace_seconds = 0.0
    second = tmp_path / "second"
    generate(second, people=40, years=1, seed=99, start_year=START)
    project = make_project(hub, BROAD)
    seen: list[str] = []

    def meanwhile(stage: str, done: int, total: int) -> None:
        if not seen:  # once the first file is re-written: a delivery is accepted and a view is built
            for batch in expand_batches([second]):
                result = ingest_batch(hub, batch)
                assert result.status == "accepted", result.errors[:3]
            build(hub, project)
        seen.append(stage)

    rotate(hub, actor="console", progress=meanwhile)

    assert "catch-up" in seen  # the batch and the generation published meanwhile were re-written under the lock
    people = everyone(hub)
    assert stored_pseudonyms(hub) == set(hub.pseudonymiser.at(2).pseudonyms(people.values(), cache=False))
    with hub.session() as session:
        view = session.scalars(select(ProjectView).where(ProjectView.project_id == project.id)).one()
        assert view.pseudonym_version == 1 and view.membership_file.endswith(".v2.parquet")
        index = next(iter(people))
        assert for_person(hub, session, index, lambda p: projects_including(hub, session, p)) == [project.id]


def test_a_view_build_that_straddles_the_switch_is_refused(populated: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build reads the warehouse under one version; if a switch commits before the build publishes, its membership
    file and citizen-index rows would name nobody: it is refused and leaves nothing."""
    from hygie.governance import views
    from hygie.governance.views import ViewError, build_view, project_dir

    hub = populated
    project = make_project(hub, BROAD)
    written = views._write_view_duckdb

    def then_a_switch(*args: Any, **kwargs: Any) -> Any:
        out = written(*args, **kwargs)
        with hub.session() as rotating:  # what a rotation's switch commits, meanwhile
            rotating.execute(update(HubPseudonymState).values(active_version=HubPseudonymState.active_version + 1))
            rotating.commit()
        return out

    monkeypatch.setattr(views, "_write_view_duckdb", then_a_switch)
    with hub.session() as session, pytest.raises(ViewError, match="rotated while the view was being built"):
        build_view(hub, session, project, actor="account:1")
    with hub.session() as session:
        assert session.scalars(select(ProjectView).where(ProjectView.project_id == project.id)).all() == []
    base = project_dir(hub, project.id)
    assert list((base / "views").iterdir()) == [] and list((base / "membership").iterdir()) == []


def test_a_citizen_read_that_straddles_an_index_change_is_read_again(
    populated: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's held batches are read first: if they are emptied (a switch, a rebuild from scratch) before the
    extracts are read, the answer would miss those batches' care ("no care" would be a lie): it is read again."""
    from hygie.governance import citizen_index
    from hygie.governance.citizen_index import clear

    hub = populated
    _, psa = objector(hub)
    with hub.session() as session:
        expected = sorted(care_rows(hub, session, psa), key=repr)
    assert expected
    read = citizen_index._care_rows
    calls: list[int] = []

    def emptied_first(*args: Any) -> Any:
        if not calls:
            with hub.session() as other:
                clear(other)
                other.commit()
        calls.append(1)
        return read(*args)

    monkeypatch.setattr(citizen_index, "_care_rows", emptied_first)
    with hub.session() as session:
        assert sorted(care_rows(hub, session, psa), key=repr) == expected
    assert len(calls) == 2


def test_a_rotation_killed_midway_changes_nothing_readers_see_and_runs_again_to_the_end(populated: Hub) -> None:
    hub = populated
    env = cli_env(hub.settings) | {"HYGIE_PSEUDONYM_ROTATION_GRACE_SECONDS": "0"}
    totals = warehouse(hub, TOTALS)
    old = stored_pseudonyms(hub)
    command = [sys.executable, "-m", "hygie.cli", "keys", "rotate", "hub-pseudonym"]
    killed = subprocess.run(command, env=env | {"HYGIE_FAILPOINT": "pseudonym-rotation.rewritten"},
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    with hub.session() as session:
        state = session.get(HubPseudonymState, 1)
        assert state is not None and (state.active_version, state.target_version) == (1, 2)
        assert session.scalar(select(func.count()).select_from(PseudonymRotationFile)) == 1
    assert stored_pseudonyms(hub) == old and warehouse(hub, TOTALS) == totals  # readers still on version 1

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "version 2 is now active" in again.stderr
    people = everyone(hub)
    assert stored_pseudonyms(hub) == set(hub.pseudonymiser.at(2).pseudonyms(people.values(), cache=False))
    assert warehouse(hub, TOTALS) == totals
    assert actions(hub) == ["key.pseudonym.rotate.start", "key.pseudonym.rotate", "key.pseudonym.rotate.finish"]


def test_a_version_still_needed_cannot_be_destroyed(populated: Hub) -> None:
    from typer.testing import CliRunner

    from hygie.cli import app

    hub = populated
    refused = CliRunner().invoke(app, ["keys", "destroy", "hub-pseudonym", "--version", "1"], env=cli_env(hub.settings))
    assert refused.exit_code != 0 and "still needed" in refused.output
    assert hub.pseudonymiser.at(1).pseudonym("1" * 13 + "00") is not None  # the active version is intact
    with hub.session() as session:
        denied = session.scalars(select(AuditEvent).where(AuditEvent.action == "key.destroy")).one()
        assert denied.outcome == "denied"


def test_with_the_hsm_backend_the_new_version_is_made_in_the_token(tmp_path: Path) -> None:
    from tests.conftest import make_settings
    from tests.keys.softhsm import fresh_token

    token = fresh_token()
    delivery = tmp_path / "delivery"
    generate(delivery, people=60, years=1, seed=5, start_year=START)
    hub = Hub.init(make_settings(tmp_path / "hub", key_backend="pkcs11", pkcs11_module=token.module,
                                 pkcs11_token_label=token.label, pkcs11_pin=token.pin,
                                 pseudonym_rotation_grace_seconds=0.0))  # fmt: skip
    try:
        for batch in expand_batches([delivery]):
            assert ingest_batch(hub, batch).status == "accepted"
        people, old = everyone(hub), stored_pseudonyms(hub)
        done = rotate(hub, actor="console")
        assert (done.from_version, done.to_version, done.people) == (1, 2, 60)
        assert hub.custody.info("hub-pseudonym").versions == (1, 2)
        new = stored_pseudonyms(hub)
        assert new == set(hub.pseudonymiser.at(2).pseudonyms(people.values(), cache=False)) and new.isdisjoint(old)
    finally:
        hub.close()


class _Stop(Exception):
    pass


def test_files_recorded_as_rewritten_but_gone_are_written_again(populated: Hub) -> None:
    """A backup restored mid-rotation holds the rotation's records but not its uncatalogued files: going on must
    not point the catalog at missing files, nor remove the old ones."""
    hub = populated
    hub.settings.pseudonym_rotation_grace_seconds = 0.0
    totals = warehouse(hub, TOTALS)

    def stop_after_three(stage: str, done: int, total: int) -> None:
        if done == 3:
            raise _Stop

    with pytest.raises(_Stop):
        rotate(hub, actor="console", progress=stop_after_three)
    with hub.session() as session:
        written = session.scalars(select(PseudonymRotationFile)).all()
        assert len(written) == 3
        for item in written:  # as a restored backup leaves them
            root = hub.warehouse.directory if item.kind == "warehouse" else hub.settings.data_dir
            (root / item.new_path).unlink()
    rotate(hub, actor="console")
    with hub.session() as session:
        assert hub.warehouse.verify(session) == [] and active_version(session) == 2
    assert warehouse(hub, TOTALS) == totals
    assert stored_pseudonyms(hub) == set(hub.pseudonymiser.at(2).pseudonyms(everyone(hub).values(), cache=False))


BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
pseudonyms = st.text(alphabet=BASE32, min_size=17, max_size=17)


@given(
    pairs=st.dictionaries(pseudonyms, pseudonyms, max_size=40),
    picks=st.lists(st.one_of(st.none(), st.integers(0, 39)), max_size=60),
    strangers=st.lists(pseudonyms, max_size=3),
    offset=st.integers(0, 3),
)
@settings(max_examples=200, deadline=None)
def test_the_map_renames_every_known_pseudonym_and_counts_the_others(
    pairs: dict[str, str], picks: list[int | None], strangers: list[str], offset: int
) -> None:
    from hygie.governance.pseudonym_rotation import RotationError, _fixed, _Map

    mapping = _Map()
    olds = list(pairs)
    order = np.argsort(_fixed(pa.array(olds, pa.string()))) if olds else np.empty(0, dtype=int)
    mapping.old = _fixed(pa.array(olds, pa.string()))[order]
    mapping.new = _fixed(pa.array([pairs[o] for o in olds], pa.string()))[order]
    column = [None if p is None or not olds else olds[p % len(olds)] for p in picks]
    sliced = pa.array(["A" * 17] * offset + column, pa.string()).slice(offset)  # an offset, as row groups have
    out = mapping.apply("f")(pa.table({"BEN_NIR_PSA": sliced})).column(0).to_pylist()
    assert out == [None if p is None else pairs[p] for p in column]
    unknown = [s for s in strangers if s not in pairs]
    if unknown:
        with pytest.raises(RotationError, match=f"{len(unknown)} pseudonyms name nobody"):
            mapping.apply("f")(pa.table({"BEN_NIR_PSA": pa.array(unknown + column, pa.string())}))
