# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Care-line amounts under a drug-class dimension: each care line counts once per cell, checked against a direct
computation (not through the compiler): on a plaintext DuckDB with care lines of several drug lines each, and on a
project's real view."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hygie.analysis.cellkeys import RKEY_TABLE
from hygie.analysis.compile import DRUGS_TABLE, SpecError, compile_aggregate, output_table
from hygie.analysis.spec import Aggregate, AggregateSpec
from hygie.governance.models import Project
from hygie.governance.views import _drug_atc, open_view
from tests.analysis.test_api import true_table
from tests.portal.world import SCOPE, World

DETAIL_SCOPE: dict[str, Any] = {
    **SCOPE,
    "tables": {**SCOPE["tables"], "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN", "PHA_ACT_PRU"]},
}
DIRECT = """
WITH lines AS (  -- a care line once per drug class, whatever its number of drug lines in that class
    SELECT DISTINCT coalesce(substr(d.PHA_ATC_C07, 1, 3), 'unknown') AS atc, f.CLE_DCI_JNT, f.BEN_NIR_PSA,
           f.PRS_PAI_MNT
    FROM ER_PRS_F f JOIN ER_PHA_F ph ON ph.CLE_DCI_JNT = f.CLE_DCI_JNT LEFT JOIN drugs d USING (PHA_PRS_C13)
)
SELECT atc, count(DISTINCT BEN_NIR_PSA), count(*), sum(PRS_PAI_MNT), avg(PRS_PAI_MNT),
       quantile_cont(PRS_PAI_MNT, 0.5)
FROM lines GROUP BY atc
"""
DIRECT_DETAIL = """
SELECT coalesce(substr(d.PHA_ATC_C07, 1, 3), 'unknown'), sum(ph.PHA_ACT_PRU), count(*)
FROM ER_PRS_F f JOIN ER_PHA_F ph ON ph.CLE_DCI_JNT = f.CLE_DCI_JNT LEFT JOIN drugs d USING (PHA_PRS_C13) GROUP BY 1
"""


def direct(w: World, pid: int, sql: str) -> list[tuple[Any, ...]]:
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        con = open_view(w.hub, session, project)
    try:
        con.register("drugs", _drug_atc())
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def detail_project(shared_world: World) -> int:
    return shared_world.active_project(scope=DETAIL_SCOPE)


def test_care_amounts_by_drug_class_count_each_care_line_once(shared_world: World, detail_project: int) -> None:
    w, pid = shared_world, detail_project
    spec = (
        Aggregate().by("atc", length=3).people().events().sum("PRS_PAI_MNT").mean("PRS_PAI_MNT")
        .quantile("PRS_PAI_MNT", 0.5).spec()
    )  # fmt: skip
    table, _ = true_table(w, pid, spec, threshold=1)  # every code listed: nothing folded into "other"
    got = {c.key[0]: (c.people, c.values) for c in table.cells}
    want = direct(w, pid, DIRECT)
    assert set(got) == {row[0] for row in want}
    for atc, people, lines, total, mean, median in want:
        values = got[atc][1]
        assert got[atc][0] == people
        assert values["events"] == lines
        assert values["sum_PRS_PAI_MNT"] == pytest.approx(total)
        assert values["mean_PRS_PAI_MNT"] == pytest.approx(mean)
        assert values["p50_PRS_PAI_MNT"] == pytest.approx(median)


DRUGS = pa.table({"PHA_PRS_C13": ["3400000000001", "3400000000002", "3400000000003"],
                  "PHA_ATC_C07": ["A10BA02", "A10BB09", "C10AA05"]})  # fmt: skip
KEYS = pa.table({"BEN_NIR_PSA": [f"P{i}" for i in range(40)], "rkey": list(range(1000, 1040))})
VIEW = {
    "IR_BEN_R": ["BEN_NIR_PSA", "BEN_SEX_COD"],
    "ER_PRS_F": ["CLE_DCI_JNT", "BEN_NIR_PSA", "EXE_SOI_DTD", "PRS_PAI_MNT"],
    "ER_PHA_F": ["CLE_DCI_JNT", "PHA_PRS_C13", "PHA_ACT_QSN", "PHA_ACT_PRU"],
}


