# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Row-level SQL outputs, recognised whatever their disguise, before anything runs.

A researcher's SQL may only produce aggregates. :func:`check_row_level` traces, on the checked SQLGlot tree, where
each output column's value comes from (static lineage through CTEs, subqueries, joins, set operations, aliases,
lateral sources, UNNEST and star expansion, after SQLGlot's ``qualify`` resolved every column against the view's
tables) and what each output row stands for. It refuses:

- an output column whose value depends on a person-level key column (:data:`KEY_COLUMNS`: the pseudonym and the
  claim key) except through a counting aggregate (``count``, ``count(DISTINCT ...)``, ``count_if``,
  ``approx_count_distinct``): ``md5(BEN_NIR_PSA)``, ``reverse(...)``, ``CAST``, ``||``, ``substr``, ``hash``,
  ``list``/``string_agg``/``first``/``any_value``/``min``/``max``/``arg_max`` over a key, a CASE on it... all carry
  the key;
- an output with one row per key: grouped by a key or by any expression of one (``GROUP BY BEN_NIR_PSA``, ``GROUP BY
  md5(...)``, cubes and grouping sets included), ``DISTINCT ON`` a key, or ``DISTINCT`` over a window partitioned by
  a key;
- an output that aggregates nothing: each of its rows is a row of a view table (``SELECT ... FROM ER_PRS_F`` without
  an aggregate function among its outputs; DISTINCT, UNION/INTERSECT/EXCEPT, a GROUP BY alone, windows and QUALIFY
  summarise nothing, and a per-person value made DISTINCT stays per person), or a scalar subquery picking one row.

Filters and join conditions on keys are not outputs and pass (``JOIN ... USING (BEN_NIR_PSA)``); so do keys used
inside a derived table that is aggregated away outside (per-person totals counted by band). What this check cannot
see (a grouping on a near-unique value that is not a key, such as an exact amount) the data check after running
catches when the output has about one row per person (``analysis_row_level_fraction``), or, when
:func:`partitions_people` says each person is in one row at most, more rows than people / threshold; output checkers
see the rest. The messages name the output column by its name or position in the SQL, never a data value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope

from hygie.governance.policy import CLAIM_KEY
from hygie.i18n import N_
from hygie.ingest.contract import BENEFICIARY_TABLE, PSEUDONYM_COLUMN

log = logging.getLogger("hygie.analysis")
KEY_COLUMNS = (PSEUDONYM_COLUMN, CLAIM_KEY)
"""Person-level keys of a view: the patient pseudonym (one value per person) and the claim key (one per claim). The
other columns of the view contract are attributes (sex, dates, amounts, codes), not identifiers of a person; the
order numbers of detail lines (PHA_ORD_NUM...) and the twin rank only make sense with a claim or a person."""

ONE_ROW = "*row"
"""Lineage label of a value taken from one row of a view table (a scalar subquery without aggregation)."""
ROW_ID = "*rowid"
"""Lineage label of a value unique to each row: row_number() over rows without PARTITION BY, random(), uuid().
Harmless as an output of groups; grouping by it keeps one row per row."""
COLLECTED = "*collected"
"""Lineage label of a value packing one element per row of a view table into one cell (list, string_agg,
histogram...): the row count the data checks see no longer counts them."""
ANY = "*any"
"""Lineage label of a value the tracer could not place (with every key, to assume the worst)."""
LABELS = frozenset({ONE_ROW, ROW_ID, COLLECTED, ANY})

RANKING = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.PercentRank, exp.CumeDist, exp.Ntile)
"""Window functions whose value is a position in the window's order: they carry what the order carries."""
VOLATILE = (exp.Rand, exp.Randn, exp.Randstr, exp.Uuid)
VOLATILE_NAMES = frozenset({"random", "uuid", "gen_random_uuid", "uuidv4", "uuidv7"})

