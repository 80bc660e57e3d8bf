# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The ledger's contributor sets, taken from the aggregate's own pass, are exactly each cell's distinct people.

The oracle is an independent query over the same ``base`` rows (the way the ledger computed them before: one more
pass, ``list(DISTINCT key)`` per cell of every grouping set and for the whole population). A difference would let
a differencing pair or a narrow margin through the ledger unseen, so every kind of spec is compared: totals, a
detail table, filters, quantiles, no dimension at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyroaring import BitMap
from sqlglot import exp

from hygie.analysis.cellkeys import RKEY_TABLE
from hygie.analysis.compile import DRUG_TABLE, DRUGS_TABLE, TOTAL, AggregatePlan, _Compiler, compile_aggregate
from hygie.analysis.contributors import MEMBERS, split_members
from hygie.analysis.engine import CompiledQuery, Limits, engine_for
from hygie.analysis.ledger import Roster
from hygie.analysis.spec import Aggregate, AggregateSpec
from hygie.governance.views import _drug_atc
from hygie.ingest.contract import PSEUDONYM_COLUMN
from tests.analysis.conftest import _world
from tests.analysis.viewparts import view_parts
from tests.portal.world import SCOPE, World

DRUGS = {**SCOPE, "tables": {**SCOPE["tables"], "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_PRU"]}}
SPECS = [
    Aggregate().by("sex").by("age_band", width=20).people().events().with_totals().spec(),
    Aggregate().by("care_month").by("act_nature").people().sum("PRS_PAI_MNT").with_totals().spec(),
    Aggregate().by("region").where("sex", in_=["1"]).people().quantile("PRS_PAI_MNT", 0.5).spec(),
    Aggregate().people().events().spec(),
]
DRUG_SPECS = [
    Aggregate().by("atc", length=3).by("sex").people().sum("PRS_PAI_MNT").with_totals().spec(),
    Aggregate().by("atc", length=1).where("age_band", between=(40, 79), width=10).people().spec(),
]


@pytest.fixture(scope="module", params=["sqlite"])
def sqlite_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The engine's rows do not depend on the database: one hub, on SQLite."""
    yield from _world(request, tmp_path_factory.mktemp("world"))


def oracle(plan: AggregatePlan, columns: dict[str, list[str]], year: int, keys: pa.Table) -> CompiledQuery:
    """Every grouping set's cells and the population, each a list of distinct record keys, in a pass of its own."""
    compiler = _Compiler(plan.spec, columns, year, plan.threshold, plan.code_lists)
    base = compiler.base()
    n = len(plan.spec.group_by)
    sets = [tuple(range(n))]
    if plan.spec.totals:
        sets = [c for size in range(n, -1, -1) for c in combinations(range(n), size)]
    rkey = exp.column("rkey", table="k")
    members = exp.alias_(exp.func("list", exp.Distinct(expressions=[rkey])), "members")

    def joined(select: exp.Select) -> exp.Select:
        return select.from_(exp.to_table("base").as_("b")).join(
            exp.to_table(RKEY_TABLE).as_("k"),
            on=exp.EQ(this=exp.column(PSEUDONYM_COLUMN, table="k"), expression=exp.column("pid", table="b")),
        )

    parts: list[exp.Select] = []
    for s in sets:
        cols: list[exp.Expr] = [exp.alias_(exp.Literal.string("cell"), "kind")]
        cols += [exp.alias_(exp.column(f"d{i}", table="b") if i in s else exp.Literal.string(TOTAL), f"d{i}")
                 for i in range(n)]  # fmt: skip
        query = joined(exp.select(*cols, members.copy()))
        if s:
            query = query.group_by(*[exp.column(f"d{i}", table="b") for i in s])
        parts.append(query)
    population: list[exp.Expr] = [exp.alias_(exp.Literal.string("population"), "kind")]
    population += [exp.alias_(exp.cast(exp.null(), "VARCHAR"), f"d{i}") for i in range(n)]
    parts.append(joined(exp.select(*population, members.copy())))
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    tree = exp.select("*").from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("c"))))
    tree = tree.with_("base", as_=base)
    auxiliary: dict[str, Any] = {RKEY_TABLE: keys, **compiler.code_tables}
    if DRUG_TABLE in compiler.tables:
        auxiliary[DRUGS_TABLE] = _drug_atc()
    return CompiledQuery(tree, frozenset(compiler.tables), auxiliary, joins_as_written=True)


