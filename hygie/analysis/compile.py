# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""An aggregate spec compiled to one SQL query (a SQLGlot tree, never concatenated text) over the project's view.

Shape, for each grouping set S (the dimensions, and with totals every subset of them)::

    base  = event rows: every dimension's code, the person, the amounts        (filters applied here)
    pp_S  = one row per (cell, person): events and amounts of that person in that cell
    c_S   = per cell: people = COUNT(*) of its per-person rows, sums, the two largest per-person contributions,
            cell_key = SUM(rkey) mod 2^32 and anchor_key = MIN(rkey) over the cell's distinct people
    q_S   = per cell quantiles over event rows, joined to c_S, with the bounds of the "enough people on each side"
            rule: the ``threshold``-th smallest of the people's smallest values and the ``threshold``-th largest of
            their largest values (a value has ``threshold`` distinct people strictly below it iff it exceeds the first)

The people count is the platform's, from the pseudonym column: a spec cannot change what it means.

Codes: a dimension lists the codes held by at least ``threshold`` distinct people of the whole project view (the
same joins, no filter), so they do not depend on the request's population nor on any small count; every other code
is folded into ``other``. The query also returns those code lists (rows with ``part = 'code'``), so the released
table can be the full grid of them, whatever cells the population fills.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

import pyarrow as pa
from sqlglot import exp

from hygie.analysis.cellkeys import RKEY_TABLE
from hygie.analysis.engine import CompiledQuery
from hygie.analysis.spec import PERSON_LEVEL, AggregateSpec, DimensionSpec, MeasureSpec
from hygie.disclosure import Cell, Dimension, Measure, MeasureKind, OutputTable
from hygie.disclosure.cellkey import KEY_MODULUS
from hygie.governance.policy import CLAIM_KEY, departements_by_region
from hygie.governance.views import _drug_atc
from hygie.i18n import N_
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, PSEUDONYM_COLUMN

TOTAL = "Total"
"""The code of a margin on every dimension."""
OTHER = "other"
"""The code every value held by fewer than ``threshold`` people of the project view is folded into."""
CODE_ROW = "code"
"""The ``part`` of a result row listing one code of one dimension (not a cell)."""
DEFAULT_THRESHOLD = 11
"""Only for callers that do not pass the project's threshold (tests): the platform default."""
UNKNOWN = "unknown"
"""The code of a missing value (no département, no drug class...)."""
DRUGS_TABLE = "_hygie_drugs"
DRUG_TABLE, ACT_TABLE = "ER_PHA_F", "ER_CAM_F"
ALIASES = {BENEFICIARY_TABLE: "b", CARE_TABLE: "f", DRUG_TABLE: "ph", ACT_TABLE: "ca"}
_KINDS = {
    "events": MeasureKind.COUNT,
    "sum": MeasureKind.SUM,
    "mean": MeasureKind.MEAN,
    "quantile": MeasureKind.QUANTILE,
}


PERSON_NUMBER = "pnum"
"""Column of the record-key table numbering its people 0, 1, 2...: unique, unlike the 32-bit record keys."""

CODES_TABLE = "_hygie_codes_"
"""Prefix of the auxiliary tables holding code lists computed beforehand (one per dimension: ``_hygie_codes_0``...);
user SQL naming them is refused like any table outside the view."""


class SpecError(Exception):
    """The spec does not fit this project's view; the message says which column is missing."""


@dataclass(frozen=True)
class AggregatePlan:
    spec: AggregateSpec
    query: CompiledQuery
    threshold: int = DEFAULT_THRESHOLD
    """The threshold the code lists and quantile bounds were computed for (``_Compiler(..., threshold=...)``)."""
    code_lists: Mapping[str, pa.Table] = field(default_factory=dict)
    """Code lists computed beforehand (:mod:`hygie.analysis.codelists`), by :meth:`_Compiler.code_key`: read from a
    table instead of computed over the whole view inside the query."""
    members: bool = False
    """The query also returns, on each cell of the finest grouping set, the record keys of its people (column
    ``members``): the release ledger's contributor sets, from the same pass (:mod:`hygie.analysis.contributors`)."""

    @property
    def dimension_labels(self) -> list[str]:
        return [d.label for d in self.spec.group_by]


def _col(table: str, column: str) -> exp.Column:
    return exp.column(column, table=ALIASES[table])


def _str(e: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=exp.cast(e, "VARCHAR"), expressions=[exp.Literal.string(UNKNOWN)])