COLLECTING = tuple(
    getattr(exp, name) for name in ("ArrayAgg", "GroupConcat", "ArrayUniqueAgg", "ArrayConcatAgg") if hasattr(exp, name)
)
COLLECTING_NAMES = frozenset(
    {
        "list", "array_agg", "string_agg", "group_concat", "listagg", "histogram", "map_agg", "bitstring_agg",
        "json_group_array", "json_group_object", "json_group_structure",
    }
)  # fmt: skip
"""Aggregates that collect their rows' values into one cell instead of summarising them."""
COUNTING = (exp.Count, exp.ApproxDistinct, exp.CountIf)
COUNTING_NAMES = frozenset({"count", "count_star", "count_if", "countif", "approx_count_distinct"})
"""Aggregates whose value is a number of rows or of distinct values: the only way a key may reach an output."""

AGGREGATE_NAMES = frozenset(
    {
        "histogram", "fsum", "sumkahan", "kahan_sum", "favg", "product", "entropy", "kurtosis", "kurtosis_pop",
        "skewness", "mad", "reservoir_quantile", "approx_quantile", "bitstring_agg", "arbitrary", "bool_and",
        "bool_or", "bit_and", "bit_or", "bit_xor", "geomean", "geometric_mean", "weighted_avg", "wavg", "last",
        "list", "array_agg", "string_agg", "group_concat", "listagg", "count_star", "count_if", "countif",
        "approx_count_distinct", "median", "quantile", "quantile_cont", "quantile_disc", "any_value", "first",
        "min_by", "max_by", "arg_min", "arg_max", "argmin", "argmax", "arg_min_null", "arg_max_null", "mode",
        "regr_count", "regr_avgx", "regr_avgy", "regr_slope", "regr_intercept", "regr_r2", "regr_sxx", "regr_syy",
        "regr_sxy", "covar_pop", "covar_samp", "corr", "stddev", "stddev_pop", "stddev_samp", "var_pop",
        "var_samp", "variance", "sum_no_overflow", "map_agg",
    }
)  # fmt: skip
"""DuckDB aggregates SQLGlot may leave as anonymous functions (the known ones are ``exp.AggFunc``)."""


class Grain(IntEnum):
    """What one output row stands for, from harmless to row-level."""

    AGGREGATE = 0
    """Rows are groups (or constants): an aggregate function over the rows (with or without GROUP BY), VALUES."""
    ROWS = 1
    """Each row is a row of a view table (one care line, one beneficiary)."""
    KEYED = 2
    """One row per person or claim: grouped by (an expression of) a key."""


@dataclass(frozen=True)
class Shape:
    """A query's output as far as lineage goes."""

    names: tuple[str, ...]
    """Output column names as SQLGlot qualified them (lower case; ``_col_<i>`` for unnamed expressions)."""
    keys: tuple[frozenset[str], ...]
    """For each output column, the view columns (``TABLE.COLUMN``) and labels (:data:`LABELS`) its value derives
    from; counts carry nothing."""
    grain: Grain
    why: str
    """For a row-level grain, what makes it so (a table, a key), for the message."""
    partition: bool = False
    """Each person of the view is in at most one row: the rows are grouped by the beneficiary table's own columns
    (one value per person), with no grouping sets."""

    def key_of(self, name: str) -> frozenset[str] | None:
        lowered = name.lower()
        for n, k in zip(self.names, self.keys, strict=True):
            if n.lower() == lowered:
                return k
        return None

    def every_key(self) -> frozenset[str]:
        return frozenset().union(*self.keys) if self.keys else frozenset()


