# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""SQL requests: one DuckDB SELECT over the project's own view tables, checked before anything runs.

The text is parsed with SQLGlot and refused, with the reason, when it is anything but a query, when it names a
table that is not one of the view's (files, other schemas or catalogs, other projects, the platform's own
tables), when it reads through a table function (read_parquet, read_csv, glob, query_table...), or calls a
function that reaches settings, the environment or the engine's catalog. What runs is the SQL regenerated from
the checked tree, never the submitted text, so the engine cannot read something the check did not see.
External access is off and the configuration locked in the connection anyway: this check is the first wall.
Last, :mod:`hygie.analysis.rowlevel` traces every output column and row back to the view: an output carrying a
per-person or per-claim key (however disguised), keeping one row per key, or aggregating nothing is refused here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from hygie.analysis.engine import CompiledQuery
from hygie.analysis.rowlevel import RowLevel, check_row_level
from hygie.i18n import N_

FORBIDDEN_FUNCTIONS = frozenset(
    {
        "current_setting", "getenv", "getvariable", "setseed", "error", "glob", "query", "query_table",
        "read_blob", "read_text", "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_json_objects",
        "read_ndjson", "read_ndjson_auto", "read_parquet", "parquet_scan", "parquet_metadata", "parquet_schema",
        "iceberg_scan", "delta_scan", "sniff_csv", "current_database", "current_schema", "current_schemas",
        "current_catalog", "which_secret", "load_extension", "install_extension", "make_timestamp_ns_now",
    }
)  # fmt: skip
"""Functions that reach files, settings, the environment or the catalog, or raise with a data value as message."""
FORBIDDEN_PREFIXES = ("duckdb_", "pragma_", "read_", "sqlite_", "postgres_", "mysql_", "icu_", "json_execute")

STATEMENTS = (exp.Select, exp.Union, exp.Intersect, exp.Except)
WRITES = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Copy, exp.Set, exp.Pragma,
    exp.Command, exp.Use, exp.Attach, exp.Detach, exp.Install, exp.Describe, exp.Summarize, exp.Pivot, exp.Into,
)  # fmt: skip


class SQLRefused(Exception):
    """The SQL was refused before running; ``message`` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def check_sql(text: str, tables: Mapping[str, Sequence[str]] | Iterable[str]) -> CompiledQuery:
    """The checked query over ``tables`` (the project's view tables, with their columns in order; names alone
    stand for every column the contract lets a view hold), or :class:`SQLRefused` saying why."""
    columns = _columns(tables)
    allowed = {t.upper(): t for t in columns}
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as exc:
        raise SQLRefused(N_("the SQL does not parse as DuckDB: {error}", error=str(exc).splitlines()[0])) from exc
    except SqlglotError as exc:  # a string or comment left open (TokenError), or any other reading error
        raise SQLRefused(
            N_("the SQL could not be read as DuckDB (a quote, comment or bracket left open?): check the text")
        ) from exc
    except RecursionError as exc:
        raise SQLRefused(N_("the SQL is nested too deeply to be checked: write it with fewer levels")) from exc
    if len(statements) != 1:
        raise SQLRefused(N_("send exactly one SELECT statement (got {count})", count=len(statements)))
    tree = statements[0]
    if not isinstance(tree, STATEMENTS):
        raise SQLRefused(
            N_(
                "only SELECT queries run here; {statement} statements (settings, PRAGMA, COPY, ATTACH, INSTALL, LOAD, "
                "EXPORT, CREATE...) are refused",
                statement=tree.key.upper(),
            )
        )
    ctes = {str(cte.alias).upper() for cte in tree.find_all(exp.CTE)}
    used: set[str] = set()
    for node in tree.walk():
        if isinstance(node, WRITES):
            raise SQLRefused(
                N_("{statement} is not allowed inside a query: only reading the view is", statement=node.key.upper())
            )
        if isinstance(node, exp.Table):
            _check_table(node, allowed, ctes, used)
        elif isinstance(node, exp.Func):
            name = _function_name(node)
            if name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_PREFIXES):
                raise SQLRefused(
                    N_(
                        "function {function}() is refused: it reaches files, settings, the environment or the "
                        "engine's catalog; use the view's tables only",
                        function=name,
                    )
                )
    try:
        check_row_level(tree, columns)
    except RowLevel as exc:
        raise SQLRefused(exc.message) from exc
    return CompiledQuery(ast=tree, tables=frozenset(used))


def _columns(tables: Mapping[str, Sequence[str]] | Iterable[str]) -> dict[str, list[str]]:
    if isinstance(tables, Mapping):
        return {str(t): list(cs) for t, cs in tables.items()}
    from hygie.governance.policy import selectable_columns

    catalogue = selectable_columns()
    return {t: list(catalogue.get(t.upper(), ())) for t in tables}


def _check_table(node: exp.Table, allowed: dict[str, str], ctes: set[str], used: set[str]) -> None:
    if not isinstance(node.this, exp.Identifier):
        raise SQLRefused(
            N_(
                "table functions ({function}) are refused: read the project's view tables ({tables})",
                function=node.this.sql(dialect="duckdb")[:60],
                tables=", ".join(sorted(allowed.values())),
            )
        )
    if node.args.get("db") or node.args.get("catalog"):
        raise SQLRefused(
            N_(
                "{table} names a schema or catalog: only the project's own view tables ({tables}) can be read, "
                "without a qualifier",
                table=node.sql(dialect="duckdb")[:80],
                tables=", ".join(sorted(allowed.values())),
            )
        )
    name = str(node.name).upper()
    if name in ctes:
        return
    if name not in allowed:
        raise SQLRefused(
            N_(
                "{table} is not a table of this project's view (files, other projects' and the platform's tables "
                "cannot be read); its tables are {tables}",
                table=repr(node.name),
                tables=", ".join(sorted(allowed.values())),
            )
        )
    used.add(allowed[name])