class _Compiler:
    def __init__(
        self,
        spec: AggregateSpec,
        view: Mapping[str, list[str]],
        reference_year: int,
        threshold: int = DEFAULT_THRESHOLD,
        code_lists: Mapping[str, pa.Table] | None = None,
        members: bool = False,
        keyed: bool = False,
    ) -> None:
        self.spec = spec
        self.keep_members = members
        self.keyed = keyed
        """The record-key table is read by the query (aggregates, not differentially private releases): see
        :attr:`keyed_rows`."""
        self.folded: set[int] = set()
        """Dimensions whose code the request's rows carry already folded into ``OTHER`` (per person)."""
        self.view = view
        self.year = reference_year
        self.threshold = threshold
        self.code_lists = code_lists or {}
        self.code_tables: dict[str, pa.Table] = {}
        """The auxiliary tables of the code lists given (name -> codes) that the query reads."""
        self.tables: set[str] = set()
        self.amount_tables: dict[str, str] = {}
        """Amount column -> the table it comes from (care line or detail line)."""

    def need(self, table: str, column: str, why: str) -> exp.Column:
        if column not in self.view.get(table, []):
            raise SpecError(
                N_(
                    "{what} needs {table}.{column}, which this project's view does not hold",
                    what=why,
                    table=table,
                    column=column,
                )
            )
        self.tables.add(table)
        return _col(table, column)

    def dimension(self, d: DimensionSpec) -> tuple[exp.Expr, exp.Expr]:
        """(raw expression, string code) of a dimension."""
        why = N_("dimension {dimension}", dimension=d.name)
        if d.name == "sex":
            raw: exp.Expr = self.need(BENEFICIARY_TABLE, "BEN_SEX_COD", why)
        elif d.name in ("age", "age_band"):
            born = exp.cast(self.need(BENEFICIARY_TABLE, "BEN_NAI_ANN", why), "INTEGER")
            raw = exp.Paren(this=exp.Sub(this=exp.Literal.number(self.year), expression=born))
            if d.name == "age_band":
                low = exp.Mul(
                    this=exp.Paren(this=exp.IntDiv(this=raw, expression=exp.Literal.number(d.band))),
                    expression=exp.Literal.number(d.band),
                )
                high = exp.Add(this=low.copy(), expression=exp.Literal.number(d.band - 1))
                code = exp.func("concat", exp.cast(low, "VARCHAR"), exp.Literal.string("-"), exp.cast(high, "VARCHAR"))
                return raw, _str(code)
        elif d.name == "departement":
            raw = self.need(BENEFICIARY_TABLE, "BEN_RES_DPT", why)
        elif d.name == "region":
            dpt = self.need(BENEFICIARY_TABLE, "BEN_RES_DPT", why)
            ifs = [
                exp.If(this=exp.In(this=dpt.copy(), expressions=[exp.Literal.string(x) for x in dpts]),
                       true=exp.Literal.string(str(region)))
                for region, dpts in sorted(departements_by_region().items())
            ]  # fmt: skip
            raw = exp.Case(ifs=ifs)
        elif d.name in ("care_month", "care_year"):
            date = self.need(CARE_TABLE, "EXE_SOI_DTD", why)
            fmt = "%Y-%m" if d.name == "care_month" else "%Y"
            # TimeToStr, not an anonymous strftime: each engine's dialect renders its own (STRFTIME, DATE_FORMAT).
            raw = exp.TimeToStr(this=date, format=exp.Literal.string(fmt))
        elif d.name == "act_nature":
            raw = self.need(CARE_TABLE, "PRS_NAT_REF", why)
        elif d.name == "provider":
            raw = self.need(CARE_TABLE, "PFS_EXE_NUM", why)
        elif d.name == "atc":
            self.need(DRUG_TABLE, "PHA_PRS_C13", why)
            raw = exp.Substring(
                this=exp.column("PHA_ATC_C07", table="dr"), start=exp.Literal.number(1),
                length=exp.Literal.number(d.code_length),
            )  # fmt: skip
        else:  # ccam
            raw = exp.Substring(
                this=self.need(ACT_TABLE, "CAM_PRS_IDE", why), start=exp.Literal.number(1),
                length=exp.Literal.number(d.code_length),
            )  # fmt: skip
        return raw, _str(raw)

    def amount(self, m: MeasureSpec) -> exp.Column:
        assert m.of is not None
        for table in (CARE_TABLE, DRUG_TABLE, ACT_TABLE):
            if m.of in self.view.get(table, []) and m.of not in (CLAIM_KEY, PSEUDONYM_COLUMN):
                self.amount_tables[m.of] = table
                return self.need(table, m.of, N_("measure {measure}", measure=m.name))
        raise SpecError(
            N_(
                "measure {measure}: {column} is not an amount column of this project's view",
                measure=m.name,
                column=m.of,
            )
        )

    def base(self) -> exp.Select:
        """Event rows of the request's population: dimension codes (folded: see ``codes``), person, amounts."""
        raw = self._rows(with_filters=True)
        if not self.spec.group_by:
            return raw
        cols: list[exp.Expr] = []
        for i in range(len(self.spec.group_by)):
            code = exp.column(f"d{i}", table="r")
            if i in self.folded:
                cols.append(exp.alias_(code, f"d{i}"))
                continue
            listed = exp.In(this=code, query=exp.Subquery(this=self.codes(i)))
            cols.append(exp.alias_(exp.If(this=listed, true=code.copy(), false=exp.Literal.string(OTHER)), f"d{i}"))
        cols.append(exp.column("pid", table="r"))
        if self.keyed_rows:
            cols.append(exp.column("rkey", table="r"))
        if self.care_lines_repeat:
            cols.append(exp.column("cid", table="r"))
        cols += [exp.column(f"a_{name}", table="r") for name in self.amounts]
        return exp.select(*cols).from_(exp.Subquery(this=raw, alias=exp.TableAlias(this=exp.to_identifier("r"))))

    def codes(self, i: int) -> exp.Select:
        """The codes of dimension ``i`` held by at least ``threshold`` distinct people of the whole view (same joins,
        no filter): they depend neither on the request's population nor on any small count. Read from a table when
        the list was computed beforehand (``code_lists``), else computed in the query."""
        known = self.code_lists.get(self.code_key(i)) if self.code_lists else None
        if known is None:
            return self.code_query(i)
        name = f"{CODES_TABLE}{i}"
        self.code_tables[name] = known
        return exp.select(exp.column("code")).from_(exp.to_table(name))

    def code_key(self, i: int) -> str:
        """What identifies dimension ``i``'s code list within one view: its query's text (the dimension, its
        reference year, the threshold, the joins)."""
        return self.code_query(i).sql(dialect="duckdb")

    def code_query(self, i: int) -> exp.Select:
        every = exp.Subquery(this=self._rows(with_filters=False), alias=exp.TableAlias(this=exp.to_identifier("v")))
        people = exp.Count(this=exp.Distinct(expressions=[exp.column("pid", table="v")]))
        return (
            exp.select(exp.alias_(exp.column(f"d{i}", table="v"), "code"))
            .from_(every)
            .group_by(exp.column(f"d{i}", table="v"))
            .having(exp.GTE(this=people, expression=exp.Literal.number(self.threshold)))
        )

    def _rows(self, *, with_filters: bool) -> exp.Select:
        dims = [self.dimension(d) for d in self.spec.group_by]
        amounts = {m.of: self.amount(m) for m in self.spec.measures if m.of}
        where: list[exp.Expr] = []
        for f in self.spec.filters:
            raw, code = self.dimension(f.dimension)
            if f.in_ is not None:
                where.append(exp.In(this=code, expressions=[exp.Literal.string(str(v)) for v in f.in_]))
            else:
                assert f.between is not None
                low, high = (exp.Literal.number(v) if isinstance(v, int) else exp.Literal.string(v) for v in f.between)
                where.append(exp.Between(this=raw, low=low, high=high))
        fact = CARE_TABLE if CARE_TABLE in self.view else BENEFICIARY_TABLE
        if fact == BENEFICIARY_TABLE and (self.tables - {BENEFICIARY_TABLE}):
            raise SpecError(N_("this project's view has no care table (ER_PRS_F): only person dimensions apply"))
        if fact == BENEFICIARY_TABLE and any(m.kind != "people" for m in self.spec.measures):
            raise SpecError(N_("this project's view has no care table (ER_PRS_F): only the people measure applies"))
        self.tables.add(fact)
        if DRUG_TABLE in self.tables and ACT_TABLE in self.tables:
            raise SpecError(
                N_(
                    "drug (atc) and act (ccam) details cannot be combined in one spec: each drug line of a care line "
                    "would pair with each of its act lines; ask for them in two specs"
                )
            )
        person = _col(fact, PSEUDONYM_COLUMN)
        # Person-level codes (sex, age, residence...) are computed once per person on the beneficiary table, before
        # its join to the care lines: the region's CASE over 18 lists of départements costs 60,000 evaluations,
        # not one per care line (1.2 million).
        hoisted: dict[str, exp.Expr] = {}
        folds: dict[str, exp.Expr] = {}
        keyed = with_filters and self.keyed_rows
        if fact == CARE_TABLE and BENEFICIARY_TABLE in self.tables:
            dims = [
                (self._per_person(raw, hoisted), self._folded_per_person(i, code, hoisted, folds) if keyed else
                 self._per_person(code, hoisted))
                for i, (raw, code) in enumerate(dims)
            ]  # fmt: skip
            where = [self._per_person(w, hoisted) for w in where]
        dated: dict[int, exp.Select] = {}
        if with_filters and self.keyed and fact == CARE_TABLE:
            for i, d in enumerate(self.spec.group_by):
                if d.name in ("care_month", "care_year"):
                    dims[i] = (dims[i][0], self._folded_per_date(i, d.name, dated))
        projections: list[exp.Expr] = [exp.alias_(code, f"d{i}") for i, (_, code) in enumerate(dims)]
        if keyed:  # the person's number and record key, from the per-person subquery (see keyed_rows)
            projections.append(exp.alias_(exp.column(PERSON_NUMBER, table=ALIASES[BENEFICIARY_TABLE]), "pid"))
            projections.append(exp.alias_(exp.column("rkey", table=ALIASES[BENEFICIARY_TABLE]), "rkey"))
        else:
            projections.append(exp.alias_(person, "pid"))
        if self.care_lines_repeat:
            projections.append(exp.alias_(_col(CARE_TABLE, CLAIM_KEY), "cid"))
        projections += [exp.alias_(col, f"a_{name}") for name, col in amounts.items()]
        query = exp.select(*projections).from_(exp.to_table(fact).as_(ALIASES[fact]))
        if fact == CARE_TABLE and BENEFICIARY_TABLE in self.tables:
            people = exp.select(
                _col(BENEFICIARY_TABLE, PSEUDONYM_COLUMN), *(exp.alias_(e, name) for name, e in hoisted.items())
            ).from_(exp.to_table(BENEFICIARY_TABLE).as_("b"))
            if keyed:
                people = people.select(exp.column(PERSON_NUMBER, table="k"), exp.column("rkey", table="k")).join(
                    exp.to_table(RKEY_TABLE).as_("k"),
                    on=exp.EQ(this=exp.column(PSEUDONYM_COLUMN, table="k"),
                              expression=_col(BENEFICIARY_TABLE, PSEUDONYM_COLUMN)),
                )  # fmt: skip
            if folds:  # over the per-person codes, computed once each in the subquery below
                people = exp.select(exp.Star(), *(exp.alias_(e, name) for name, e in folds.items())).from_(
                    exp.Subquery(this=people, alias=exp.TableAlias(this=exp.to_identifier("pb")))
                )
            query = query.join(
                exp.Subquery(this=people, alias=exp.TableAlias(this=exp.to_identifier("b"))),
                on=exp.EQ(this=_col(BENEFICIARY_TABLE, PSEUDONYM_COLUMN), expression=person.copy()),
            )
        for i, dates in dated.items():  # the dates' table on the right: the side a hash join builds
            query = query.join(
                exp.Subquery(this=dates, alias=exp.TableAlias(this=exp.to_identifier(f"m{i}"))),
                on=exp.NullSafeEQ(this=exp.column("dt", table=f"m{i}"), expression=_col(CARE_TABLE, "EXE_SOI_DTD")),
            )
        for detail in (DRUG_TABLE, ACT_TABLE):
            if detail in self.tables:
                query = query.join(
                    exp.to_table(detail).as_(ALIASES[detail]),
                    on=exp.EQ(this=_col(detail, CLAIM_KEY), expression=_col(CARE_TABLE, CLAIM_KEY)),
                )
        if DRUG_TABLE in self.tables and any(
            d.name == "atc" for d in [*self.spec.group_by, *(f.dimension for f in self.spec.filters)]
        ):
            query = query.join(
                exp.to_table(DRUGS_TABLE).as_("dr"),
                on=exp.EQ(this=exp.column("PHA_PRS_C13", table="dr"), expression=_col(DRUG_TABLE, "PHA_PRS_C13")),
                join_type="left",
            )
        if where and with_filters:
            query = query.where(exp.and_(*where))
        return query

    def _folded_per_person(
        self, i: int, code: exp.Expr, hoisted: dict[str, exp.Expr], folds: dict[str, exp.Expr]
    ) -> exp.Expr:
        """Dimension ``i``'s code already folded into ``OTHER`` (see :meth:`base`), once per person when it reads
        the beneficiary table alone: the per-person subquery computes the code (``hoisted``), a layer over it folds
        it (``folds``), and the request's rows carry the folded code. The check against the code list then runs
        1.4 million times instead of once per care line (55 million, some 2 s of regions x months' 14)."""
        if not self._person_level(code):
            return self._per_person(code, hoisted)
        name = self._hoisted(code, hoisted)
        listed = exp.In(this=exp.column(name), query=exp.Subquery(this=self.codes(i)))
        folds[f"f{i}"] = exp.If(this=listed, true=exp.column(name), false=exp.Literal.string(OTHER))
        self.folded.add(i)
        return exp.column(f"f{i}", table=ALIASES[BENEFICIARY_TABLE])

    def _folded_per_date(self, i: int, name: str, dated: dict[int, exp.Select]) -> exp.Expr:
        """Dimension ``i`` (the month or year of care) already folded into ``OTHER``, from a table of the care
        lines' distinct dates (a few hundred) joined to them: its text and the check against the code list are
        computed once per date, not once per care line (55 million ``strftime`` and list checks, about 3 s of CPU
        in regions x months). A missing date is a date too (joined null-safe): its code is ``unknown``, folded."""
        fmt = "%Y-%m" if name == "care_month" else "%Y"
        code = _str(exp.TimeToStr(this=exp.column("dt"), format=exp.Literal.string(fmt)))
        listed = exp.In(this=code.copy(), query=exp.Subquery(this=self.codes(i)))
        distinct = (
            exp.select(exp.alias_(_col(CARE_TABLE, "EXE_SOI_DTD"), "dt"))
            .distinct()
            .from_(exp.to_table(CARE_TABLE).as_(ALIASES[CARE_TABLE]))
        )
        dated[i] = exp.select(
            exp.column("dt"), exp.alias_(exp.If(this=listed, true=code, false=exp.Literal.string(OTHER)), "code")
        ).from_(exp.Subquery(this=distinct, alias=exp.TableAlias(this=exp.to_identifier("dd"))))
        self.folded.add(i)
        return exp.column("code", table=f"m{i}")

    @staticmethod
    def _per_person(expr: exp.Expr, hoisted: dict[str, exp.Expr]) -> exp.Expr:
        """``expr`` as a column of the per-person subquery when it reads the beneficiary table alone."""
        if not _Compiler._person_level(expr) or isinstance(expr, exp.Column):
            return expr
        return exp.column(_Compiler._hoisted(expr, hoisted), table=ALIASES[BENEFICIARY_TABLE])

    @staticmethod
    def _person_level(expr: exp.Expr) -> bool:
        """``expr`` reads the beneficiary table alone."""
        columns = list(expr.find_all(exp.Column))
        return bool(columns) and all(c.table == ALIASES[BENEFICIARY_TABLE] for c in columns)

    @staticmethod
    def _hoisted(expr: exp.Expr, hoisted: dict[str, exp.Expr]) -> str:
        """The name of ``expr``'s column in the per-person subquery (added once)."""
        sql = expr.sql()
        name = next((n for n, e in hoisted.items() if e.sql() == sql), f"p{len(hoisted)}")
        hoisted.setdefault(name, expr.copy())
        return name

    @property
    def care_lines_repeat(self) -> bool:
        """A detail table is joined, so each care line appears once per detail line (drug or act) of it: care-line
        events and amounts must be counted once per cell, by claim key, not once per row."""
        return (
            CARE_TABLE in self.tables
            and any(t in self.tables for t in (DRUG_TABLE, ACT_TABLE))
            and any(m.kind != "people" for m in self.spec.measures)
        )

    @property
    def keyed_rows(self) -> bool:
        """The request's rows carry each person's number (``pid``, an integer unique in the view) and record key
        (``rkey``), joined once per person to the beneficiary table the dimensions already read: the per-(cell,
        person) rows are then grouped on an integer rather than the pseudonym's text, and need no join with the
        key table (some 20 million probes for regions x months). Without a beneficiary dimension the care lines
        are not joined to people: the keys are joined to the per-(cell, person) rows instead."""
        return self.keyed and CARE_TABLE in self.tables and BENEFICIARY_TABLE in self.tables

    def lines(self, members: tuple[int, ...]) -> exp.Expr:
        """One row per (cell, person, line): a care line's amount once (all its rows carry the same value), a
        detail amount summed over the care line's detail rows in the cell, with how many rows had one."""
        group = [exp.column(f"d{i}") for i in members]
        person = self.person()
        if not self.care_lines_repeat:
            cols: list[exp.Expr] = [*group, *person]
            for name in self.amounts:
                a = exp.column(f"a_{name}")
                cols.append(exp.alias_(a.copy(), f"a_{name}"))
                cols.append(exp.alias_(exp.cast(exp.Not(this=exp.Is(this=a, expression=exp.null())), "INTEGER"),
                                       f"c_{name}"))  # fmt: skip
            return exp.Subquery(this=exp.select(*cols).from_("base"), alias=exp.TableAlias(this=exp.to_identifier("l")))
        cols = [*group, *person, exp.column("cid")]
        for name in self.amounts:
            a = exp.column(f"a_{name}")
            if self.amount_tables[name] == CARE_TABLE:
                cols.append(exp.alias_(exp.Max(this=a), f"a_{name}"))
                cols.append(exp.alias_(exp.cast(exp.Not(this=exp.Is(this=exp.Max(this=a.copy()),
                                                                     expression=exp.null())), "INTEGER"),
                                       f"c_{name}"))  # fmt: skip
            else:
                cols.append(exp.alias_(exp.Sum(this=a), f"a_{name}"))
                cols.append(exp.alias_(exp.Count(this=a.copy()), f"c_{name}"))
        query = exp.select(*cols).from_("base").group_by(*group, *self.person(), exp.column("cid"))
        return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("l")))

    def person(self) -> list[exp.Expr]:
        """The columns naming a person in the request's rows: ``pid``, and with keyed rows its record key (the same
        for all rows of a person, so grouping on both makes the same groups)."""
        return [exp.column("pid"), exp.column("rkey")] if self.keyed_rows else [exp.column("pid")]

    @property
    def amounts(self) -> list[str]:
        return sorted({m.of for m in self.spec.measures if m.of})

    def grouping_set(self, members: tuple[int, ...], n: int) -> exp.Select:
        """Cells of one grouping set: dimensions not in ``members`` carry the total code."""
        group = [exp.column(f"d{i}") for i in members]
        per_person: list[exp.Expr] = [exp.column(f"d{i}") for i in members] + [
            *self.person(),
            exp.alias_(exp.Count(this=exp.Star()), "ev"),
        ]
        amounts = self.amounts
        for name in amounts:
            per_person.append(exp.alias_(exp.Sum(this=exp.column(f"a_{name}")), f"s_{name}"))
            per_person.append(exp.alias_(exp.Sum(this=exp.column(f"c_{name}")), f"n_{name}"))
        pp = exp.select(*per_person).from_(self.lines(members)).group_by(*group, *self.person())

        def top2(column: str) -> exp.Expr:
            return exp.Anonymous(this="max", expressions=[exp.column(column, table="pp"), exp.Literal.number(2)])

        cells: list[exp.Expr] = [
            exp.alias_(exp.column(f"d{i}", table="pp") if i in members else exp.Literal.string(TOTAL), f"d{i}")
            for i in range(n)
        ]
        rkey = exp.column("rkey", table="pp" if self.keyed_rows else "k")
        cells += [
            # pp holds one row per (cell, person) and the key table one row per person: counting rows counts
            # people, without the hash set per cell a DISTINCT would build.
            exp.alias_(exp.Count(this=exp.Star()), "people"),
            exp.alias_(exp.Sum(this=exp.column("ev", table="pp")), "events"),
            exp.alias_(top2("ev"), "top_events"),
            exp.alias_(exp.Mod(this=exp.Sum(this=rkey), expression=exp.Literal.number(KEY_MODULUS)), "cell_key"),
            exp.alias_(exp.Min(this=rkey.copy()), "anchor_key"),
        ]
        for name in amounts:
            cells.append(exp.alias_(exp.Sum(this=exp.column(f"s_{name}", table="pp")), f"sum_{name}"))
            cells.append(exp.alias_(exp.Sum(this=exp.column(f"n_{name}", table="pp")), f"n_{name}"))
            cells.append(exp.alias_(top2(f"s_{name}"), f"top_{name}"))
        if self.keep_members and len(members) == n:
            # One row per (cell, person) here, so the list holds each person's key once. Only the finest cells:
            # every event row lies in exactly one, so a margin's people (and the population) are their unions.
            cells.append(exp.alias_(exp.func("list", rkey.copy()), "members"))
        query = exp.select(*cells).from_(exp.Subquery(this=pp, alias=exp.TableAlias(this=exp.to_identifier("pp"))))
        if not self.keyed_rows:
            query = query.join(
                exp.to_table(RKEY_TABLE).as_("k"),
                on=exp.EQ(this=exp.column(PSEUDONYM_COLUMN, table="k"), expression=exp.column("pid", table="pp")),
            )
        query = query.group_by(*[exp.column(f"d{i}", table="pp") for i in members])
        quantiles = [m for m in self.spec.measures if m.kind == "quantile"]
        if not quantiles:
            return query
        q_cols: list[exp.Expr] = [exp.column(f"d{i}") for i in members]
        for m in quantiles:
            q_cols.append(exp.alias_(
                exp.func("quantile_cont", exp.column(f"a_{m.of}"), exp.Literal.number(m.q)), f"q_{m.name}"
            ))  # fmt: skip
        source: exp.Expr = exp.to_table("base")
        if self.care_lines_repeat and any(self.amount_tables[m.of or ""] == CARE_TABLE for m in quantiles):
            if any(self.amount_tables[m.of or ""] != CARE_TABLE for m in quantiles):
                raise SpecError(
                    N_(
                        "quantiles of care-line and detail-line amounts cannot be mixed under a drug or act "
                        "dimension: they are taken over different rows; ask for them in two specs"
                    )
                )
            source = self.lines(members)  # one value per care line and cell, not one per detail row
        qs = exp.select(*q_cols).from_(source).group_by(*[exp.column(f"d{i}") for i in members])
        # Bounds of the rule 'threshold distinct people strictly on each side' over the same rows: per person their
        # smallest and largest value in the cell, then the threshold-th smallest of the first, largest of the second.
        quantiled = sorted({m.of or "" for m in quantiles})
        extremes: list[exp.Expr] = [*(exp.column(f"d{i}") for i in members), exp.column("pid")]
        for of in quantiled:
            extremes.append(exp.alias_(exp.Min(this=exp.column(f"a_{of}")), f"lo_{of}"))
            extremes.append(exp.alias_(exp.Max(this=exp.column(f"a_{of}")), f"hi_{of}"))
        by_person = (
            exp.select(*extremes).from_(source.copy()).group_by(*[exp.column(f"d{i}") for i in members],
                                                                 exp.column("pid"))
        )  # fmt: skip
        t = exp.Literal.number(self.threshold)
        b_cols: list[exp.Expr] = [exp.column(f"d{i}") for i in members]
        for of, (side, extreme, pick) in (
            (of, x) for of in quantiled for x in (("lo", "min", "list_max"), ("hi", "max", "list_min"))
        ):
            nth = exp.Anonymous(this=extreme, expressions=[exp.column(f"{side}_{of}"), t.copy()])
            b_cols.append(exp.alias_(exp.If(
                this=exp.GTE(this=exp.func("len", nth), expression=t.copy()),
                true=exp.Anonymous(this=pick, expressions=[nth.copy()]), false=exp.null(),
            ), f"{side}_{of}"))  # fmt: skip
        bounds = (
            exp.select(*b_cols)
            .from_(exp.Subquery(this=by_person, alias=exp.TableAlias(this=exp.to_identifier("pq"))))
            .group_by(*[exp.column(f"d{i}") for i in members])
        )
        outer: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier("c"))]
        outer += [exp.column(f"q_{m.name}", table="q") for m in quantiles]
        outer += [exp.column(f"{side}_{of}", table="qb") for of in quantiled for side in ("lo", "hi")]

        def on(other: str) -> exp.Expr:
            if not members:
                return exp.true()
            return exp.and_(*[exp.EQ(this=exp.column(f"d{i}", table="c"), expression=exp.column(f"d{i}", table=other))
                              for i in members])  # fmt: skip

        return (
            exp.select(*outer)
            .from_(exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier("c"))))
            .join(exp.Subquery(this=qs, alias=exp.TableAlias(this=exp.to_identifier("q"))), on=on("q"))
            .join(exp.Subquery(this=bounds, alias=exp.TableAlias(this=exp.to_identifier("qb"))), on=on("qb"))
        )

    def compile(self) -> exp.Expr:
        base = self.base()
        n = len(self.spec.group_by)
        sets = [tuple(range(n))]
        if self.spec.totals:
            sets = [c for size in range(n, -1, -1) for c in combinations(range(n), size)]
        parts: list[exp.Select] = [self.grouping_set(s, n) for s in sets]
        for i in range(n):  # the code lists, for the full grid
            codes = exp.Subquery(this=self.codes(i), alias=exp.TableAlias(this=exp.to_identifier("cl")))
            parts.append(exp.select(exp.alias_(exp.Literal.string(CODE_ROW), "part"),
                                    exp.alias_(exp.column("code", table="cl"), f"d{i}")).from_(codes))  # fmt: skip
        union: exp.Expr = parts[0]
        for part in parts[1:]:
            union = exp.union(union, part, distinct=False)
            union.set("by_name", True)  # code rows have only a part and one dimension; the rest is NULL
        return (
            exp.select("*")
            .from_(exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("cells"))))
            .with_("base", as_=base)
        )