class RowLevel(Exception):
    """The output would be row-level; ``message`` names the output column or the grouping, never a value."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _key(entry: str) -> str | None:
    """The key column a lineage entry names, if any."""
    column = entry.rsplit(".", 1)[-1]
    return column if column in KEY_COLUMNS else None


def _keys(entries: Iterable[str]) -> list[str]:
    return sorted({k for k in map(_key, entries) if k is not None})


def _and(names: Sequence[str]) -> str:
    """Column names as one phrase, "A and B and C", its "and" translatable."""
    if len(names) <= 1:
        return "".join(names)
    return N_("{first} and {rest}", first=names[0], rest=_and(names[1:]))


def _schema(tables: Mapping[str, Sequence[str]]) -> dict[str, object]:
    return {table: {column: "VARCHAR" for column in columns} for table, columns in tables.items()}


def trace(tree: exp.Expr, tables: Mapping[str, Sequence[str]]) -> Shape:
    """The output shape of ``tree`` (not modified) over the view ``tables`` (table -> its columns, in order)."""
    try:
        qualified = qualify(
            tree.copy(), schema=_schema(tables), dialect="duckdb", quote_identifiers=False, identify=False
        )
        root = build_scope(qualified)
    except (SqlglotError, RecursionError) as exc:
        first = str(exc).splitlines()[0][:200]
        raise RowLevel(
            N_(
                "the platform could not trace the output columns back to the view ({error}): name every column "
                "explicitly, from the view's tables",
                error=first,
            )
        ) from exc
    if root is None:
        raise RowLevel(N_("the platform could not trace the output columns back to the view: send one SELECT"))
    try:
        return _Tracer(tables).shape(root)
    except RowLevel:
        raise
    except Exception as exc:  # a shape the tracer does not know (or too deep): refused, never let through
        log.warning("row-level tracing failed (%s); the SQL is refused", type(exc).__name__)
        raise RowLevel(
            N_(
                "the platform could not trace the output columns back to the view: write the query more plainly "
                "(named columns, fewer levels)"
            )
        ) from exc


def check_row_level(tree: exp.Expr, tables: Mapping[str, Sequence[str]]) -> None:
    """Raise :class:`RowLevel` when ``tree``'s output carries a key or is not an aggregate (see the module)."""
    shape = trace(tree, tables)
    labels = _labels(tree, shape)
    for label, keys in zip(labels, shape.keys, strict=True):
        if _keys(keys):
            named = _and(_keys(keys))
            raise RowLevel(
                N_(
                    "output column {column} derives from {keys}, a per-person or per-claim key (hashed, cast, "
                    "reversed, cut or collected, it still singles people out): row-level data never leaves; keys may "
                    "only be counted (count(DISTINCT ...)) or used to join and filter",
                    column=label,
                    keys=named,
                )
            )
        if COLLECTED in keys:
            raise RowLevel(
                N_(
                    "output column {column} packs the rows or values of a view table into one cell (list, "
                    "string_agg, histogram...), out of sight of the row checks: row-level data never leaves; group "
                    "with GROUP BY and count instead",
                    column=label,
                )
            )
        if ONE_ROW in keys:
            raise RowLevel(
                N_(
                    "output column {column} is one row's value of a view table (a subquery without aggregation): "
                    "row-level data never leaves; aggregate it",
                    column=label,
                )
            )
    if shape.grain == Grain.KEYED:
        raise RowLevel(
            N_(
                "the output has one row per person, claim or line ({why}): row-level data never leaves; group by "
                "attributes (sex, age band, region, month...) and count the keys instead",
                why=shape.why,
            )
        )
    if shape.grain == Grain.ROWS:
        raise RowLevel(
            N_(
                "the output is not an aggregate: each of its rows is a row of {table} (DISTINCT, UNION, INTERSECT, "
                "EXCEPT or a GROUP BY without an aggregate function among the outputs summarise nothing): row-level "
                "data never leaves; aggregate with GROUP BY and count(DISTINCT BEN_NIR_PSA), sum(...), avg(...)",
                table=shape.why,
            )
        )


def partitions_people(tree: exp.Expr, tables: Mapping[str, Sequence[str]]) -> bool:
    """Whether each person of the view is in at most one row of ``tree``'s output (grouped by the beneficiary
    table's own columns): then more rows than people / threshold means some row describes fewer than the threshold
    (pigeonhole), which the data check after running refuses."""
    try:
        return trace(tree, tables).partition
    except RowLevel:
        return False


