# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Dummy data: the real view's schema exactly, nothing from the real warehouse, any status, members only."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from hygie.analysis.dummy import dummy_root, export_dummy, open_dummy
from hygie.audit import AuditEvent
from hygie.governance.models import Project
from hygie.governance.views import open_view
from tests.analysis.conftest import _world
from tests.analysis.test_api import finished, ran
from tests.portal.world import World, people, project_request


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dummy_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The portal's test hub (300 people ingested), one per module and database; its dummy hub is made once."""
    for world in _world(request, tmp_path_factory.mktemp("dummy-world")):
        world.hub.settings.dummy_people = 1_000  # a few thousand in production; fewer keeps the tests fast
        yield world


ONCE = pytest.mark.parametrize("dummy_world", ["sqlite"], indirect=True)
"""Dummy data is made from the view's schema, above the database: these tests run once, on SQLite (the suite's time);
those that keep drafts and run jobs on both databases."""

YEAR = {"period_start": "2024-01-01", "period_end": "2024-12-31"}
SCOPES: dict[str, dict[str, Any]] = {
    "care by month": {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
            "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"],
        },
        "population": YEAR,
    },
    "statin users over 50 with dispensations": {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_DCD_DTE"],
            "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT", "PSE_SPE_COD"],
            "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
        },
        "population": {**YEAR, "age_min": 50, "drugs_atc": ["C10"]},
    },
    "exact care dates in Île-de-France, acts and lab tests": {
        "tables": {
            "ER_PRS_F": ["EXE_SOI_DTD", "EXE_SOI_DTF", "PRS_NAT_REF", "PRS_ACT_QTE"],
            "ER_CAM_F": ["CAM_PRS_IDE"],
            "ER_BIO_F": ["BIO_PRS_IDE"],
        },
        "population": {**YEAR, "regions": [11]},
        "potential_identifiers": ["care_dates"],
    },
}


def download(world: World, pid: int, who: str = "researcher1") -> zipfile.ZipFile:
    r = world.call(who, "GET", f"/projects/{pid}/dummy-data")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(r.content))


def dummy_tables(archive: zipfile.ZipFile) -> dict[str, pa.Table]:
    names = [n for n in archive.namelist() if n.startswith("parquet/")]
    return {n[len("parquet/") : -len(".parquet")]: pq.read_table(io.BytesIO(archive.read(n))) for n in names}


def real_tables(world: World, pid: int) -> dict[str, pa.Table]:
    with world.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        con = open_view(world.hub, session, project)
        try:
            tables = [row[0] for row in con.sql("SHOW TABLES").fetchall()]
            return {t: con.sql(f'SELECT * FROM "{t}"').to_arrow_table() for t in tables}
        finally:
            con.close()


@ONCE
@pytest.mark.parametrize("scope", list(SCOPES), ids=list(SCOPES))
def test_schema_is_the_real_views(dummy_world: World, scope: str) -> None:
    pid = dummy_world.active_project(scope=SCOPES[scope])
    archive = download(dummy_world, pid)
    dummy = dummy_tables(archive)
    real = real_tables(dummy_world, pid)
    assert set(dummy) == set(real) == set(SCOPES[scope]["tables"])
    for table, data in dummy.items():
        # Same names, order and types as the real view (which may be small: its schema is what counts).
        assert data.schema.names == real[table].schema.names, table
        assert [f.type for f in data.schema] == [f.type for f in real[table].schema], table
        csv = pacsv.read_csv(io.BytesIO(archive.read(f"csv/{table}.csv")))
        assert csv.schema.names == data.schema.names
        assert csv.num_rows == data.num_rows
    assert dummy["ER_PRS_F"].num_rows > 100, "plausible volumes: a few thousand people have care"
    dates = dummy["ER_PRS_F"].column("EXE_SOI_DTD").to_pylist()
    if "care_dates" in SCOPES[scope].get("potential_identifiers", []):
        assert any(d.day != 1 for d in dates), "exact care dates were approved"
    else:
        assert all(d.day == 1 for d in dates), "care dates are generalised to the month, as in the real view"
    readme = archive.read("README.txt").decode("utf-8")
    assert "SYNTHÉTIQUES" in readme and "SYNTHETIC" in readme


