# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Aggregate specs of projects in differential-privacy release mode (``Project.release_mode == 'dp'``).

What differs from the suppression path (``compile``, ``hygie.disclosure.protect``):

- the grid is public, from the spec alone: every code a person-level dimension can take (sexes, ages or age bands
  up to 120, départements and régions from the reference lists), anything else folded into ``other``. No code list
  is read from the data (the suppression path lists codes held by ``threshold`` people of the view: a
  data-dependent choice DP cannot afford);
- only person-level dimensions group the cells (each person in one cell, so one person moves the vector of cells by
  at most the bound: the L2 sensitivity). Filters may use any dimension. Quantiles are not offered;
- per cell and person the query reduces the person's rows (events, amounts, lines), clamps each to the bounds of the
  settings, then adds over the cell's people; ``hygie.disclosure.dp`` adds OpenDP's noise per statistic;
- margins (``totals``) are sums of noisy cells and a mean a noisy sum over a noisy line count: post-processing;
- the cost, in rho, is known from the spec before anything runs: ``dp_rho_per_statistic`` per measure (a mean
  splits its share between its sum and its count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlglot import exp

from hygie.analysis.compile import OTHER, TOTAL, SpecError, _Compiler
from hygie.analysis.engine import CompiledQuery
from hygie.analysis.spec import PERSON_LEVEL, AggregateSpec, DimensionSpec
from hygie.config import Settings
from hygie.disclosure import dp
from hygie.governance.policy import departements_by_region
from hygie.governance.privacy import RESERVED, PrivacyCharge, refund, settle
from hygie.i18n import N_

MAX_AGE = 120
"""Ages (and age bands) listed in a DP grid: 0 to this; older ones, and missing ones, fall in ``other``."""
DP_MODE = "dp"


def public_codes(d: DimensionSpec) -> list[str]:
    """The codes of a person-level dimension known without the data (``other`` comes last, added by the caller)."""
    if d.name == "sex":
        return ["1", "2"]
    if d.name == "age":
        return [str(a) for a in range(MAX_AGE + 1)]
    if d.name == "age_band":
        return [f"{low}-{low + d.band - 1}" for low in range(0, MAX_AGE + 1, d.band)]
    regions = departements_by_region()
    if d.name == "region":
        return [str(r) for r in sorted(regions)]
    if d.name == "departement":
        return sorted({code for codes in regions.values() for code in codes})
    raise SpecError(N_("dimension {dimension} has no public code list", dimension=d.name))


@dataclass(frozen=True)
class DPPlan:
    """A DP aggregate's query, grid and cost; the cost is known before the query runs."""

    spec: AggregateSpec
    query: CompiledQuery
    grids: tuple[tuple[str, ...], ...]
    """Per dimension: its codes, ``other`` last."""
    cost: float
    """rho the release spends."""
    bounds: dp.Bounds
    rho_per_statistic: float
    confidence: float

    @property
    def dimension_labels(self) -> list[str]:
        return [d.label for d in self.spec.group_by]


def statistics(spec: AggregateSpec) -> int:
    """Released statistics (one per measure) the cost is charged for."""
    return len(spec.measures)


def request_cost(spec: AggregateSpec, settings: Settings) -> float:
    """The rho of a DP request, from the spec alone."""
    return statistics(spec) * settings.dp_rho_per_statistic


def check_dp_spec(spec: AggregateSpec, max_cells: int) -> None:
    """Refuse, from the text alone, what a DP release cannot offer; the message says what to ask instead."""
    others = [d.name for d in spec.group_by if d.name not in PERSON_LEVEL]
    if others:
        raise SpecError(
            N_(
                "in differential-privacy mode cells are grouped by person-level dimensions only ({allowed}); "
                "{dimensions} can put one person in several cells. Use them as filters, one request per code",
                allowed=", ".join(sorted(PERSON_LEVEL)),
                dimensions=", ".join(others),
            )
        )
    if any(m.kind == "quantile" for m in spec.measures):
        raise SpecError(N_("in differential-privacy mode quantiles are not released: ask for means or sums"))
    cells = 1
    for d in spec.group_by:
        cells *= len(public_codes(d)) + 1 + (1 if spec.totals else 0)
    if cells > max_cells:
        raise SpecError(
            N_(
                "this grid has {cells} cells, more than the {maximum} of one output: use coarser dimensions",
                cells=cells,
                maximum=max_cells,
            )
        )


class _DPCompiler(_Compiler):
    def __init__(self, spec: AggregateSpec, view: Mapping[str, list[str]], reference_year: int,
                 grids: tuple[tuple[str, ...], ...], bounds: dp.Bounds) -> None:  # fmt: skip
        super().__init__(spec, view, reference_year)
        self.grids = grids
        self.bounds = bounds

    def base(self) -> exp.Select:
        """Event rows of the request's population, each dimension's code folded onto the public grid."""
        raw = self._rows(with_filters=True)
        cols: list[exp.Expr] = []
        for i, grid in enumerate(self.grids):
            code = exp.column(f"d{i}", table="r")
            listed = exp.In(this=code, expressions=[exp.Literal.string(c) for c in grid if c != OTHER])
            cols.append(exp.alias_(exp.If(this=listed, true=code.copy(), false=exp.Literal.string(OTHER)), f"d{i}"))
        cols.append(exp.column("pid", table="r"))
        if self.care_lines_repeat:
            cols.append(exp.column("cid", table="r"))
        cols += [exp.column(f"a_{name}", table="r") for name in self.amounts]
        return exp.select(*cols).from_(exp.Subquery(this=raw, alias=exp.TableAlias(this=exp.to_identifier("r"))))

    def compile(self) -> exp.Expr:
        """Per cell: people, and the sums of every person's clamped events, amounts and lines."""
        base = self.base()
        members = tuple(range(len(self.spec.group_by)))
        group = [exp.column(f"d{i}") for i in members]
        per_person: list[exp.Expr] = [*group, exp.column("pid"), exp.alias_(exp.Count(this=exp.Star()), "ev")]
        for name in self.amounts:
            per_person.append(exp.alias_(exp.Sum(this=exp.column(f"a_{name}")), f"s_{name}"))
            per_person.append(exp.alias_(exp.Sum(this=exp.column(f"c_{name}")), f"n_{name}"))
        pp = exp.select(*per_person).from_(self.lines(members)).group_by(*group, exp.column("pid"))
        events = exp.Literal.number(self.bounds.events)

        def clamp(e: exp.Expr, low: exp.Expr, high: exp.Expr) -> exp.Expr:
            return exp.Least(this=exp.Greatest(this=e, expressions=[low]), expressions=[high])

        cells: list[exp.Expr] = [exp.column(f"d{i}", table="pp") for i in members]
        cells.append(exp.alias_(exp.Count(this=exp.Star()), "people"))
        cells.append(exp.alias_(exp.Sum(this=exp.Least(this=exp.column("ev", table="pp"), expressions=[events])),
                                "events"))  # fmt: skip
        for name in self.amounts:
            total = exp.Coalesce(this=exp.column(f"s_{name}", table="pp"), expressions=[exp.Literal.number(0)])
            low = exp.Literal.number(self.bounds.amount_lower)
            high = exp.Literal.number(self.bounds.amount_upper)
            cells.append(exp.alias_(exp.Sum(this=clamp(exp.cast(total, "DOUBLE"), low, high)), f"sum_{name}"))
            lines = exp.Coalesce(this=exp.column(f"n_{name}", table="pp"), expressions=[exp.Literal.number(0)])
            cells.append(exp.alias_(exp.Sum(this=exp.Least(this=lines, expressions=[events.copy()])), f"n_{name}"))
        query = exp.select(*cells).from_(exp.Subquery(this=pp, alias=exp.TableAlias(this=exp.to_identifier("pp"))))
        if members:
            query = query.group_by(*[exp.column(f"d{i}", table="pp") for i in members])
        return query.with_("base", as_=base)


def compile_dp(
    spec: AggregateSpec, view: Mapping[str, list[str]], *, reference_year: int, settings: Settings
) -> DPPlan:
    """The DP query for ``spec``; raises :class:`SpecError` for what DP mode does not offer."""
    check_dp_spec(spec, settings.disclosure_max_cells)
    bounds = dp.Bounds(settings.dp_events_per_person, settings.dp_amount_lower, settings.dp_amount_upper)
    grids = tuple((*public_codes(d), OTHER) for d in spec.group_by)
    compiler = _DPCompiler(spec, view, reference_year, grids, bounds)
    tree = compiler.compile()
    auxiliary: dict[str, pa.Table] = {}
    from hygie.analysis.compile import DRUG_TABLE, DRUGS_TABLE
    from hygie.governance.views import _drug_atc

    if DRUG_TABLE in compiler.tables:
        auxiliary[DRUGS_TABLE] = _drug_atc()
    return DPPlan(spec, CompiledQuery(tree, frozenset(compiler.tables), auxiliary, joins_as_written=True), grids,
                  request_cost(spec, settings), bounds, settings.dp_rho_per_statistic,
                  settings.dp_confidence)  # fmt: skip


@dataclass(frozen=True)
class DPRelease:
    columns: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]