def compile_aggregate(
    spec: AggregateSpec,
    view: Mapping[str, list[str]],
    *,
    reference_year: int,
    record_keys: pa.Table,
    threshold: int = DEFAULT_THRESHOLD,
    code_lists: Mapping[str, pa.Table] | None = None,
    members: bool = False,
) -> AggregatePlan:
    """The query for ``spec`` over a view whose tables hold ``view`` columns; raises :class:`SpecError`.
    ``threshold`` is the project's disclosure threshold: it decides the listed codes and the quantile bounds.
    ``code_lists``: lists computed beforehand for this view (:mod:`hygie.analysis.codelists`). ``members``: see
    :attr:`AggregatePlan.members`."""
    compiler = _Compiler(spec, view, reference_year, threshold, code_lists, members, keyed=True)
    tree = compiler.compile()
    auxiliary: dict[str, pa.Table] = {RKEY_TABLE: _numbered(record_keys), **compiler.code_tables}
    if DRUG_TABLE in compiler.tables:
        auxiliary[DRUGS_TABLE] = _drug_atc()
    query = CompiledQuery(tree, frozenset(compiler.tables), auxiliary, joins_as_written=True)
    return AggregatePlan(spec, query, threshold, dict(code_lists or {}), members)


def _numbered(record_keys: pa.Table) -> pa.Table:
    """The record-key table with its people's numbers (:data:`PERSON_NUMBER`), added once."""
    if PERSON_NUMBER in record_keys.column_names:
        return record_keys
    import numpy as np

    return record_keys.append_column(PERSON_NUMBER, pa.array(np.arange(record_keys.num_rows, dtype=np.int32)))