def _labels(tree: exp.Expr, shape: Shape) -> list[str]:
    """How the messages name each output column: the SQL's own name when the columns match one to one."""
    selects = tree.selects if isinstance(tree, exp.Query) else []
    stars = any(p.is_star or isinstance(p, exp.Columns) for p in selects)
    out = []
    for i, name in enumerate(shape.names):
        if not stars and len(selects) == len(shape.names):
            p = selects[i]
            text = p.alias_or_name if p.alias or isinstance(p, exp.Column) else p.sql(dialect="duckdb")
            out.append(f"{i + 1} ({text[:80]!r})")
        else:
            out.append(f"{i + 1} ({name[:80]!r})")
    return out


def _grouped_by(labels: Iterable[str]) -> str:
    """Why an output is keyed: the keys it is grouped by, and any value unique to each row."""
    named = _and(_keys(labels))
    if ROW_ID not in labels:
        return N_("grouped by {keys}", keys=named)
    if named:
        return N_(
            "grouped by {keys} and a value unique to each row (row_number() without PARTITION BY, random(), uuid())",
            keys=named,
        )
    return N_("grouped by a value unique to each row (row_number() without PARTITION BY, random(), uuid())")


def _is_aggregate(node: exp.Expr) -> bool:
    if isinstance(node, exp.AggFunc):
        return True
    return isinstance(node, exp.Anonymous) and str(node.name).lower() in AGGREGATE_NAMES


def _is_counting(node: exp.Expr) -> bool:
    if isinstance(node, COUNTING):
        return True
    return isinstance(node, exp.Anonymous) and str(node.name).lower() in COUNTING_NAMES


def _walk_here(node: exp.Expr) -> Iterable[exp.Expr]:
    """The nodes of one expression, not entering nested queries."""
    yield node
    for child in node.iter_expressions():
        if isinstance(child, (exp.Query, exp.Subquery)):
            continue
        yield from _walk_here(child)