@ONCE
def test_nothing_comes_from_the_real_warehouse(dummy_world: World) -> None:
    w = dummy_world
    pid = w.active_project(scope=SCOPES["care by month"])
    archive = download(w, pid)
    dummy = dummy_tables(archive)
    real = real_tables(w, pid)
    dummy_pids = set(dummy["IR_BEN_R"].column("BEN_NIR_PSA").to_pylist())
    assert dummy_pids and not dummy_pids & set(real["IR_BEN_R"].column("BEN_NIR_PSA").to_pylist())
    with w.hub.session() as session:
        beneficiaries = w.hub.warehouse.dataset(session, "IR_BEN_R")
        assert beneficiaries is not None
        hub_pseudonyms = set(beneficiaries.to_table().column("BEN_NIR_PSA").to_pylist())
    assert not dummy_pids & hub_pseudonyms
    # No care row of the dummy view equals one of the real view on every column.
    real_rows = set(zip(*(real["ER_PRS_F"].column(c).to_pylist() for c in real["ER_PRS_F"].schema.names)))
    dummy_rows = set(zip(*(dummy["ER_PRS_F"].column(c).to_pylist() for c in dummy["ER_PRS_F"].schema.names)))
    assert dummy_rows and not dummy_rows & real_rows
    # No identity of the real vault anywhere in the archive, in any file.
    content = b"".join(archive.read(n) for n in archive.namelist())
    for person in people(w.delivery):
        for field in ("BEN_NIR", "TELEPHONE", "EMAIL", "ADRESSE"):
            assert person[field].encode() not in content, field
        assert person["BEN_NIR"][:13].encode() not in content


@ONCE
def test_made_without_reading_the_real_warehouse(dummy_world: World) -> None:
    """Dummy data needs the project's scope only: it is made with the real warehouse out of reach."""
    w = dummy_world
    pid = w.active_project(scope=SCOPES["care by month"])
    warehouse = w.hub.warehouse.directory
    hidden = warehouse.with_name("warehouse-hidden")
    # Another population size: a dummy hub of its own is made now, while the real warehouse is out of reach.
    settings = w.hub.settings.model_copy(update={"dummy_people": 200})
    made_before = set(dummy_root(settings).glob("hub-*"))
    warehouse.rename(hidden)
    try:
        with w.hub.session() as session:
            project = session.get(Project, pid)
            assert project is not None
            export = export_dummy(settings, project)
    finally:
        hidden.rename(warehouse)
    assert len(set(dummy_root(settings).glob("hub-*")) - made_before) == 1
    assert export.rows["ER_PRS_F"] > 100
    assert set(dummy_tables(zipfile.ZipFile(io.BytesIO(export.content)))) == {"IR_BEN_R", "ER_PRS_F"}


@ONCE
def test_the_same_sql_runs_on_dummy_and_real(dummy_world: World) -> None:
    w = dummy_world
    pid = w.active_project(scope=SCOPES["care by month"])
    sql = """
        SELECT b.BEN_SEX_COD, p.EXE_SOI_DTD AS month, count(DISTINCT p.BEN_NIR_PSA) AS people,
               sum(p.PRS_PAI_MNT) AS paid
        FROM ER_PRS_F p JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY ALL ORDER BY ALL
    """
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        with open_dummy(w.hub.settings, project) as con:
            dummy = con.sql(sql).to_arrow_table()
            with pytest.raises(Exception, match=r"disabled|external"):
                con.sql("SELECT * FROM read_csv('/etc/passwd')").fetchall()  # the same sandbox as the real view
        real_con = open_view(w.hub, session, project)
        try:
            real = real_con.sql(sql).to_arrow_table()
        finally:
            real_con.close()
    assert dummy.schema == real.schema
    assert dummy.num_rows == 24  # two sexes by twelve months


def test_available_for_a_draft_reproducible_and_following_scope_changes(dummy_world: World) -> None:
    w = dummy_world
    pid = int(w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"])
    first = w.call("researcher1", "GET", f"/projects/{pid}/dummy-data")
    assert first.status_code == 200, first.text
    assert w.call("researcher1", "GET", f"/projects/{pid}/dummy-data").content == first.content
    assert w.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    assert w.call("researcher1", "GET", f"/projects/{pid}/dummy-data").content == first.content
    # Back to draft-like change: the requester changes the scope; the dummy data follows it.
    narrower = {**SCOPES["care by month"], "tables": {"IR_BEN_R": ["BEN_SEX_COD"]}}
    r = w.call("researcher1", "PATCH", f"/projects/{pid}", json={"scope": narrower})
    assert r.status_code == 200, r.text
    changed = dummy_tables(download(w, pid))
    assert set(changed) == {"IR_BEN_R"} and changed["IR_BEN_R"].schema.names == ["BEN_NIR_PSA", "BEN_SEX_COD"]
    with w.hub.session() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "project.dummy_data", AuditEvent.project_id == pid)
        ).all()
    assert len(events) == 4 and all(e.outcome == "ok" and e.detail["synthetic"] for e in events)
    assert events[0].actor == f"account:{w.ids['researcher1']}"


