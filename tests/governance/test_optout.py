# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Opt-out reaches running projects at once (issue 12, item 6), on SQLite and PostgreSQL.

The attack: a citizen in an active project's view objects; until the view was rebuilt, their beneficiary row and
care rows stayed in it and every analysis still counted them. Now every query of the view leaves them out from
the moment the objection is recorded, and nothing the researcher can reach lists who was left out.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
from sqlalchemy import select

from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.compile import compile_aggregate
from hygie.analysis.engine import DuckDBEngine, Limits
from hygie.analysis.models import AnalysisJob
from hygie.analysis.service import Analyses
from hygie.analysis.spec import AggregateSpec
from hygie.analysis.sqlcheck import SQLRefused, check_sql
from hygie.audit.events import AuditEvent
from hygie.governance.accounts import Actor, Scope
from hygie.governance.citizens import Citizens
from hygie.governance.models import Project, ProjectMember
from hygie.governance.policy import Role
from hygie.governance.views import (
    OWNERS_FILE,
    ViewError,
    newest_ready,
    open_view,
    project_dir,
    project_view_key,
    view_summary,
)
from hygie.hub import Hub
from hygie.warehouse.encryption import ParquetCrypto
from tests.portal.world import PASSWORD, people

from .conftest import make_project
from .test_views import BROAD, YEAR, build, query, rekeyed, warehouse

DETAILS_ONLY: dict[str, Any] = {"tables": {"ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"]}, "population": YEAR}
KEYS = ("FLX_DIS_DTD", "FLX_TRT_DTD", "FLX_EMT_TYP", "FLX_EMT_NUM", "FLX_EMT_ORD", "ORG_CLE_NUM", "DCT_ORD_NUM",
        "PRS_ORD_NUM", "REM_TYP_AFF")  # fmt: skip
COUNTS = """SELECT (SELECT count(*) FROM IR_BEN_R) AS beneficiaries, (SELECT count(*) FROM ER_PRS_F) AS care,
                   (SELECT count(*) FROM ER_PHA_F) AS drugs"""


def citizen_with_drugs(hub: Hub, delivery: Path, username: str, rank: int = 0) -> tuple[Actor, str]:
    """A delivered person with drug lines in 2023 (the ``rank``-th most), enrolled: their actor and hub pseudonym."""
    on = " AND ".join(f"d.{k} = t.{k}" for k in KEYS)
    ranked = warehouse(
        hub,
        f"""SELECT t.BEN_NIR_PSA FROM ER_PHA_F d JOIN ER_PRS_F t ON {on}
                                WHERE year(t.EXE_SOI_DTD) = 2023 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 5""",
    )
    psa = ranked[rank][0]
    delivered = people(delivery)
    (person,) = [p for p, q in zip(delivered, hub.pseudonymiser.at(1).pseudonyms(p["BEN_NIR"] for p in delivered),
                                   strict=True) if q == psa]  # fmt: skip
    with hub.session() as session:
        created = Citizens(hub, session).enrol(
            nir=person["BEN_NIR"], last_name=person["NOM"], birth_date=person["DATE_NAISSANCE"],
            username=username, password=PASSWORD,
        )  # fmt: skip
        session.commit()
        account_id = created.account.id
    return Actor(account_id=account_id, role=Role.CITIZEN, scopes=frozenset({Scope.CITIZEN}), via="session"), psa


def object_(hub: Hub, actor: Actor, *, withdraw: bool = False) -> None:
    with hub.session() as session:
        citizens = Citizens(hub, session)
        citizens.withdraw(actor) if withdraw else citizens.object(actor)
        session.commit()


def researcher_of(hub: Hub, project: Project) -> Actor:
    """The project's requester, made a member with the data scope, the project in its term."""
    with hub.session() as session:
        row = session.get(Project, project.id)
        assert row is not None
        row.expires_at = datetime.now(UTC) + timedelta(days=30)
        session.add(ProjectMember(project_id=project.id, account_id=row.requester_id, added_at=datetime.now(UTC),
                                  added_by=row.requester_id))  # fmt: skip
        session.commit()
        return Actor(account_id=row.requester_id, role=Role.RESEARCHER, scopes=frozenset({Scope.DATA}), via="token")