def plaintext() -> duckdb.DuckDBPyConnection:
    """40 people, 3 care lines each; each care line has 1 to 3 drug lines, some in the same class (A10)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE IR_BEN_R AS SELECT 'P' || i AS BEN_NIR_PSA, CAST(1 + i % 2 AS VARCHAR) AS BEN_SEX_COD "
                "FROM range(40) t(i)")  # fmt: skip
    con.execute("CREATE TABLE ER_PRS_F AS SELECT 'C' || p || '-' || j AS CLE_DCI_JNT, 'P' || p AS BEN_NIR_PSA, "
                "DATE '2024-01-01' + CAST(j AS INTEGER) AS EXE_SOI_DTD, "
                "CAST(10.0 * (1 + p % 7) + j AS DOUBLE) AS PRS_PAI_MNT "
                "FROM range(40) a(p), range(3) b(j)")  # fmt: skip
    con.execute("CREATE TABLE ER_PHA_F AS SELECT CLE_DCI_JNT, c13 AS PHA_PRS_C13, 1 AS PHA_ACT_QSN, "
                "CAST(2.5 * k AS DOUBLE) AS PHA_ACT_PRU FROM ER_PRS_F, "
                "(VALUES (1, '3400000000001'), (2, '3400000000002'), (3, '3400000000003')) d(k, c13) "
                "WHERE k <= 1 + hash(CLE_DCI_JNT) % 3")  # fmt: skip
    con.register(DRUGS_TABLE, DRUGS)
    con.register("drugs", DRUGS)
    con.register(RKEY_TABLE, KEYS)
    return con


def compiled(spec: AggregateSpec, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    plan = compile_aggregate(spec, VIEW, reference_year=2024, record_keys=KEYS)
    table = output_table(plan, con.sql(plan.query.ast.sql(dialect="duckdb")).to_arrow_table())
    return {str(c.key[0]): (c.people, c.values) for c in table.cells}


def test_on_plaintext_care_lines_with_several_drug_lines_in_one_class() -> None:
    con = plaintext()
    repeated = "SELECT count(*) FROM ER_PHA_F ph JOIN drugs USING (PHA_PRS_C13) GROUP BY CLE_DCI_JNT, " \
               "substr(PHA_ATC_C07, 1, 3) HAVING count(*) > 1"  # fmt: skip
    assert con.sql(repeated).fetchall(), "the test needs care lines with two drug lines in one class"
    spec = (
        Aggregate().by("atc", length=3).people().events().sum("PRS_PAI_MNT").mean("PRS_PAI_MNT")
        .quantile("PRS_PAI_MNT", 0.5).spec()
    )  # fmt: skip
    got = compiled(spec, con)
    want = con.sql(DIRECT).fetchall()
    assert set(got) == {row[0] for row in want} == {"A10", "C10"}
    for atc, people, lines, total, mean, median in want:
        values = got[atc][1]
        assert got[atc][0] == people
        assert values["events"] == lines
        assert values["sum_PRS_PAI_MNT"] == pytest.approx(total)
        assert values["mean_PRS_PAI_MNT"] == pytest.approx(mean)
        assert values["p50_PRS_PAI_MNT"] == pytest.approx(median)
    # Detail-line amounts add up over detail lines.
    got = compiled(Aggregate().by("atc", length=3).sum("PHA_ACT_PRU").mean("PHA_ACT_PRU").spec(), con)
    for atc, total, lines in con.sql(DIRECT_DETAIL).fetchall():
        assert got[atc][1]["sum_PHA_ACT_PRU"] == pytest.approx(total)
        assert got[atc][1]["mean_PHA_ACT_PRU"] == pytest.approx(total / lines)


def test_drug_and_act_details_together_are_refused() -> None:
    view = {**VIEW, "ER_CAM_F": ["CLE_DCI_JNT", "CAM_PRS_IDE"]}
    spec = AggregateSpec.model_validate({"group_by": ["atc"], "filters": [{"dimension": "ccam", "in": ["AAAA"]}],
                                         "measures": ["people", "sum:PRS_PAI_MNT"]})  # fmt: skip
    with pytest.raises(SpecError, match="two specs"):
        compile_aggregate(spec, view, reference_year=2024, record_keys=pa.table({"BEN_NIR_PSA": [], "rkey": []}))