class _Tracer:
    def __init__(self, tables: Mapping[str, Sequence[str]]) -> None:
        keys = {k.upper() for k in KEY_COLUMNS}
        self.tables = {t.upper(): [c.upper() for c in cols] for t, cols in tables.items()}
        self.keys = keys
        self.memo: dict[int, Shape] = {}
        self.worst = frozenset(f"*.{k}" for k in keys) | {ANY}
        self.person_prefix = f"{BENEFICIARY_TABLE.upper()}."
        self.rowwise: dict[int, bool] = {}
        self.over_rows: dict[int, bool] = {}
        """Per select scope: its sources are rows of a view table (or one row per key), before any grouping."""
        """Per select scope: it keeps one row per row of a view table (a row number there is a row identifier)."""

    # -- scopes -----------------------------------------------------------------------------------------

    def shape(self, scope: Scope) -> Shape:
        cached = self.memo.get(id(scope))
        if cached is not None:
            return cached
        e = scope.expression
        if isinstance(e, exp.SetOperation):
            shape = self._set_operation(scope, e)
        elif isinstance(e, exp.Select):
            shape = self._select(scope, e)
        elif isinstance(e, exp.Values):
            names = tuple(self._alias_columns(e) or [])
            shape = Shape(names, tuple(frozenset() for _ in names), Grain.AGGREGATE, "")
        else:  # UNNEST, LATERAL or another table function: every column may carry what its arguments carry
            carried = self._taint(e, scope, {})
            names = tuple(self._alias_columns(e) or [str(e.alias_or_name) or "_"])
            shape = Shape(names, tuple(carried for _ in names), Grain.AGGREGATE, "")
        if scope.outer_columns and len(scope.outer_columns) == len(shape.names):
            shape = Shape(tuple(scope.outer_columns), shape.keys, shape.grain, shape.why)
        self.memo[id(scope)] = shape
        return shape

    @staticmethod
    def _alias_columns(e: exp.Expr) -> list[str] | None:
        alias = e.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.columns:
            return [str(c.name) for c in alias.columns]
        return None

    def _set_operation(self, scope: Scope, e: exp.SetOperation) -> Shape:
        parts = [self.shape(s) for s in scope.set_operation_scopes]
        if not parts:
            raise RowLevel(N_("the platform could not trace the branches of a UNION/INTERSECT/EXCEPT"))
        left = parts[0]
        keys = list(left.keys)
        for other in parts[1:]:
            if e.args.get("by_name"):
                for i, name in enumerate(left.names):
                    keys[i] = keys[i] | (other.key_of(name) or other.every_key())
            elif len(other.keys) == len(keys):
                keys = [a | b for a, b in zip(keys, other.keys, strict=True)]
            else:
                keys = [k | other.every_key() for k in keys]
        grain = max(p.grain for p in parts)
        why = next((p.why for p in parts if p.grain == grain), "")
        # UNION, INTERSECT and EXCEPT remove duplicates as DISTINCT does, which summarises nothing: each branch is
        # judged on its own, and rows of a view table (or one row per key) in any branch stay so in the output.
        if self._recursive(scope):
            merged = frozenset().union(*keys) if keys else frozenset()
            keys = [merged for _ in keys]  # a recursive step may move any column into any other
        return Shape(left.names, tuple(keys), grain, why)

    @staticmethod
    def _recursive(scope: Scope) -> bool:
        parent = scope.expression.parent
        while parent is not None and not isinstance(parent, exp.With):
            parent = parent.parent
        return isinstance(parent, exp.With) and bool(parent.args.get("recursive"))

    def _select(self, scope: Scope, e: exp.Select) -> Shape:
        group = e.args.get("group")
        distinct = e.args.get("distinct")
        having = e.args.get("having")
        aggregates = any(
            _is_aggregate(n) and n.find_ancestor(exp.Window) is None
            for p in [*e.expressions, *([having] if having else [])]
            for n in _walk_here(p)
        )
        summarised = any(
            _is_aggregate(n) and n.find_ancestor(exp.Window) is None for p in e.expressions for n in _walk_here(p)
        )
        """An aggregate function among the outputs: the only thing that turns rows into groups. DISTINCT, a GROUP
        BY alone (``GROUP BY ALL``) or an aggregate only in HAVING keep one output row per distinct row."""
        aggregating = group is not None or distinct is not None or aggregates
        grain, why = Grain.AGGREGATE, ""
        for relation in self._relations(e):
            source = scope.sources.get(str(relation.alias_or_name))
            if isinstance(source, Scope):
                inner = self.shape(source)
                g, w = inner.grain, inner.why
            elif isinstance(source, exp.Table):
                g, w = Grain.ROWS, str(source.name).upper()
            else:
                continue
            if g > grain:
                grain, why = g, w
        self.rowwise[id(scope)] = not aggregating and grain > Grain.AGGREGATE
        self.over_rows[id(scope)] = grain > Grain.AGGREGATE
        aliases: dict[str, frozenset[str]] = {}
        names: list[str] = []
        keys: list[frozenset[str]] = []
        for projection in e.expressions:
            k = self._taint(projection, scope, aliases)
            name = str(projection.alias_or_name)
            aliases[name.lower()] = k
            names.append(name)
            keys.append(k)
        if not aggregating:
            relations = self._relations(e)
            only = scope.sources.get(str(relations[0].alias_or_name)) if len(relations) == 1 else None
            partition = isinstance(only, Scope) and self.shape(only).partition  # a filter or projection of one
            return Shape(tuple(names), tuple(keys), grain, why, partition)
        by: set[str] = set()
        if group is not None:
            by |= self._taint(group, scope, aliases)
            if group.args.get("all"):
                for p, k in zip(e.expressions, keys, strict=True):
                    if not any(_is_aggregate(n) for n in _walk_here(p)):
                        by |= k
        if isinstance(distinct, exp.Distinct):
            on = distinct.args.get("on")
            if on is not None:
                by |= self._taint(on, scope, aliases)
            elif group is None and not aggregates:
                by |= frozenset().union(*keys) if keys else frozenset()
                by |= self._partitions(e, scope, aliases)
        keyed = set(_keys(by)) | (by & {ROW_ID})
        if keyed:
            return Shape(tuple(names), tuple(keys), Grain.KEYED, _grouped_by(keyed))
        if grain > Grain.AGGREGATE and not summarised:  # rows (or per-person values) made distinct are still them
            return Shape(tuple(names), tuple(keys), grain, why)
        sets = group is not None and (
            any(group.args.get(a) for a in ("grouping_sets", "cube", "rollup"))
            or any(isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets)) for g in group.expressions)
        )
        grouped = group is not None or (distinct is not None and not aggregates)
        partition = grouped and not sets and all(b.startswith(self.person_prefix) for b in by)
        return Shape(tuple(names), tuple(keys), Grain.AGGREGATE, "", partition)

    @staticmethod
    def _relations(e: exp.Select) -> list[exp.Expr]:
        out: list[exp.Expr] = []
        from_ = e.args.get("from_")
        if from_ is not None:
            out.append(from_.this)
        out.extend(join.this for join in e.args.get("joins") or [])
        out.extend(e.args.get("laterals") or [])
        return out

    def _partitions(self, e: exp.Select, scope: Scope, aliases: dict[str, frozenset[str]]) -> frozenset[str]:
        """Keys a window of the projections is partitioned by (DISTINCT over it keeps one row per key)."""
        out: frozenset[str] = frozenset()
        for p in e.expressions:
            for n in _walk_here(p):
                if isinstance(n, exp.Window):
                    for part in n.args.get("partition_by") or []:
                        out |= self._taint(part, scope, aliases)
        return out

    # -- expressions ------------------------------------------------------------------------------------

    def _taint(self, node: exp.Expr, scope: Scope, aliases: dict[str, frozenset[str]]) -> frozenset[str]:
        if isinstance(node, exp.Column):
            if isinstance(node.this, exp.Star):
                return self._everything(scope, str(node.table) or None)
            return self._column(node, scope, aliases)
        if isinstance(node, exp.TableColumn):  # a table named as a value: its whole row
            found = self._source(scope, str(node.name))
            return self._everything(scope, None) if found is None else self._whole(found[0], found[1])
        if _is_counting(node):
            return frozenset()
        collecting = isinstance(node, COLLECTING) or (
            isinstance(node, exp.Anonymous) and str(node.name).lower() in COLLECTING_NAMES
        )
        if collecting and self.over_rows.get(id(scope)):
            packed = frozenset({COLLECTED})
            for child in node.iter_expressions():
                packed |= self._taint(child, scope, aliases)
            return packed
        if isinstance(node, exp.Window):
            value = self._taint(node.this, scope, aliases)  # partitions and filters are not the value...
            if isinstance(node.this, RANKING):  # ...but a rank is a position in the window's order
                value |= self._taint(node.args.get("order") or exp.null(), scope, aliases)
                unique = isinstance(node.this, exp.RowNumber) and not node.args.get("partition_by")
                if unique and self.rowwise.get(id(scope)):
                    value |= {ROW_ID}
            return value
        if isinstance(node, exp.Filter):
            return self._taint(node.this, scope, aliases)
        if isinstance(node, VOLATILE) or (isinstance(node, exp.Anonymous) and node.name.lower() in VOLATILE_NAMES):
            return frozenset({ROW_ID})
        if isinstance(node, (exp.Star, exp.Columns, exp.PositionalColumn)):
            return self._everything(scope, None)
        if isinstance(node, exp.Exists):
            return frozenset()
        if isinstance(node, (exp.Subquery, exp.Query)):
            return self._subquery(node, scope)
        out: frozenset[str] = frozenset()
        for child in node.iter_expressions():
            if isinstance(node, exp.In) and child is node.args.get("query"):
                continue  # x IN (SELECT ...) is a yes or no about x
            out |= self._taint(child, scope, aliases)
        return out

    def _subquery(self, node: exp.Expr, scope: Scope) -> frozenset[str]:
        query = node.unnest() if isinstance(node, exp.Subquery) else node
        for sub in scope.subquery_scopes:
            if sub.expression is query:
                inner = self.shape(sub)
                extra = frozenset({ONE_ROW}) if inner.grain != Grain.AGGREGATE else frozenset()
                return inner.every_key() | extra
        return self.worst | {ONE_ROW}  # not traced: assume the worst

    def _column(self, column: exp.Column, scope: Scope, aliases: dict[str, frozenset[str]]) -> frozenset[str]:
        name = str(column.name)
        parts = [str(p.name) for p in column.parts]
        # The source is named by the column's qualifier, or (struct fields: s.a, t.s.a) by an earlier part.
        for i in range(len(parts) - 1):
            found = self._source(scope, parts[i])
            if found is not None:
                return self._from_source(found[0], found[1], parts[i + 1])
        if len(parts) == 1:
            found = self._source(scope, name)
            if name.lower() in aliases:
                return aliases[name.lower()]
            if found is not None and not self._has_column(found[0], found[1], name):
                return self._whole(found[0], found[1])  # a table named as a value: its whole row
            for s in self._chain(scope):  # an unqualified column the qualifier left: look in every source
                for source in s.sources.values():
                    if self._has_column(source, s, name):
                        return self._from_source(source, s, name)
            return self.worst if name.upper() in self.keys else frozenset()  # a lambda's variable, or a key by name
        return self._everything(scope, None)  # qualified by something that is not a source: assume the worst

    @staticmethod
    def _chain(scope: Scope) -> Iterable[Scope]:
        s: Scope | None = scope
        while s is not None:
            yield s
            s = s.parent

    def _source(self, scope: Scope, name: str) -> tuple[exp.Table | Scope, Scope] | None:
        for s in self._chain(scope):
            for alias, source in s.sources.items():
                if alias.lower() == name.lower():
                    return source, s
        return None

    def _table_columns(self, table: exp.Table) -> list[str] | None:
        columns = self.tables.get(str(table.name).upper())
        if columns is None:
            return None
        renamed = self._alias_columns(table)
        if renamed:
            return [c.upper() for c in renamed] + columns[len(renamed) :]
        return columns

    def _has_column(self, source: exp.Table | Scope, scope: Scope, name: str) -> bool:
        if isinstance(source, Scope):
            return self.shape(source).key_of(name) is not None
        columns = self._table_columns(source)
        return columns is not None and name.upper() in columns

    def _from_source(self, source: exp.Table | Scope, scope: Scope, name: str) -> frozenset[str]:
        if isinstance(source, Scope):
            shape = self.shape(source)
            found = shape.key_of(name)
            return shape.every_key() if found is None else found
        columns = self._table_columns(source)
        if columns is None:
            return self.worst  # not a view table (nor a traced query): assume the worst
        upper = name.upper()
        if upper not in columns:
            return self.worst
        table = str(source.name).upper()
        return frozenset({f"{table}.{self.tables[table][columns.index(upper)]}"})

    def _whole(self, source: exp.Table | Scope, scope: Scope) -> frozenset[str]:
        if isinstance(source, Scope):
            return self.shape(source).every_key()
        table = str(source.name).upper()
        columns = self.tables.get(table)
        return self.worst if columns is None else frozenset(f"{table}.{c}" for c in columns)

    def _everything(self, scope: Scope, only: str | None) -> frozenset[str]:
        """What a star (or COLUMNS(...), #n) can reach: every column of the scope's sources."""
        out: frozenset[str] = frozenset()
        for alias, source in scope.sources.items():
            if only is None or alias.lower() == only.lower():
                out |= self._whole(source, scope)
        return out
