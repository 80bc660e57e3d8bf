# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The sandbox: a runaway query is stopped at its limits while a concurrent one finishes normally."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest
from sqlglot import parse_one

from hygie.analysis.engine import CompiledQuery, DuckDBEngine, Limits, QueryStopped
from hygie.governance.models import Project
from tests.portal.world import World

RUNAWAY = "SELECT count(*) FROM ER_PRS_F a, ER_PRS_F b, ER_PRS_F c, ER_PRS_F d WHERE a.PRS_PAI_MNT < d.PRS_PAI_MNT"
NORMAL = "SELECT count(DISTINCT BEN_NIR_PSA) AS people FROM ER_PRS_F"
GREEDY = "SELECT max(len(x)) FROM (SELECT list(i) AS x FROM range(60000000) t(i))"


def query(sql: str) -> CompiledQuery:
    return CompiledQuery(parse_one(sql, read="duckdb"), frozenset({"ER_PRS_F"}))


@pytest.fixture(scope="module")
def project(shared_world: World) -> Project:
    pid = shared_world.active_project()
    with shared_world.hub.session() as session:
        found = session.get(Project, pid)
        assert found is not None
        session.expunge(found)
        return found


def test_a_runaway_query_stops_at_the_time_limit_while_a_concurrent_one_finishes(
    shared_world: World, project: Project
) -> None:
    engine = DuckDBEngine(shared_world.hub)
    outcome: dict[str, object] = {}

    def runaway() -> None:
        started = time.perf_counter()
        try:
            engine.run(project, query(RUNAWAY), Limits(memory_mb=256, threads=1, timeout_seconds=1.5))
            outcome["runaway"] = "finished"
        except QueryStopped as exc:
            outcome["runaway"] = exc.reason
        outcome["runaway_seconds"] = time.perf_counter() - started

    thread = threading.Thread(target=runaway)
    thread.start()
    time.sleep(0.2)
    normal = engine.run(project, query(NORMAL), Limits(memory_mb=256, threads=1, timeout_seconds=30))
    finished_while_runaway_ran = thread.is_alive()
    thread.join(timeout=30)
    assert normal.table.column("people")[0].as_py() > 0
    assert finished_while_runaway_ran, "the normal query should finish while the runaway one still runs"
    assert outcome["runaway"] == "timeout"
    assert 1.4 <= float(outcome["runaway_seconds"]) < 10  # type: ignore[arg-type]


def test_a_query_past_the_memory_limit_is_stopped(shared_world: World, project: Project) -> None:
    engine = DuckDBEngine(shared_world.hub)
    with pytest.raises(QueryStopped) as caught:
        engine.run(project, query(GREEDY), Limits(memory_mb=64, threads=1, timeout_seconds=30))
    assert caught.value.reason == "memory"


def test_runtime_errors_do_not_quote_data_values(shared_world: World, project: Project) -> None:
    engine = DuckDBEngine(shared_world.hub)
    with pytest.raises(QueryStopped) as caught:
        engine.run(project, query("SELECT CAST(BEN_NIR_PSA AS INTEGER) FROM ER_PRS_F"), Limits(256, 1, 30))
    assert caught.value.reason == "runtime"
    with shared_world.hub.session() as session:
        from hygie.analysis.cellkeys import project_record_keys

        people = project_record_keys(shared_world.hub, session, project).column(0).to_pylist()
    assert not any(p in caught.value.message for p in people)


def test_the_connection_is_locked(shared_world: World, project: Project) -> None:
    engine = DuckDBEngine(shared_world.hub)
    with pytest.raises(QueryStopped):
        engine.run(project, query("SELECT * FROM read_csv('/etc/passwd')"), Limits(256, 1, 30))


def test_platform_queries_keep_the_build_side_they_were_written_with(shared_world: World, project: Project) -> None:
    """DuckDB estimates one row for every Arrow-registered view table, so its own choice of a hash join's build side
    is a coin toss that may pick the care table (55 million rows, five times over in one aggregate). The queries the
    platform writes put the smaller input on the right and keep it there; a researcher's SQL keeps DuckDB's choice."""
    from hygie.analysis.compile import compile_aggregate
    from hygie.analysis.spec import AggregateSpec

    engine = DuckDBEngine(shared_world.hub)
    limits = Limits(memory_mb=256, threads=1, timeout_seconds=30)
    setting = "SELECT current_setting('disabled_optimizers') AS disabled"
    platform = CompiledQuery(parse_one(setting, read="duckdb"), frozenset(), joins_as_written=True)
    assert "build_side_probe_side" in engine.run(project, platform, limits).table.column("disabled")[0].as_py()
    assert "build_side_probe_side" not in str(engine.run(project, query(setting), limits).table.column("disabled")[0])
    spec = AggregateSpec.model_validate({"group_by": ["sex"], "measures": ["people", "sum:PRS_PAI_MNT"]})
    columns = {"IR_BEN_R": ["BEN_NIR_PSA", "BEN_SEX_COD"], "ER_PRS_F": ["BEN_NIR_PSA", "PRS_PAI_MNT"]}
    keys = pa.table({"BEN_NIR_PSA": pa.array([], pa.string()), "rkey": pa.array([], pa.int64())})
    assert compile_aggregate(spec, columns, reference_year=2023, record_keys=keys, threshold=11).query.joins_as_written