def expected(plan: AggregatePlan, table: pa.Table) -> tuple[BitMap, dict[tuple[str, ...], BitMap]]:
    n = len(plan.spec.group_by)
    population, cells = BitMap(), {}
    for row in table.to_pylist():
        people = BitMap(int(k) for k in row["members"] or ())
        if row["kind"] == "population":
            population = people
        else:
            cells[tuple(str(row[f"d{i}"]) for i in range(n))] = people
    return population, cells


@pytest.mark.parametrize("drugs", [False, True])
def test_members_from_the_aggregate_are_each_cells_distinct_people(sqlite_world: World, drugs: bool) -> None:
    w = sqlite_world
    pid = w.active_project(scope=DRUGS) if drugs else w.active_project()
    engine = engine_for(w.hub)
    limits = Limits.from_settings(w.hub.settings)
    with w.hub.session() as session:
        v = view_parts(w.hub, session, pid)
    for spec in DRUG_SPECS if drugs else SPECS:
        plan = compile_aggregate(AggregateSpec.model_validate(spec.model_dump(by_alias=True)), v.columns,
                                 reference_year=v.year, record_keys=v.keys, threshold=11, members=True)  # fmt: skip
        result = engine.run(v.project, plan.query, limits).table
        rest, found = split_members(plan, result)
        assert found is not None and MEMBERS not in rest.column_names
        without = compile_aggregate(spec, v.columns, reference_year=v.year, record_keys=v.keys, threshold=11)
        assert rest.num_rows == engine.run(v.project, without.query, limits).table.num_rows
        population, cells = expected(plan, engine.run(v.project, oracle(plan, v.columns, v.year, v.keys), limits).table)
        assert len(population) > 0
        assert found.population == population, spec
        assert dict(found.cells) == cells, spec
        # The ledger numbers them through its roster straight from the listed keys: the same sets, renumbered.
        roster = Roster(np.zeros(0, dtype=np.uint32))
        roster.add(BitMap([7, 3]))  # numbers already given to people of earlier releases
        roster.add(found.population)
        assert found.dense_cells(roster.dense_keys) == {k: roster.dense(v) for k, v in cells.items()}, spec


SHORTCUT_SPECS = [
    Aggregate().by("region").by("care_month").people().events().sum("PRS_PAI_MNT").with_totals().spec(),
    Aggregate().by("care_year").by("sex").people().quantile("PRS_PAI_MNT", 0.5).spec(),
    Aggregate().by("care_month").by("act_nature").people().events().spec(),  # no person-level dimension
]


def _rounded(value: Any) -> Any:
    """Sums of the same amounts added in another order differ in their last bits."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _normalised(table: pa.Table) -> list[str]:
    rows = []
    for row in table.to_pylist():
        row = {k: sorted(v) if k == MEMBERS and v is not None else v for k, v in row.items()}
        rows.append(repr({k: _rounded(v) for k, v in sorted(row.items())}))
    return sorted(rows)


@pytest.mark.parametrize("threshold", [11, 100_000])
def test_the_platform_compilers_shortcuts_change_no_output(sqlite_world: World, threshold: int) -> None:
    """``compile_aggregate`` takes each person's key and number from the per-person subquery and folds codes once
    per person and once per date; compiled without those shortcuts (the key joined to every (cell, person) row,
    codes folded per care line), the same spec gives the same table, members included: at the project's threshold,
    and at one no code reaches (every code folded into 'other')."""
    w = sqlite_world
    pid = w.active_project()
    engine = engine_for(w.hub)
    limits = Limits.from_settings(w.hub.settings)
    with w.hub.session() as session:
        v = view_parts(w.hub, session, pid)
    for spec in SHORTCUT_SPECS:
        plan = compile_aggregate(spec, v.columns, reference_year=v.year, record_keys=v.keys, threshold=threshold,
                                 members=True)  # fmt: skip
        plain = _Compiler(spec, v.columns, v.year, threshold, members=True)
        tree = plain.compile()
        auxiliary = {RKEY_TABLE: plan.query.auxiliary[RKEY_TABLE], **plain.code_tables}
        without = CompiledQuery(tree, frozenset(plain.tables), auxiliary, joins_as_written=True)
        shortcut = _normalised(engine.run(v.project, plan.query, limits).table)
        assert shortcut == _normalised(engine.run(v.project, without, limits).table), spec
        assert shortcut
