# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Provisioning of minimised per-project views (issue 4, items 5 and 6), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
import shutil
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from hygie.audit.events import AuditEvent
from hygie.governance import views
from hygie.governance.models import OptOut, Project, ProjectView
from hygie.governance.policy import departements_by_region
from hygie.governance.views import (
    MEMBERSHIP_KEY,
    ViewError,
    build_view,
    destroy_view,
    open_view,
    project_pseudonym_key,
    project_view_key,
    projects_including,
    rekey,
    view_summary,
)
from hygie.hub import Hub
from hygie.identity.vault import IdentityRow
from hygie.keys import KeyDestroyed
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.encryption import ParquetCrypto
from tests.conftest import make_settings
from tests.ingest.test_security import scan_data_dir

from .conftest import PEOPLE, make_project

YEAR = {"period_start": "2023-01-01", "period_end": "2023-12-31"}
BROAD: dict[str, Any] = {
    "tables": {
        "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_DCD_DTE"],
        "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "EXO_MTF"],
        "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
    },
    "population": YEAR,
}
DCIR = (
    "FLX_DIS_DTD",
    "FLX_TRT_DTD",
    "FLX_EMT_TYP",
    "FLX_EMT_NUM",
    "FLX_EMT_ORD",
    "ORG_CLE_NUM",
    "DCT_ORD_NUM",
    "PRS_ORD_NUM",
    "REM_TYP_AFF",
)


def build(hub: Hub, project: Project) -> ProjectView:
    with hub.session() as session:
        view = build_view(hub, session, project, actor="account:1")
        session.commit()
        session.refresh(view)
        session.expunge(view)
        return view


def query(hub: Hub, project: Project, sql: str) -> list[tuple[Any, ...]]:
    with hub.session() as session:
        con = open_view(hub, session, project)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()


def view_people(hub: Hub, project: Project) -> set[str]:
    return {r[0] for r in query(hub, project, "SELECT BEN_NIR_PSA FROM IR_BEN_R")}


def warehouse(hub: Hub, sql: str) -> list[tuple[Any, ...]]:
    with hub.session() as session:
        con = hub.warehouse.connect(session)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()


def rekeyed(hub: Hub, project: Project, hub_pseudonyms: set[str]) -> set[str]:
    return set(rekey(hub, project.id, sorted(hub_pseudonyms)))


# -- columns and generalisation -------------------------------------------------------------------------