@ONCE
def test_members_only(dummy_world: World) -> None:
    w = dummy_world
    pid = int(w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"])
    hidden = w.call("researcher2", "GET", f"/projects/{pid}/dummy-data")  # a foreign project is a missing one
    assert (hidden.status_code, hidden.json()) == (404, {"detail": f"no project {pid}"})
    for who in ("reviewer1", "dpo", "operator", "auditor", "citizen1"):
        assert w.call(who, "GET", f"/projects/{pid}/dummy-data").status_code == 403, who
    assert w.call(None, "GET", f"/projects/{pid}/dummy-data").status_code == 401
    assert w.call("researcher1", "GET", "/projects/999999/dummy-data").status_code == 404
    r = w.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": w.ids["researcher2"]})
    assert r.status_code == 200, r.text
    assert w.call("researcher2", "GET", f"/projects/{pid}/dummy-data").status_code == 200
    with w.hub.session() as session:
        denied = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "project.dummy_data", AuditEvent.project_id == pid, AuditEvent.outcome == "denied"
            )
        ).all()
    assert len(denied) == 6


def test_code_tried_on_dummy_data_runs_unchanged_on_the_real_view(dummy_world: World) -> None:
    w = dummy_world
    spec = {"group_by": ["sex", "care_month"], "measures": ["people", "events", "sum:PRS_PAI_MNT"]}
    sql = "SELECT PRS_NAT_REF, count(*) AS n FROM ER_PRS_F GROUP BY ALL"
    pid = int(w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"])
    tried = w.call("researcher1", "POST", f"/projects/{pid}/dummy-data/aggregate", json=spec)
    assert tried.status_code == 200, tried.text
    out = tried.json()
    assert out["synthetic"] and out["kind"] == "aggregate" and out["verdict"] in ("release", "review", "refuse")
    # The full grid of listed codes: (2 sexes + "other") x (12 months + "other").
    assert out["total_rows"] == 39 and out["columns"][:2] == ["sex", "care_month"]
    tried_sql = w.call("researcher1", "POST", f"/projects/{pid}/dummy-data/sql", json={"sql": sql})
    assert tried_sql.status_code == 200 and tried_sql.json()["columns"] == ["PRS_NAT_REF", "n"], tried_sql.text
    # Refused on dummy data exactly as it would be on the real view, before it runs.
    refused = w.call("researcher1", "POST", f"/projects/{pid}/dummy-data/sql",
                     json={"sql": "SELECT * FROM read_csv('/etc/passwd')"})  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert w.call("researcher2", "POST", f"/projects/{pid}/dummy-data/sql", json={"sql": sql}).status_code == 404
    # Once active, the same spec and SQL run unchanged on the real view.
    active = w.active_project()
    real = w.call("researcher1", "POST", f"/projects/{active}/analyses/aggregate", json=spec)
    assert real.status_code == 200, real.text
    assert finished(w, active, real.json())["status"] in ("released", "withheld")
    assert ran(w, real.json()["id"]) == "succeeded"
    real_sql = w.call("researcher1", "POST", f"/projects/{active}/analyses/sql", json={"sql": sql})
    assert real_sql.status_code == 200, real_sql.text
    assert finished(w, active, real_sql.json())["status"] == "withheld"  # SQL outputs wait for checkers
    assert ran(w, real_sql.json()["id"]) == "succeeded"


@ONCE
def test_dummy_data_applies_the_projects_own_threshold_to_quantiles(dummy_world: World) -> None:
    """A project stricter than the platform sees on dummy data what its real view would give: quantile bounds are
    computed at its own threshold (computed at the platform's, every quantile of such a project was withheld)."""
    w = dummy_world
    pid = int(w.call("researcher1", "POST", "/projects", json=project_request(threshold=15)).json()["id"])
    spec = {"group_by": ["sex"], "measures": ["people", "quantile:PRS_PAI_MNT:0.5"]}
    tried = w.call("researcher1", "POST", f"/projects/{pid}/dummy-data/aggregate", json=spec)
    assert tried.status_code == 200, tried.text
    medians = {row["sex"]: row["p50_PRS_PAI_MNT"] for row in tried.json()["rows"]}
    assert medians["1"] is not None and medians["2"] is not None, tried.json()
