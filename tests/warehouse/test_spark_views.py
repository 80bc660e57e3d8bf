# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The same project view built by DuckDB and by Spark: same people, same rows, same values after decryption.

Claim keys are a fresh random permutation per build, so rows are compared with each detail row tied to its care
row's content. Also: a custody refusing to unwrap makes the Spark build fail clearly, publishing nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.dataset as ds
import pytest
from sqlalchemy import select

from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import CLAIM_KEY
from hygie.governance.views import ViewError, build_view, project_view_key
from hygie.hub import Hub
from hygie.warehouse.encryption import ParquetCrypto
from tests.governance.conftest import make_project
from tests.warehouse.test_spark_parquet import RefusingCustody

pytestmark = pytest.mark.spark

SCOPE: dict[str, Any] = {
    "tables": {
        "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_DCD_DTE"],
        "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "EXO_MTF"],
        "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
    },
    "population": {"period_start": "2023-02-01", "period_end": "2023-10-31", "age_min": 18},
}
DETAIL_ONLY: dict[str, Any] = {
    "tables": {"ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"]},
    "population": {"period_start": "2023-01-01", "period_end": "2023-06-30", "drugs_atc": ["N02"]},
}


@contextmanager
def engine(hub: Hub, name: str) -> Iterator[None]:
    saved = hub.settings
    hub.settings = saved.model_copy(update={"engine": name})
    try:
        yield
    finally:
        hub.settings = saved


def build(hub: Hub, project: Project) -> ProjectView:
    with hub.session() as session:
        view = build_view(hub, session, project, actor="account:1")
        session.commit()
        session.refresh(view)
        session.expunge(view)
        return view


def contents(hub: Hub, project: Project, view: ProjectView) -> dict[str, Counter[tuple[Any, ...]]]:
    """Each table's rows as a multiset, claim keys replaced by the content of the care row (or owner) they name."""
    crypto = ParquetCrypto(hub.custody, master_key=project_view_key(project.id))
    tables = {
        t: ds.dataset(str(hub.settings.data_dir / m["file"]), format=crypto.file_format()).to_table().to_pylist()
        for t, m in view.tables.items()
    }
    owners_file = (
        hub.settings.data_dir / "projects" / str(project.id) / "views" / str(view.generation) / "_owners.parquet"
    )
    if owners_file.exists():
        tables["_owners"] = ds.dataset(str(owners_file), format=crypto.file_format()).to_table().to_pylist()
    anchor = tables.get("ER_PRS_F") or tables.get("_owners") or []
    care = {r[CLAIM_KEY]: tuple(sorted((k, v) for k, v in r.items() if k != CLAIM_KEY)) for r in anchor}
    out = {}
    for table, rows in tables.items():
        out[table] = Counter(tuple(sorted((k, care[v] if k == CLAIM_KEY else v) for k, v in r.items())) for r in rows)
    return out


@pytest.mark.parametrize("scope", [SCOPE, DETAIL_ONLY], ids=["care-and-details", "details-only-coded"])
def test_duckdb_and_spark_build_the_same_view(spark, spark_hub: Hub, scope: dict[str, Any]) -> None:
    project = make_project(spark_hub, scope)
    first = build(spark_hub, project)
    expected = contents(spark_hub, project, first)
    with engine(spark_hub, "spark"):
        second = build(spark_hub, project)
    assert second.generation == first.generation + 1
    assert second.people == first.people > 0
    assert {t: m["rows"] for t, m in second.tables.items()} == {t: m["rows"] for t, m in first.tables.items()}
    assert {t: m["columns"] for t, m in second.tables.items()} == {t: m["columns"] for t, m in first.tables.items()}
    got = contents(spark_hub, project, second)
    assert got.keys() == expected.keys()
    for table in expected:
        assert got[table] == expected[table], table
    rows = [m["rows"] for m in second.tables.values()]
    assert all(r > 0 for r in rows)


def test_a_refused_unwrap_fails_the_spark_build_and_publishes_nothing(spark, spark_hub: Hub) -> None:
    project = make_project(spark_hub, SCOPE)
    saved = spark_hub.custody
    with engine(spark_hub, "spark"):
        spark_hub.custody = RefusingCustody(saved)  # type: ignore[assignment]
        try:
            with pytest.raises(ViewError, match=r"cannot be built on Spark.*refused.*nothing was released"):
                build(spark_hub, project)
        finally:
            spark_hub.custody = saved
    with spark_hub.session() as session:
        assert session.scalars(select(ProjectView).where(ProjectView.project_id == project.id)).all() == []
    views_dir = spark_hub.settings.data_dir / "projects" / str(project.id) / "views"
    assert not views_dir.exists() or not any(p.is_file() for p in views_dir.rglob("*"))


def test_spark_frames_of_a_view_leave_out_objections_made_since_the_build(spark, spark_hub: Hub) -> None:
    """open_view_spark gives the same rows as open_view, both without a person who objected after the build."""
    from datetime import UTC, datetime

    from hygie.governance.models import OptOut
    from hygie.governance.spark_views import open_view_spark
    from hygie.governance.views import open_view, rekey
    from hygie.identity.vault import IdentityRow
    from hygie.keys import WAREHOUSE_KEY
    from hygie.warehouse.spark import custody_grant

    project = make_project(spark_hub, SCOPE)
    build(spark_hub, project)
    with spark_hub.session() as session:
        con = spark_hub.warehouse.connect(session, ["ER_PRS_F", "IR_BEN_R"])
        ((psa,),) = con.sql(  # an adult with care in the scope's period: in the view
            "SELECT min(p.BEN_NIR_PSA) FROM ER_PRS_F p JOIN IR_BEN_R b USING (BEN_NIR_PSA) "
            "WHERE p.EXE_SOI_DTD BETWEEN DATE '2023-03-01' AND DATE '2023-09-30' AND 2023 - b.BEN_NAI_ANN >= 18"
        ).fetchall()
        con.close()
        vault = spark_hub.vault(session)
        indexes = list(session.scalars(select(IdentityRow.person_index).distinct()))
        (index,) = [i for i, p in vault.pseudonyms_of(indexes, 1).items() if p == psa]
        objection = OptOut(person_index=index, created_at=datetime.now(UTC))
        session.add(objection)
        session.commit()
        try:
            (pid,) = rekey(spark_hub, project.id, [psa])
            con = open_view(spark_hub, session, project)
            duck = {t: con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in SCOPE["tables"]}
            con.close()
            with custody_grant(spark_hub, [project_view_key(project.id)], actor="test") as grant:
                frames = open_view_spark(spark_hub, session, project, spark, grant)
                counts = {t: df.count() for t, df in frames.items()}
                mine = frames["ER_PRS_F"].where(f"BEN_NIR_PSA = '{pid}'").count()
            with (
                custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as other,
                pytest.raises(ViewError, match="does not name the view key"),
            ):
                open_view_spark(spark_hub, session, project, spark, other)
        finally:
            objection.withdrawn_at = datetime.now(UTC)
            session.commit()
    built = {t: m["rows"] for t, m in newest(spark_hub, project).tables.items()}
    assert counts == duck and mine == 0
    assert counts["IR_BEN_R"] == built["IR_BEN_R"] - 1 and counts["ER_PRS_F"] < built["ER_PRS_F"]
    assert counts["ER_PHA_F"] <= built["ER_PHA_F"]


def newest(hub: Hub, project: Project) -> ProjectView:
    from hygie.governance.views import newest_ready

    with hub.session() as session:
        view = newest_ready(session, project.id)
        assert view is not None
        session.expunge(view)
        return view
