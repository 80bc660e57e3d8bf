# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""One spec suite, every engine: the same aggregate specs compiled once (one SQLGlot AST) and run by DuckDB and by
Spark must give the same per-cell people counts, sums and released outputs (as ehrQL runs one spec suite on every
engine). Random specs over the same hub are compared too (hypothesis)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.compile import AggregatePlan, compile_aggregate, output_table
from hygie.analysis.contributors import split_members
from hygie.analysis.engine import CompiledQuery, DuckDBEngine, Limits, QueryStopped
from hygie.analysis.spark_engine import SparkEngine
from hygie.analysis.spec import AggregateSpec
from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.protect import protect
from hygie.governance.models import Project
from hygie.governance.views import build_view, newest_ready
from hygie.hub import Hub
from tests.governance.conftest import make_project

pytestmark = pytest.mark.spark

SCOPE: dict[str, Any] = {
    "tables": {
        "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
        "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "PFS_EXE_NUM"],
        "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
    },
    "population": {"period_start": "2023-01-01", "period_end": "2023-12-31"},
}
SPECS: dict[str, dict[str, Any]] = {
    "people": {"measures": ["people"]},
    "by-sex-and-band": {"group_by": ["sex", "age_band:20"], "measures": ["people", "events"], "totals": True},
    "sums-by-month": {"group_by": ["care_month"], "measures": ["people", "sum:PRS_PAI_MNT", "mean:PRS_PAI_MNT"]},
    "filtered-by-nature": {
        "group_by": ["act_nature"],
        "filters": [{"dimension": "care_month", "between": ["2023-03", "2023-08"]}],
        "measures": ["people", "events", "sum:PRS_PAI_MNT"],
    },
    "region-other-fold": {"group_by": ["region", "sex"], "measures": ["people", "sum:PRS_PAI_MNT"]},
    "drug-class": {"group_by": ["atc:3"], "measures": ["people", "events"]},
    "quantile": {"group_by": ["sex"], "measures": ["people", "quantile:PRS_PAI_MNT:0.5"]},
}


@pytest.fixture(scope="module")
def project(spark_hub: Hub) -> Project:
    project = make_project(spark_hub, SCOPE)
    with spark_hub.session() as session:
        build_view(spark_hub, session, project, actor="account:1")
        session.commit()
    return project


@pytest.fixture(scope="module")
def engines(spark_hub: Hub, spark: Any) -> dict[str, Any]:
    return {"duckdb": DuckDBEngine(spark_hub), "spark": SparkEngine(spark_hub, spark)}


def plan_of(hub: Hub, project: Project, spec: dict[str, Any]) -> AggregatePlan:
    with hub.session() as session:
        view = newest_ready(session, project.id)
        assert view is not None
        keys = project_record_keys(hub, session, project)
    columns = {t: list(m["columns"]) for t, m in view.tables.items()}
    # With the ledger's members, as the service compiles it: both engines must return the same people per cell.
    return compile_aggregate(AggregateSpec.model_validate(spec), columns, reference_year=2023, record_keys=keys,
                             members=True)  # fmt: skip