def test_only_approved_columns_and_gated_columns_coarsened(populated: Hub) -> None:
    hub = populated
    coarse = make_project(hub, BROAD)
    exact = make_project(hub, {**BROAD, "potential_identifiers": ["care_dates"]})
    view = build(hub, coarse)
    build(hub, exact)

    con_columns = {
        table: [d[0] for d in duckdb_describe(hub, coarse, table)] for table in ("IR_BEN_R", "ER_PRS_F", "ER_PHA_F")
    }
    assert con_columns == {
        "IR_BEN_R": ["BEN_NIR_PSA", "BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_DCD_DTE"],
        "ER_PRS_F": ["CLE_DCI_JNT", "BEN_NIR_PSA", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "EXO_MTF"],
        "ER_PHA_F": ["CLE_DCI_JNT", "PHA_PRS_C13", "PHA_ACT_QSN"],
    }
    assert set(view.tables) == {"IR_BEN_R", "ER_PRS_F", "ER_PHA_F"}
    # Care dates: the first of their month unless the project declared them as its potential identifier.
    assert query(hub, coarse, "SELECT DISTINCT day(EXE_SOI_DTD) FROM ER_PRS_F") == [(1,)]
    assert len(query(hub, exact, "SELECT DISTINCT day(EXE_SOI_DTD) FROM ER_PRS_F")) > 20
    deaths = query(hub, coarse, "SELECT DISTINCT day(BEN_DCD_DTE) FROM IR_BEN_R WHERE BEN_DCD_DTE IS NOT NULL")
    assert deaths == [(1,)]
    # Every care row of the year, every dispensation attached to one of them, amounts intact.
    ((care, paid),) = warehouse(
        hub, "SELECT count(*), round(sum(PRS_PAI_MNT), 2) FROM ER_PRS_F WHERE year(EXE_SOI_DTD) = 2023"
    )
    keys = " AND ".join(f"d.{k} = c.{k}" for k in DCIR)
    ((pha,),) = warehouse(
        hub, f"SELECT count(*) FROM ER_PHA_F d JOIN ER_PRS_F c ON {keys} WHERE year(c.EXE_SOI_DTD) = 2023"
    )
    assert query(hub, coarse, "SELECT count(*), round(sum(PRS_PAI_MNT), 2) FROM ER_PRS_F") == [(care, paid)]
    assert query(hub, coarse, "SELECT count(*) FROM ER_PHA_F") == [(pha,)]
    assert query(hub, coarse, "SELECT count(*) = count(DISTINCT CLE_DCI_JNT) FROM ER_PRS_F") == [(True,)]
    orphans = "SELECT count(*) FROM ER_PHA_F d ANTI JOIN ER_PRS_F c USING (CLE_DCI_JNT)"
    assert query(hub, coarse, orphans) == [(0,)]
    # Monthly counts match the warehouse's (the claim key joins each dispensation to its own care row).
    by_month = "SELECT month(c.EXE_SOI_DTD) m, count(*) FROM ER_PHA_F d JOIN ER_PRS_F c USING (CLE_DCI_JNT) GROUP BY m"
    direct = f"SELECT month(c.EXE_SOI_DTD) m, count(*) FROM ER_PHA_F d JOIN ER_PRS_F c ON {keys} "
    direct += "WHERE year(c.EXE_SOI_DTD) = 2023 GROUP BY m"
    assert sorted(query(hub, coarse, by_month)) == sorted(warehouse(hub, direct))
    with hub.session() as session:
        summary = view_summary(session, coarse)
    assert summary is not None and summary["generation"] == 1 and summary["people"] == PEOPLE
    assert summary["tables"]["ER_PRS_F"] == {"rows": care, "columns": con_columns["ER_PRS_F"]}


def test_rows_are_written_in_claim_key_order_each_month(populated: Hub) -> None:
    """Care rows and details are written month by month in claim-key order (so not in the warehouse's order),
    with keys distinct over the whole view."""
    hub = populated
    project = make_project(hub, BROAD)
    view = build(hub, project)
    crypto = ParquetCrypto(hub.custody, project_view_key(project.id))
    months: dict[str, list[list[int]]] = {}
    for table in ("ER_PRS_F", "ER_PHA_F"):
        path = hub.settings.data_dir / view.tables[table]["file"]
        file = pq.ParquetFile(path, decryption_properties=crypto.decryption_properties())
        groups = [
            file.read_row_group(i, columns=["CLE_DCI_JNT"]).column(0).to_pylist() for i in range(file.num_row_groups)
        ]
        months[table] = [g for g in groups if g]
        assert all(g == sorted(g) for g in months[table]), table
    care = [k for g in months["ER_PRS_F"] for k in g]
    assert len(months["ER_PRS_F"]) == 12 and len(set(care)) == len(care) == view.tables["ER_PRS_F"]["rows"]
    assert all(len(set(g)) == len(g) for g in months["ER_PRS_F"])
    # Each month's dispensations carry keys of that month's care rows.
    assert all(set(d) <= set(c) for d, c in zip(months["ER_PHA_F"], months["ER_PRS_F"], strict=True))