def release(plan: DPPlan, result: pa.Table) -> DPRelease:
    """The noisy table: every cell of the grid (and margins), each value with its noise scale and interval."""
    spec, n = plan.spec, len(plan.spec.group_by)
    true: dict[tuple[str, ...], dict[str, float]] = {key: {} for key in product(*plan.grids)}
    dims = [f"d{i}" for i in range(n)]
    for row in result.to_pylist():
        key = tuple(str(row[d]) for d in dims)
        if key not in true:  # every code is folded onto the grid; a key outside it is a platform bug
            raise ValueError("a DP cell outside the public grid")
        true[key] = {k: float(v or 0) for k, v in row.items() if k not in dims}
    keys = list(true)
    level, rho = plan.confidence, plan.rho_per_statistic
    columns_of: dict[str, dict[tuple[str, ...], dp.Noisy]] = {}
    scales: dict[str, float] = {}

    def noisy(column: str, sensitivity: float, cost: float) -> dict[tuple[str, ...], dp.Noisy]:
        values = [true[k].get(column, 0.0) for k in keys]
        released = dp.release_vector(values, sensitivity, cost, level)
        return dict(zip(keys, released, strict=True))

    parts: dict[str, tuple[dict[tuple[str, ...], dp.Noisy], dict[tuple[str, ...], dp.Noisy]]] = {}
    for m in spec.measures:
        if m.kind == "people":
            columns_of["people"] = noisy("people", 1.0, rho)
        elif m.kind == "events":
            columns_of[m.name] = noisy("events", float(plan.bounds.events), rho)
        elif m.kind == "sum":
            columns_of[m.name] = noisy(f"sum_{m.of}", plan.bounds.amount_sensitivity, rho)
        elif m.kind == "mean":
            parts[m.name] = (noisy(f"sum_{m.of}", plan.bounds.amount_sensitivity, rho / 2),
                             noisy(f"n_{m.of}", float(plan.bounds.events), rho / 2))  # fmt: skip
        else:  # refused by check_dp_spec
            raise SpecError(f"measure {m.name} has no DP release")
    # Margins: every subset of the dimensions, as sums of the noisy finest cells (post-processing).
    out_keys = list(keys)
    if spec.totals and n:
        margins = [c for size in range(n - 1, -1, -1) for c in combinations(range(n), size)]
        for members in margins:
            groups: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
            for key in keys:
                margin = tuple(key[i] if i in members else TOTAL for i in range(n))
                groups.setdefault(margin, []).append(key)
            for margin, inner in groups.items():
                out_keys.append(margin)
                for by_key in columns_of.values():
                    by_key[margin] = dp.add((by_key[k] for k in inner), level)
                for s, c in parts.values():
                    s[margin] = dp.add((s[k] for k in inner), level)
                    c[margin] = dp.add((c[k] for k in inner), level)
    for name, (s, c) in parts.items():
        columns_of[name] = {k: dp.ratio(s[k], c[k], level) for k in out_keys}
    for name, by_key in columns_of.items():
        scales[name] = next(iter(by_key.values())).scale if by_key else 0.0
    labels = plan.dimension_labels
    rows: list[dict[str, Any]] = []
    for key in out_keys:
        line: dict[str, Any] = dict(zip(labels, key, strict=True))
        for m in spec.measures:
            name = "people" if m.kind == "people" else m.name
            line.update(columns_of[name][key].as_dict(name))
        rows.append(line)
    columns = list(rows[0]) if rows else labels
    summary = {
        "release_mode": DP_MODE,
        "definition": dp.DEFINITION,
        "rho": plan.cost,
        "confidence": level,
        "cells": len(out_keys),
        "rows": len(rows),
        "suppressed": 0,
        "min_cell_people": None,
        "bounds": {
            "events": plan.bounds.events,
            "amount_lower": plan.bounds.amount_lower,
            "amount_upper": plan.bounds.amount_upper,
        },
        "noise_sd": {name: round(v, 4) for name, v in scales.items() if name not in parts},
    }
    return DPRelease(columns, rows, summary)


def close_charge(session: Session, job_id: int, *, before_data: bool, reason: str, actor: str) -> None:
    """A DP job that gave no release: its reservation is refunded only when it stopped before reading any row (the
    query was invalid on the view's schema); any other stop or failure may depend on the data, so it is spent."""
    charge = session.scalar(select(PrivacyCharge).where(PrivacyCharge.job_id == job_id))
    if charge is None or charge.status != RESERVED:
        return
    if before_data:
        refund(session, job_id, reason=f"stopped before reading data ({reason})", actor=actor)
    else:
        settle(session, job_id, actor=actor)