def output_table(plan: AggregatePlan, result: pa.Table) -> OutputTable:
    """The run's result as the disclosure layer's input: people, values, keys and top contributions per cell."""
    spec = plan.spec
    n = len(spec.group_by)
    measures: list[Measure] = []
    for m in spec.measures:
        if m.kind != "people":
            measures.append(Measure(m.name, _KINDS[m.kind], m.q))
    cells = []
    listed: list[set[str]] = [set() for _ in range(n)]
    for row in result.to_pylist():
        if row.get("part") == CODE_ROW:
            for i in range(n):
                if row[f"d{i}"] is not None:
                    listed[i].add(str(row[f"d{i}"]))
            continue
        key = tuple(str(row[f"d{i}"]) for i in range(n))
        bounds: dict[str, tuple[float | None, float | None]] = {}
        values: dict[str, float | None] = {}
        tops: dict[str, tuple[float, ...]] = {}
        for m in spec.measures:
            if m.kind == "events":
                values[m.name] = float(row["events"])
                tops[m.name] = tuple(float(v) for v in row["top_events"] or ())
            elif m.kind in ("sum", "mean"):
                total = row[f"sum_{m.of}"]
                count = row[f"n_{m.of}"]
                if m.kind == "sum":
                    values[m.name] = None if total is None else float(total)
                else:
                    values[m.name] = None if total is None or not count else float(total) / float(count)
                # A person's contribution to a mean is their share of it: their amounts over the cell's lines.
                share = 1.0 if m.kind == "sum" or not count else 1.0 / float(count)
                tops[m.name] = tuple(float(v) * share for v in row[f"top_{m.of}"] or () if v is not None)
            elif m.kind == "quantile":
                value = row[f"q_{m.name}"]
                values[m.name] = None if value is None else float(value)
                low, high = row[f"lo_{m.of}"], row[f"hi_{m.of}"]
                bounds[m.name] = (None if low is None else float(low), None if high is None else float(high))
        cells.append(Cell(key, int(row["people"]), values, int(row["cell_key"]), int(row["anchor_key"]), tops, bounds))
    dimensions = tuple(
        Dimension(d.label, total=TOTAL if spec.totals else None, codes=(*sorted(listed[i] - {OTHER}), OTHER))
        for i, d in enumerate(spec.group_by)
    )
    return OutputTable(
        dimensions=dimensions,
        measures=tuple(measures),
        cells=tuple(cells),
        release_people=any(m.kind == "people" for m in spec.measures),
        people_additive=all(d.name in PERSON_LEVEL for d in spec.group_by),
        bounds_threshold=plan.threshold,
    )