def sql_job(hub: Hub, actor: Actor, project: Project, sql: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A SQL job run by the analysis service as for the API: its (sealed) output row and its cost."""
    with hub.session() as session:
        analyses = Analyses(hub, session)
        job = analyses.submit_sql(actor, project.id, sql)
        job = session.get(AnalysisJob, job.id)
        assert job is not None and job.status == "succeeded", job.error if job else None
        _, release = analyses.job(actor, project.id, job.id)
        assert release is not None
        (row,) = analyses.rows_of(release)
        return row, dict(job.cost or {})


def aggregate(hub: Hub, project: Project, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """An aggregate compiled and run as the service does, before disclosure control (true counts)."""
    with hub.session() as session:
        view = newest_ready(session, project.id)
        assert view is not None
        keys = project_record_keys(hub, session, project)
    columns = {t: list(m["columns"]) for t, m in view.tables.items()}
    plan = compile_aggregate(AggregateSpec.model_validate(spec), columns, reference_year=2023, record_keys=keys)
    return DuckDBEngine(hub).run(project, plan.query, Limits.from_settings(hub.settings)).table.to_pylist()


def test_an_objection_leaves_every_query_of_running_views_at_once(populated: Hub, delivery: Path) -> None:
    hub = populated
    citizen, psa = citizen_with_drugs(hub, delivery, "objector")
    project, details = make_project(hub, BROAD), make_project(hub, DETAILS_ONLY)
    build(hub, project)
    build(hub, details)
    researcher = researcher_of(hub, project)
    (pid,) = rekeyed(hub, project, {psa})
    ((sex, born, dpt),) = query(hub, project, f"SELECT BEN_SEX_COD, BEN_NAI_ANN, BEN_RES_DPT FROM IR_BEN_R "
                                               f"WHERE BEN_NIR_PSA = '{pid}'")  # fmt: skip
    ((mine_care, mine_drugs),) = query(
        hub,
        project,
        f"""
        SELECT (SELECT count(*) FROM ER_PRS_F WHERE BEN_NIR_PSA = '{pid}'),
               (SELECT count(*) FROM ER_PHA_F d JOIN ER_PRS_F f USING (CLE_DCI_JNT) WHERE f.BEN_NIR_PSA = '{pid}')""",
    )
    assert mine_care > 0 and mine_drugs > 0
    (before,) = query(hub, project, COUNTS)
    ((drugs_only_before,),) = query(hub, details, "SELECT count(*) FROM ER_PHA_F")
    # A generation whose detail rows could not be tied to people is refused before anyone objects too: a refusal
    # that began with the first objection would tell the researcher that someone objected, and when.
    owners = project_dir(hub, details.id) / "views" / "1" / OWNERS_FILE
    owners.rename(owners.with_suffix(".aside"))
    with pytest.raises(ViewError, match="cannot tie its detail rows"):
        query(hub, details, "SELECT count(*) FROM ER_PHA_F")
    owners.with_suffix(".aside").rename(owners)
    narrow = {"filters": [{"dimension": "sex", "in": [sex]}, {"dimension": "departement", "in": [dpt]},
                          {"dimension": "age", "between": [2023 - born, 2023 - born]}],
              "measures": ["people", "events"]}  # fmt: skip
    (cell_before,) = aggregate(hub, project, narrow)
    (total_before,) = aggregate(hub, project, {"measures": ["people"]})
    sql = "SELECT count(*) AS care_lines, count(DISTINCT BEN_NIR_PSA) AS people FROM ER_PRS_F"
    job_before, cost_before = sql_job(hub, researcher, project, sql)
    with hub.session() as session:
        summary_before = view_summary(session, project)

    object_(hub, citizen)

    # At once, with no rebuild: the view, the narrowed aggregate, the totals and the SQL job all leave them out.
    assert query(hub, project, COUNTS) == [(before[0] - 1, before[1] - mine_care, before[2] - mine_drugs)]
    assert query(hub, details, "SELECT count(*) FROM ER_PHA_F") == [(drugs_only_before - mine_drugs,)]
    for table in ("IR_BEN_R", "ER_PRS_F"):
        assert query(hub, project, f"SELECT count(*) FROM {table} WHERE BEN_NIR_PSA = '{pid}'") == [(0,)]
    (cell,) = aggregate(hub, project, narrow)
    assert (cell["people"], cell["events"] or 0) == (cell_before["people"] - 1, cell_before["events"] - mine_care)
    assert aggregate(hub, project, {"measures": ["people"]})[0]["people"] == total_before["people"] - 1
    job_after, cost_after = sql_job(hub, researcher, project, sql)
    assert job_after == {"care_lines": job_before["care_lines"] - mine_care, "people": job_before["people"] - 1}
    with hub.session() as session:
        assert pid not in project_record_keys(hub, session, project).column("BEN_NIR_PSA").to_pylist()

    # Nothing the researcher sees counts or names who was left out: the summary and the job's cost are the build's.
    with hub.session() as session:
        assert view_summary(session, project) == summary_before
        assert cost_after["rows_scanned"] == cost_before["rows_scanned"]
        details_of = [e.detail for e in session.scalars(select(AuditEvent).where(AuditEvent.project_id == project.id))]
    assert pid not in repr(details_of) and psa not in repr(details_of)

    # No table name, view text, file path or Python name of the sandbox reaches the excluded rows.
    crypto = ParquetCrypto(hub.custody, master_key=project_view_key(project.id))
    with hub.session() as session:
        files = [hub.settings.data_dir / m["file"] for m in view_summary_files(session, project)]
        con = open_view(hub, session, project)
    try:
        unfiltered = ds.dataset(str(files[0]), format=crypto.file_format())  # noqa: F841  (named to be reached)
        catalog = (
            "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
        )
        names = [r[0] for r in con.sql(catalog).fetchall()]
        assert sorted(names) == ["ER_PHA_F", "ER_PRS_F", "IR_BEN_R"]
        for name in ("IR_BEN_R", "ER_PRS_F"):
            assert con.sql(f"SELECT count(*) FROM {name} WHERE BEN_NIR_PSA = '{pid}'").fetchall() == [(0,)]
        texts = con.sql("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall()
        assert pid not in repr(texts)
        for attempt in (
            "SELECT count(*) FROM unfiltered",
            *(f"SELECT count(*) FROM read_parquet('{f}')" for f in files),
        ):
            with pytest.raises(duckdb.Error):
                con.sql(attempt).fetchall()
    finally:
        con.close()
    columns = {"IR_BEN_R": ["BEN_NIR_PSA"], "ER_PRS_F": ["BEN_NIR_PSA"], "ER_PHA_F": ["CLE_DCI_JNT"]}
    owners = project_dir(hub, details.id) / "views" / "1" / OWNERS_FILE
    assert owners.exists()
    for refused in (f"SELECT * FROM read_parquet('{files[0]}')", "SELECT * FROM _hygie_rkeys",
                    "SELECT * FROM _owners", f"SELECT * FROM '{owners}'"):  # fmt: skip
        with pytest.raises(SQLRefused):
            check_sql(refused, columns)


def view_summary_files(session: Any, project: Project) -> list[dict[str, Any]]:
    view = newest_ready(session, project.id)
    assert view is not None
    return [view.tables[t] for t in ("IR_BEN_R", "ER_PRS_F", "ER_PHA_F") if t in view.tables]


def test_withdrawal_rebuilds_and_exempt_purposes(populated: Hub, delivery: Path) -> None:
    hub = populated
    citizen, psa = citizen_with_drugs(hub, delivery, "objector")
    project = make_project(hub, BROAD)
    hub.settings.opt_out_exempt_purposes = ["surveillance"]
    exempt = make_project(hub, BROAD, purpose="surveillance")
    build(hub, project)
    build(hub, exempt)
    (pid,) = rekeyed(hub, project, {psa})
    (exempt_pid,) = rekeyed(hub, exempt, {psa})
    (before,) = query(hub, project, COUNTS)
    mine = f"SELECT count(*) FROM ER_PRS_F WHERE BEN_NIR_PSA = '{pid}'"
    ((mine_care,),) = query(hub, project, mine)

    object_(hub, citizen)
    assert query(hub, project, mine) == [(0,)]
    exempt_mine = f"SELECT count(*) FROM ER_PRS_F WHERE BEN_NIR_PSA = '{exempt_pid}'"
    assert query(hub, exempt, exempt_mine) == [(mine_care,)]  # the governance-reviewed exemption holds

    # Withdrawn: their rows are still in this generation's files, so they count again at once.
    object_(hub, citizen, withdraw=True)
    assert query(hub, project, COUNTS) == [before]

    # Objecting again, then a rebuild: the new generation leaves them out itself (and stays so after a withdrawal
    # until the next build, which includes them again).
    object_(hub, citizen)
    build(hub, project)
    assert query(hub, project, mine) == [(0,)]
    assert query(hub, project, "SELECT count(*) FROM IR_BEN_R") == [(before[0] - 1,)]
    object_(hub, citizen, withdraw=True)
    assert query(hub, project, mine) == [(0,)]
    build(hub, project)
    assert query(hub, project, COUNTS) == [before]