def test_files_published_while_a_view_is_built_are_in_none_of_its_months(
    populated: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build lists the warehouse's files once: files a batch publishes once it has started reading care
    (here, for December, a month it has not read yet) are left out whole, never read for some months and not for
    others. (The code before counted every month first and refused the build when a month had changed since.)"""
    hub = populated
    project = make_project(hub, BROAD)
    ((care,),) = warehouse(hub, "SELECT count(*) FROM ER_PRS_F WHERE year(EXE_SOI_DTD) = 2023")
    with hub.session() as session:
        rows = session.scalars(select(FileRow).where(FileRow.table_name == "ER_PRS_F")).all()
        january = {hub.warehouse.directory / r.path for r in rows if r.care_month == "2023-01"}
    dataset_of = hub.warehouse.dataset_of
    published: list[str] = []

    def then_a_batch(paths: list[Path]) -> Any:
        if not published and january & set(paths):  # the build's first read of care
            with hub.session() as other:
                for row in other.scalars(select(FileRow).where(FileRow.care_month == "2023-12")).all():
                    copy = Path(row.path).with_name(f"published-meanwhile-{Path(row.path).name}").as_posix()
                    shutil.copyfile(hub.warehouse.directory / row.path, hub.warehouse.directory / copy)
                    other.add(FileRow(batch_id=row.batch_id, table_name=row.table_name, care_month=row.care_month,
                                      path=copy, rows=row.rows, bytes=row.bytes, sha256=row.sha256))  # fmt: skip
                    published.append(copy)
                other.commit()
        return dataset_of(paths)

    monkeypatch.setattr(hub.warehouse, "dataset_of", then_a_batch)
    view = build(hub, project)
    assert published and view.tables["ER_PRS_F"]["rows"] == care
    # A build after the copies reads them (so the check above could fail).
    assert build(hub, project).tables["ER_PRS_F"]["rows"] > care


def duckdb_describe(hub: Hub, project: Project, table: str) -> list[tuple[Any, ...]]:
    return query(hub, project, f"DESCRIBE {table}")


def test_a_scope_with_an_undeclared_identifier_is_refused(populated: Hub) -> None:
    hub = populated
    project = make_project(hub, {**BROAD, "tables": {"IR_BEN_R": ["BEN_RES_COM"]}})
    with hub.session() as session, pytest.raises(ViewError, match="residence_commune"):
        build_view(hub, session, project, actor="account:1")


# -- population ------------------------------------------------------------------------------------------


def expected_population(hub: Hub, pop: dict[str, Any]) -> tuple[set[str], int]:
    """The people a population covers and their care rows in the period, computed row by row in Python."""
    start, end = date.fromisoformat(pop["period_start"]), date.fromisoformat(pop["period_end"])
    departements = set(pop.get("departements", []))
    for region in pop.get("regions", []):
        departements.update(departements_by_region()[region])
    people = set()
    for psa, sex, born, dpt in warehouse(
        hub, "SELECT BEN_NIR_PSA, BEN_SEX_COD, BEN_NAI_ANN, BEN_RES_DPT FROM IR_BEN_R"
    ):
        age = start.year - born
        if pop.get("age_min") is not None and age < pop["age_min"]:
            continue
        if pop.get("age_max") is not None and age > pop["age_max"]:
            continue
        if pop.get("sexes") and sex not in pop["sexes"]:
            continue
        if departements and dpt not in departements:
            continue
        people.add(psa)
    care = {}
    for row in warehouse(hub, f"SELECT {', '.join(DCIR)}, BEN_NIR_PSA, EXE_SOI_DTD, EXO_MTF FROM ER_PRS_F"):
        if row[-2] is not None and start <= row[-2] <= end:
            care[row[:9]] = row[9:]
    if pop.get("drugs_atc") or pop.get("ccam_acts") or pop.get("exemption_codes"):
        atc = {}
        with (Path(views.__file__).parent.parent / "reference" / "drugs.csv").open(encoding="utf-8") as f:
            for r in csv.DictReader(line for line in f if not line.startswith("#")):
                atc[int(r["PHA_PRS_C13"])] = r["PHA_ATC_C07"]
        coded = {psa for psa, _, exo in care.values() if exo in pop.get("exemption_codes", [])}
        for *keys, c13 in warehouse(hub, f"SELECT {', '.join(DCIR)}, PHA_PRS_C13 FROM ER_PHA_F"):
            if tuple(keys) in care and any(atc[c13].startswith(p) for p in pop.get("drugs_atc", [])):
                coded.add(care[tuple(keys)][0])
        for *keys, act in warehouse(hub, f"SELECT {', '.join(DCIR)}, CAM_PRS_IDE FROM ER_CAM_F"):
            if tuple(keys) in care and act in pop.get("ccam_acts", []):
                coded.add(care[tuple(keys)][0])
        people &= coded
    return people, sum(1 for psa, _, _ in care.values() if psa in people)


def test_population_criteria_match_a_direct_computation(populated: Hub) -> None:
    hub = populated
    ((dpt,),) = warehouse(hub, "SELECT mode(BEN_RES_DPT) FROM IR_BEN_R")
    region = next(r for r, ds in departements_by_region().items() if dpt in ds)
    ((act,),) = warehouse(hub, "SELECT mode(CAM_PRS_IDE) FROM ER_CAM_F")
    ((exo,),) = warehouse(hub, "SELECT mode(EXO_MTF) FROM ER_PRS_F WHERE EXO_MTF > 0")
    period = {"period_start": "2023-03-10", "period_end": "2023-08-20"}
    populations = [
        {**period, "age_min": 40, "age_max": 85, "sexes": [2]},
        {**period, "regions": [region], "departements": ["013"]},
        {**period, "drugs_atc": ["C10", "A10B"]},
        {**period, "age_min": 18, "ccam_acts": [act], "exemption_codes": [exo], "drugs_atc": ["N02"]},
    ]
    for pop in populations:
        project = make_project(
            hub, {"tables": {"IR_BEN_R": ["BEN_SEX_COD"], "ER_PRS_F": ["EXE_SOI_DTD"]}, "population": pop}
        )
        view = build(hub, project)
        people, care_rows = expected_population(hub, pop)
        assert 0 < len(people) < PEOPLE, pop
        assert view.people == len(people)
        assert view_people(hub, project) == rekeyed(hub, project, people)
        assert view.tables["ER_PRS_F"]["rows"] == care_rows
        months = query(hub, project, "SELECT min(EXE_SOI_DTD), max(EXE_SOI_DTD) FROM ER_PRS_F")
        assert months == [(date(2023, 3, 1), date(2023, 8, 1))]
        care_people = {r[0] for r in query(hub, project, "SELECT DISTINCT BEN_NIR_PSA FROM ER_PRS_F")}
        assert care_people <= view_people(hub, project)


# -- pseudonyms ------------------------------------------------------------------------------------------


def test_two_projects_never_share_pseudonyms_and_a_refresh_keeps_them(populated: Hub) -> None:
    hub = populated
    everyone = make_project(hub, BROAD)
    women = make_project(hub, {**BROAD, "population": {**YEAR, "sexes": [2]}})
    first = build(hub, everyone)
    build(hub, women)
    a, b = view_people(hub, everyone), view_people(hub, women)
    assert len(a) == PEOPLE and PEOPLE // 4 < len(b) < 3 * PEOPLE // 4
    assert a.isdisjoint(b)
    care_a = {r[0] for r in query(hub, everyone, "SELECT DISTINCT BEN_NIR_PSA FROM ER_PRS_F")}
    assert care_a <= a and care_a.isdisjoint(b)
    (hub_people,) = zip(*warehouse(hub, "SELECT BEN_NIR_PSA FROM IR_BEN_R"), strict=True)
    assert a.isdisjoint(hub_people) and b.isdisjoint(hub_people)

    second = build(hub, everyone)
    assert second.generation == 2
    assert view_people(hub, everyone) == a
    with hub.session() as session:
        rows = session.execute(
            select(ProjectView.generation, ProjectView.status).where(ProjectView.project_id == everyone.id)
        )
        statuses = {generation: status for generation, status in rows}
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "project.view.build")).all()
    assert statuses == {1: "superseded", 2: "ready"}
    assert not (hub.settings.data_dir / first.tables["ER_PRS_F"]["file"]).exists()
    assert (hub.settings.data_dir / second.tables["ER_PRS_F"]["file"]).exists()
    assert [e.project_id for e in events] == [everyone.id, women.id, everyone.id]
    assert events[-1].detail["superseded"] == [1] and events[-1].actor == "account:1"


# -- opt-out ---------------------------------------------------------------------------------------------


def objector(hub: Hub) -> tuple[bytes, str]:
    """A person who had care in 2023: their vault blind index and hub pseudonym."""
    ((psa,),) = warehouse(hub, "SELECT min(BEN_NIR_PSA) FROM ER_PRS_F WHERE year(EXE_SOI_DTD) = 2023")
    with hub.session() as session:
        vault = hub.vault(session)
        indexes = list(session.scalars(select(IdentityRow.person_index).distinct()))
        found = {index for index, p in vault.pseudonyms_of(indexes, 1).items() if p == psa}
    (index,) = found
    return index, psa


def test_an_opted_out_citizen_is_absent_from_every_view_built_afterwards(populated: Hub) -> None:
    hub = populated
    index, psa = objector(hub)
    earlier = make_project(hub, BROAD)
    build(hub, earlier)
    assert rekeyed(hub, earlier, {psa}) <= view_people(hub, earlier)
    assert projects_including(hub, hub.session(), psa) == [earlier.id]

    with hub.session() as session:
        session.add(OptOut(person_index=index, created_at=datetime.now(UTC)))
        session.commit()
    later = make_project(hub, BROAD)
    build(hub, later)
    build(hub, earlier)  # a refresh applies the objection too
    for project in (earlier, later):
        (pid,) = rekeyed(hub, project, {psa})
        assert pid not in view_people(hub, project)
        assert query(hub, project, f"SELECT count(*) FROM ER_PRS_F WHERE BEN_NIR_PSA = '{pid}'") == [(0,)]
        assert len(view_people(hub, project)) == PEOPLE - 1
    with hub.session() as session:
        # The first generation of the earlier project did include them: that stays on the record.
        assert projects_including(hub, session, psa) == [earlier.id]

    # A purpose the governance-reviewed setting exempts keeps them; others still leave them out.
    hub.settings.opt_out_exempt_purposes = ["surveillance"]
    exempt = make_project(hub, BROAD, purpose="surveillance")
    build(hub, exempt)
    assert rekeyed(hub, exempt, {psa}) <= view_people(hub, exempt)
    build(hub, later)
    assert rekeyed(hub, later, {psa}).isdisjoint(view_people(hub, later))

    # A withdrawn objection no longer applies.
    with hub.session() as session:
        for row in session.scalars(select(OptOut)):
            row.withdrawn_at = datetime.now(UTC)
        session.commit()
    build(hub, later)
    assert rekeyed(hub, later, {psa}) <= view_people(hub, later)
    with hub.session() as session:
        assert projects_including(hub, session, psa) == sorted([earlier.id, later.id, exempt.id])


# -- destruction -----------------------------------------------------------------------------------------


def test_destroying_removes_the_files_and_shreds_the_keys(populated: Hub, tmp_path: Path) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    view = build(hub, project)
    stolen = tmp_path / "stolen.parquet"  # a copy taken before destruction (a backup, a thief)
    shutil.copy(hub.settings.data_dir / view.tables["ER_PRS_F"]["file"], stolen)
    psa = warehouse(hub, "SELECT min(BEN_NIR_PSA) FROM IR_BEN_R")[0][0]

    with hub.session() as session:
        destroy_view(hub, session, project, actor="account:2")
        session.commit()
        rows = session.scalars(select(ProjectView).where(ProjectView.project_id == project.id)).all()
        assert [r.status for r in rows] == ["destroyed"]
        with pytest.raises(ViewError, match="no ready view"):
            open_view(hub, session, project)
        with pytest.raises(ViewError, match="destroyed"):
            build_view(hub, session, project, actor="account:1")
        assert projects_including(hub, session, psa) == [project.id]  # the record of who was included stays
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "project.view.destroy"))
        assert event.detail["keys_destroyed"] == [project_pseudonym_key(project.id), project_view_key(project.id)]
    assert not (hub.settings.data_dir / "projects" / str(project.id) / "views").exists()
    assert (hub.settings.data_dir / view.membership_file).exists()
    for name in (project_pseudonym_key(project.id), project_view_key(project.id)):
        assert hub.custody.info(name).current_version is None
    with pytest.raises(KeyDestroyed):
        hub.custody.mac(project_pseudonym_key(project.id), [b"x"])
    with pytest.raises(KeyDestroyed):
        pq.read_table(
            stolen,
            decryption_properties=ParquetCrypto(hub.custody, project_view_key(project.id)).decryption_properties(),
        )


def test_back_to_review_keeps_the_key_so_pseudonyms_survive(populated: Hub) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    build(hub, project)
    before = view_people(hub, project)
    with hub.session() as session:
        destroy_view(hub, session, project, actor="account:2", keep_key=True)
        session.commit()
    assert hub.custody.info(project_pseudonym_key(project.id)).current_version is not None
    assert not (hub.settings.data_dir / "projects" / str(project.id) / "views").exists()
    again = build(hub, project)
    assert again.generation == 2
    assert view_people(hub, project) == before


# -- at rest ---------------------------------------------------------------------------------------------


def test_no_identifier_in_clear_anywhere_after_views(populated: Hub, delivery: Path) -> None:
    hub = populated
    for scope in (
        BROAD,
        {**BROAD, "potential_identifiers": ["residence_commune"], "tables": {"IR_BEN_R": ["BEN_RES_COM"]}},
    ):
        build(hub, make_project(hub, scope))
    needles: list[bytes] = []
    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            needles += [row[c].encode() for c in ("BEN_NIR", "EMAIL", "TELEPHONE", "ADRESSE") if row[c]]
            needles += [row["BEN_NIR"][:13].encode(), f"{row['NOM']},{row['PRENOM']}".encode()]
    hub.engine.dispose()
    assert len(list((hub.settings.data_dir / "projects").rglob("*.parquet"))) == 6
    assert scan_data_dir(hub.settings.data_dir, needles) == []


def test_view_and_membership_files_cannot_be_read_without_custody(populated: Hub, tmp_path: Path) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    view = build(hub, project)
    files = [hub.settings.data_dir / m["file"] for m in view.tables.values()]
    files.append(hub.settings.data_dir / view.membership_file)
    other = Hub.init(make_settings(tmp_path / "other"))
    for f in files:
        assert f.read_bytes()[-4:] == b"PARE"  # encrypted footer
        with pytest.raises(OSError):
            pq.read_table(f)
        with pytest.raises(duckdb.Error):
            duckdb.sql(f"SELECT * FROM read_parquet('{f}')").fetchall()
        for key in (project_view_key(project.id), MEMBERSHIP_KEY):
            with pytest.raises(Exception):
                pq.read_table(f, decryption_properties=ParquetCrypto(other.custody, key).decryption_properties())
    other.close()
    # The files name their project's key, so destroying one project's key leaves the others readable.
    second = make_project(hub, BROAD)
    build(hub, second)
    with hub.session() as session:
        destroy_view(hub, session, project, actor="account:2")
        session.commit()
    assert query(hub, second, "SELECT count(*) FROM IR_BEN_R") == [(PEOPLE,)]


# -- crash safety and the reading connection ------------------------------------------------------------


def test_a_failed_build_publishes_nothing_and_orphans_are_swept(
    populated: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    base = hub.settings.data_dir / "projects" / str(project.id)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(views, "_write_care", crash)
        with hub.session() as session, pytest.raises(RuntimeError):
            build_view(hub, session, project, actor="account:1")
    assert not (base / "views" / "1").exists() and not (base / "membership" / "1.parquet").exists()

    # The caller rolls back after a successful build: the new generation's files go with it.
    with hub.session() as session:
        build_view(hub, session, project, actor="account:1")
        assert (base / "views" / "1" / "ER_PRS_F.parquet").exists()
        session.rollback()
    assert not (base / "views" / "1").exists()

    # What a kill -9 mid-build leaves (files, no catalog row) is never read; once older than the grace period (a
    # younger one may be a build awaiting its caller's commit) the next build sweeps it and reuses its number.
    (base / "views" / "1").mkdir(parents=True)
    (base / "views" / "1" / "ER_PRS_F.parquet").write_bytes(b"half a file")
    (base / "membership" / "1.parquet").write_bytes(b"half a file")
    with hub.session() as session, pytest.raises(ViewError, match="no ready view"):
        open_view(hub, session, project)
    young = build(hub, project)
    assert young.generation == 2 and (base / "views" / "1").exists()
    long_ago = time.time() - views.ORPHAN_GRACE_SECONDS - 60
    for path in (base / "views" / "1", base / "views" / "1" / "ER_PRS_F.parquet", base / "membership" / "1.parquet"):
        os.utime(path, (long_ago, long_ago))
    view = build(hub, project)
    assert view.generation == 3
    assert not (base / "views" / "1").exists() and not (base / "views" / "2").exists()
    assert query(hub, project, "SELECT count(*) > 0 FROM ER_PRS_F") == [(True,)]
    assert sorted(p.name for p in (base / "membership").iterdir()) == ["2.parquet", "3.parquet"]


def test_a_write_failing_on_the_writer_thread_fails_the_build_and_leaves_nothing(
    populated: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Encoding and encryption run on a background thread while the next month is read: a failure there (disk
    full on the second month's write) must still reach the caller, and nothing of the generation may stay."""
    hub = populated
    project = make_project(hub, BROAD)
    base = hub.settings.data_dir / "projects" / str(project.id)
    original = views._Output.write
    calls = []

    def fail_later(self: views._Output, data: Any) -> None:
        calls.append(self.path.name)
        if self.path.name == "ER_PRS_F.parquet" and calls.count("ER_PRS_F.parquet") == 2:
            raise OSError("disk full")
        original(self, data)

    with monkeypatch.context() as m:
        m.setattr(views._Output, "write", fail_later)
        with hub.session() as session, pytest.raises(OSError, match="disk full"):
            build_view(hub, session, project, actor="account:1")
        with hub.session() as session:
            assert session.scalars(select(ProjectView).where(ProjectView.project_id == project.id)).all() == []
    assert calls.count("ER_PRS_F.parquet") == 2  # the scope spans several months: the failure was mid-build
    assert not (base / "views" / "1").exists() and not (base / "membership" / "1.parquet").exists()


def test_open_view_reads_only_its_tables(populated: Hub) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    with hub.session() as session:
        assert view_summary(session, project) is None
    build(hub, project)
    with hub.session() as session:
        con = open_view(hub, session, project)
    tables = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
    assert tables == {"IR_BEN_R", "ER_PRS_F", "ER_PHA_F"}
    with pytest.raises(duckdb.Error):
        con.sql(f"SELECT * FROM read_parquet('{hub.warehouse.directory}/**/*.parquet')").fetchall()
    with pytest.raises(duckdb.Error):
        con.execute("SET enable_external_access = true")
    con.close()