def cells(table: pa.Table) -> list[tuple[Any, ...]]:
    """Every output row, values rounded to the cent (sums of doubles differ in the last bits by summation order)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 2)
        if isinstance(v, list):
            return tuple(sorted(norm(x) for x in v))
        return v

    names = sorted(table.column_names)
    return sorted((tuple(norm(row[n]) for n in names) for row in table.to_pylist()), key=repr)


LIMITS = Limits(memory_mb=512, threads=2, timeout_seconds=120)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_engine_gives_the_same_cells_and_the_same_release(
    spark_hub: Hub, project: Project, engines: dict[str, Any], name: str
) -> None:
    plan = plan_of(spark_hub, project, SPECS[name])
    results = {e: engine.run(project, plan.query, LIMITS).table for e, engine in engines.items()}
    assert results["duckdb"].num_rows > 0
    assert sorted(results["spark"].column_names) == sorted(results["duckdb"].column_names)
    assert cells(results["spark"]) == cells(results["duckdb"])
    policy = DisclosurePolicy(threshold=11)
    released = {e: protect(output_table(plan, split_members(plan, r)[0]), policy).rows() for e, r in results.items()}
    assert released["spark"] == released["duckdb"]


DIMENSIONS = ["sex", "age_band:10", "departement", "region", "care_month", "care_year", "act_nature", "atc:3"]
MEASURES = ["events", "sum:PRS_PAI_MNT", "mean:PRS_PAI_MNT"]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    group_by=st.lists(st.sampled_from(DIMENSIONS), max_size=2, unique=True),
    measures=st.lists(st.sampled_from(MEASURES), max_size=2, unique=True),
    totals=st.booleans(),
    months=st.tuples(st.integers(1, 12), st.integers(1, 12)).map(sorted),
)
def test_random_specs_give_the_same_cells_on_both_engines(
    spark_hub: Hub, project: Project, engines: dict[str, Any], group_by: list[str], measures: list[str],
    totals: bool, months: list[int],
) -> None:  # fmt: skip
    spec = {
        "group_by": group_by,
        "measures": ["people", *measures],
        "totals": totals,
        "filters": [{"dimension": "care_month", "between": [f"2023-{months[0]:02d}", f"2023-{months[1]:02d}"]}],
    }
    plan = plan_of(spark_hub, project, spec)
    duck, spark = (engines[e].run(project, plan.query, LIMITS).table for e in ("duckdb", "spark"))
    assert cells(spark) == cells(duck)


def test_a_query_that_does_not_fit_the_view_is_refused_the_same_way(project: Project, engines: dict[str, Any]) -> None:
    from sqlglot import parse_one

    wrong = CompiledQuery(parse_one("SELECT count(NO_SUCH_COLUMN) AS n FROM ER_PRS_F"), frozenset({"ER_PRS_F"}))
    reasons = {}
    for name, engine in engines.items():
        with pytest.raises(QueryStopped) as stopped:
            engine.run(project, wrong, LIMITS)
        reasons[name] = stopped.value.reason
        assert stopped.value.message.startswith("the query is not valid on this view")
    assert reasons == {"duckdb": "invalid", "spark": "invalid"}


def test_an_error_while_rows_are_read_is_never_called_invalid_nor_logged_with_its_value(
    project: Project, engines: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Only an error of parsing or analysis, before any row is read, says "invalid" (and gives back a reserved
    privacy budget); once rows are read, any error may depend on the data, whatever its class: "runtime", its
    message not shown. Spark raised AnalysisException at either stage and both were once taken as invalid. The
    value that failed is written nowhere an operator reads: not the console, not Spark's driver log (PySpark and
    Spark's executors logged "The value 'x1111' cannot be cast")."""
    from pyspark.errors import AnalysisException
    from sqlglot import parse_one

    from hygie.warehouse.spark import driver_log

    failing = CompiledQuery(
        parse_one("SELECT sum(CAST(concat('x', PRS_NAT_REF) AS INTEGER)) AS n FROM ER_PRS_F"), frozenset({"ER_PRS_F"})
    )
    capfd.readouterr()
    for engine in engines.values():
        with pytest.raises(QueryStopped) as stopped:
            engine.run(project, failing, LIMITS)
        assert stopped.value.reason == "runtime", (engine.name, stopped.value.message)
        assert not re.search(r"x\d", stopped.value.message), stopped.value.message
    out, err = capfd.readouterr()  # this process's own output (the JVM's console is the driver log's copy)
    value = re.compile(r"'x\d+'")  # 'x' joined to an act code of the view, quoted as Spark quotes a failing value
    assert not value.search(out + err), (out + err)[:2000]
    logged = Path(driver_log()).read_text(errors="replace")
    assert "CAST_INVALID_INPUT" in logged  # the failure is in the driver log...
    assert not value.search(logged), [ln for ln in logged.splitlines() if value.search(ln)][:3]  # ...nor its value

    frame_class = type(engines["spark"]._session().sql("SELECT 1 AS one"))

    def analysis_error_while_reading(self: Any) -> pa.Table:
        raise AnalysisException(message="a row's value made this fail")

    monkeypatch.setattr(frame_class, "toArrow", analysis_error_while_reading)
    plan = plan_of(engines["spark"].hub, project, SPECS["people"])
    with pytest.raises(QueryStopped) as stopped:
        engines["spark"].run(project, plan.query, LIMITS)
    assert stopped.value.reason == "runtime" and "a row's value" not in stopped.value.message


def test_spark_stops_a_run_at_the_time_limit(project: Project, engines: dict[str, Any]) -> None:
    from sqlglot import parse_one

    runaway = CompiledQuery(
        parse_one(
            "SELECT count(*) AS n FROM ER_PRS_F a, ER_PRS_F b, ER_PRS_F c, ER_PRS_F d "
            "WHERE a.PRS_PAI_MNT < d.PRS_PAI_MNT + b.PRS_PAI_MNT - c.PRS_PAI_MNT"
        ),
        frozenset({"ER_PRS_F"}),
    )
    with pytest.raises(QueryStopped) as stopped:
        engines["spark"].run(project, runaway, Limits(memory_mb=512, threads=2, timeout_seconds=3))
    assert stopped.value.reason == "timeout"


def test_the_setting_chooses_the_engine(spark_hub: Hub) -> None:
    from hygie.analysis.engine import engine_for

    saved = spark_hub.settings
    try:
        spark_hub.settings = saved.model_copy(update={"engine": "spark"})
        assert isinstance(engine_for(spark_hub), SparkEngine)
        spark_hub.settings = saved.model_copy(update={"engine": "duckdb"})
        assert isinstance(engine_for(spark_hub), DuckDBEngine)
    finally:
        spark_hub.settings = saved


def test_a_custody_refusing_an_unwrap_stops_the_spark_run_with_nothing_returned(
    spark_hub: Hub, project: Project, engines: dict[str, Any]
) -> None:
    from tests.warehouse.test_spark_parquet import RefusingCustody

    plan = plan_of(spark_hub, project, SPECS["people"])
    saved = spark_hub.custody
    spark_hub.custody = RefusingCustody(saved)  # type: ignore[assignment]
    try:
        with pytest.raises(QueryStopped) as stopped:
            engines["spark"].run(project, plan.query, LIMITS)
    finally:
        spark_hub.custody = saved
    assert stopped.value.reason == "runtime"
    assert stopped.value.message.startswith("custody refused a key this run needs: nothing was computed")
