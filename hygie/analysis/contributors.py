# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Who is behind each cell of an aggregate: the exact contributor sets the release ledger compares.

From the same spec the aggregate was compiled from, one more query over the same ``base`` rows (filters included,
codes folded as the aggregate folds them, built by the aggregate compiler itself, so a cell here is exactly the
cell that was counted): for every grouping
set, each cell's distinct record keys as a list, and one row for the whole population (every person of ``base``).
Record keys are the people's stable ids in the ledger (see ``hygie.analysis.ledger``); they never leave the
platform and are sealed at rest.

Cost: the output holds one key per (cell, person) membership, ``sum(people)`` over the cells plus the population,
which the runner bounds (``ledger_max_contributions``) before running it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import pyarrow as pa
from pyroaring import BitMap
from sqlglot import exp

from hygie.analysis.cellkeys import RKEY_TABLE
from hygie.analysis.compile import DRUG_TABLE, DRUGS_TABLE, TOTAL, AggregatePlan, _Compiler
from hygie.analysis.engine import CompiledQuery
from hygie.disclosure import CellKey
from hygie.governance.views import _drug_atc
from hygie.ingest.contract import PSEUDONYM_COLUMN

POPULATION = "_population"
"""The ``kind`` of the row holding the whole population."""


@dataclass(frozen=True)
class Contributors:
    population: BitMap
    cells: Mapping[CellKey, BitMap]


def contributors_query(
    plan: AggregatePlan,
    view: Mapping[str, list[str]],
    *,
    reference_year: int,
    record_keys: pa.Table,
    population_only: bool = False,
) -> CompiledQuery:
    """One query: (kind, d0..dn-1, members) with members the list of distinct record keys of each cell (with
    ``population_only``, the population's row alone: what the ledger keeps of an output it could not check)."""
    # Cells folded at the plan's threshold, from the code lists it read (computed beforehand or not).
    compiler = _Compiler(plan.spec, view, reference_year, plan.threshold, plan.code_lists)
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
    for s in [] if population_only else sets:
        cols: list[exp.Expr] = [exp.alias_(exp.Literal.string("cell"), "kind")]
        cols += [
            exp.alias_(exp.column(f"d{i}", table="b") if i in s else exp.Literal.string(TOTAL), f"d{i}")
            for i in range(n)
        ]
        query = joined(exp.select(*cols, members.copy()))
        if s:
            query = query.group_by(*[exp.column(f"d{i}", table="b") for i in s])
        parts.append(query)
    population: list[exp.Expr] = [exp.alias_(exp.Literal.string(POPULATION), "kind")]
    population += [exp.alias_(exp.cast(exp.null(), "VARCHAR"), f"d{i}") for i in range(n)]
    parts.append(joined(exp.select(*population, members.copy())))
    union: exp.Expr = parts[0]
    for part in parts[1:]:
        union = exp.union(union, part, distinct=False)
    tree = exp.select("*").from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("c"))))
    tree = tree.with_("base", as_=base)
    auxiliary: dict[str, pa.Table] = {RKEY_TABLE: record_keys, **compiler.code_tables}
    if DRUG_TABLE in compiler.tables:
        auxiliary[DRUGS_TABLE] = _drug_atc()
    return CompiledQuery(tree, frozenset(compiler.tables), auxiliary, joins_as_written=True)


def contributor_sets(plan: AggregatePlan, result: pa.Table) -> Contributors:
    """The query's result as bitmaps: the population, and each cell (keyed like ``output_table``'s cells)."""
    n = len(plan.spec.group_by)
    population = BitMap()
    cells: dict[CellKey, BitMap] = {}
    kinds = result.column("kind").to_pylist()
    dims = [result.column(f"d{i}").to_pylist() for i in range(n)]
    lists = result.column("members").to_pylist()
    for row, kind in enumerate(kinds):
        keys = BitMap(int(k) for k in (lists[row] or ()) if k is not None)
        if kind == POPULATION:
            population = keys
        else:
            cells[tuple(str(d[row]) for d in dims)] = keys
    return Contributors(population, cells)
