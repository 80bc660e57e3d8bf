# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The Spark engine: the same compiled query (one SQLGlot AST) run by Apache Spark over the project's view.

The view's encrypted Parquet files are read by Spark itself (:func:`hygie.governance.spark_views.open_view_spark`)
inside a custody grant that names the project's view key only: the Java KMS client asks custody to unwrap each
file's key over the authenticated channel, and no key is put in Spark's configuration. The compiled AST is rendered
in Spark's own SQL dialect by SQLGlot (the query model is the AST; neither engine's text is translated into the
other's), the platform's auxiliary tables (record keys, drug referential) are registered as temporary views for
this run only, and the result comes back as an Arrow table shaped as the DuckDB engine returns it, so disclosure
control runs on the per-cell output exactly as on DuckDB.

Limits: the wall-clock limit cancels the run's job group; Spark's memory is the cluster's (executor memory is a
deployment setting, see docs/spark.md), so ``limits.memory_mb`` is not applied per run here.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hygie.analysis.engine import CompiledQuery, Limits, QueryStopped, RunResult, failed
from hygie.governance.models import Project
from hygie.hub import Hub
from hygie.i18n import N_

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_RUNS = itertools.count(1)
_NAME_LOCK = threading.Lock()
"""Temporary views are global to the Spark session: each run prefixes its own, so concurrent runs never see
another run's tables."""


def _prefixed(ast: Any, names: dict[str, str]) -> Any:
    """The AST with every reference to a view or auxiliary table renamed to this run's temporary view."""
    from sqlglot import exp

    def rename(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name.upper() in names:
            alias = node.alias or node.name
            return exp.Table(
                this=exp.to_identifier(names[node.name.upper()]), alias=exp.TableAlias(this=exp.to_identifier(alias))
            )
        return node

    return ast.copy().transform(rename)


def _for_spark(ast: Any) -> Any:
    """The AST with DuckDB's list aggregates expressed in Spark's functions (same semantics, nulls ignored):
    ``max(x, n)``/``min(x, n)`` (the n largest/smallest values, in order) as a sorted ``collect_list`` sliced to n,
    ``len`` of such a list as ``size``, ``list_max``/``list_min`` as ``array_max``/``array_min``, the aggregate
    ``list(x)`` as ``collect_list``, and
    ``quantile_cont`` as Spark's exact ``percentile`` (both interpolate linearly between order statistics)."""
    from sqlglot import exp

    def top(node: exp.Expr) -> exp.Expr | None:
        if isinstance(node, exp.Anonymous) and node.name.lower() in ("max", "min") and len(node.expressions) == 2:
            value, n = node.expressions
            ordered = exp.Anonymous(
                this="sort_array",
                expressions=[
                    exp.Anonymous(this="collect_list", expressions=[value.copy()]),
                    exp.false() if node.name.lower() == "max" else exp.true(),
                ],
            )
            return exp.Anonymous(this="slice", expressions=[ordered, exp.Literal.number(1), n.copy()])
        return None

    def inner(node: exp.Expr) -> exp.Expr:
        # sqlglot does not descend into a node that replaced another: its arguments are rewritten here.
        return node.transform(rewrite)

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Length) and top(node.this) is not None:
            return exp.Anonymous(this="size", expressions=[inner(node.this)])
        replaced = top(node)
        if replaced is not None:
            return replaced
        if isinstance(node, exp.Anonymous) and node.name.lower() in ("list_max", "list_min"):
            return exp.Anonymous(
                this="array_" + node.name.lower()[5:], expressions=[inner(e) for e in node.expressions]
            )
        if isinstance(node, exp.List) and len(node.expressions) == 1:  # the ledger's members of a cell
            return exp.Anonymous(this="collect_list", expressions=[inner(node.expressions[0])])
        if isinstance(node, exp.Anonymous) and node.name.lower() == "quantile_cont":
            return exp.Anonymous(this="percentile", expressions=[inner(e) for e in node.expressions])
        return node

    return ast.transform(rewrite)


def _parts(ast: Any) -> tuple[Any, list[Any]]:
    """``(base, parts)`` of the compiler's top level ``WITH base AS (...) SELECT * FROM (p1 UNION ALL BY NAME p2
    ...)``: Spark's SQL has no union by name, so the parts run as separate queries over the same ``base`` view and
    are unioned by name through the DataFrame API. Any other shape is one part without a ``base``."""
    from sqlglot import exp

    with_ = ast.args.get("with_") or ast.args.get("with")
    source = ast.args.get("from_") or ast.args.get("from")
    inner = source.this.this if source is not None and isinstance(source.this, exp.Subquery) else None
    if with_ is None or not isinstance(inner, exp.Union) or not inner.args.get("by_name"):
        return None, [ast]
    (cte,) = with_.expressions
    parts: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, exp.Union):
            walk(node.this)
            walk(node.expression)
        else:
            parts.append(node)

    walk(inner)
    return cte.this, parts


_UNKNOWN = re.compile(r"`?([A-Za-z_][A-Za-z0-9_]*)`? cannot be resolved|UNRESOLVED_COLUMN[^`]*`([A-Za-z0-9_]+)`")


class SparkEngine:
    """Runs a compiled query on Spark (``local[2]`` or the cluster of ``HYGIE_SPARK_MASTER``)."""

    name = "spark"

    def __init__(self, hub: Hub, spark: SparkSession | None = None) -> None:
        self.hub = hub
        self._spark = spark

    def _session(self) -> SparkSession:
        if self._spark is None:
            from hygie.warehouse.spark import spark_session

            self._spark = spark_session(self.hub)
        return self._spark

    def run(self, project: Project, query: CompiledQuery, limits: Limits) -> RunResult:
        from pyspark.errors import AnalysisException, ParseException

        from hygie.governance.spark_views import open_view_spark
        from hygie.governance.views import ViewError, project_view_key
        from hygie.warehouse.spark import CustodyRefused, custody_grant

        spark = self._session()
        with _NAME_LOCK:
            run = next(_RUNS)
        prefix = f"hygie_run{run}_"
        names: dict[str, str] = {}
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            with (
                self.hub.session() as session,
                custody_grant(
                    self.hub,
                    [project_view_key(project.id)],
                    actor="analysis",
                    project_id=project.id,
                    purpose="analysis",
                ) as grant,
            ):
                frames = open_view_spark(self.hub, session, project, spark, grant)
                for table, df in frames.items():
                    names[table.upper()] = prefix + table.lower()
                    df.createOrReplaceTempView(names[table.upper()])
                for table, arrow in query.auxiliary.items():
                    names[table.upper()] = prefix + table.lower()
                    spark.createDataFrame(arrow).createOrReplaceTempView(names[table.upper()])
                base, parts = _parts(_for_spark(_prefixed(query.ast, names)))
                if base is not None:
                    names["BASE"] = prefix + "base"
                    try:  # analysed, not run: no row is read here
                        base_df = spark.sql(base.sql(dialect="spark"))
                    except (AnalysisException, ParseException) as exc:
                        raise _invalid(exc) from exc
                    base_df.createOrReplaceTempView(names["BASE"])
                sqls = [_prefixed(p, names).sql(dialect="spark") for p in parts]
                result = self._collect(spark, sqls, limits, grant)
        except QueryStopped:
            raise
        except CustodyRefused as exc:
            raise QueryStopped(
                N_(
                    "custody refused a key this run needs: nothing was computed; an operator must check key custody "
                    "(`hygie keys list`) before the run is tried again"
                ),
                reason="runtime",
            ) from exc
        except ViewError as exc:
            raise QueryStopped(
                exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc), reason="invalid"
            ) from exc
        finally:
            for view in names.values():
                spark.catalog.dropTempView(view)
        return RunResult(result, time.perf_counter() - started, time.thread_time() - cpu)

    def _collect(self, spark: SparkSession, sqls: list[str], limits: Limits, grant: Any) -> pa.Table:
        from pyspark.errors import AnalysisException, ParseException

        sc = spark.sparkContext
        group = f"hygie-{id(grant)}-{time.monotonic_ns()}"
        stopped = threading.Event()

        def cancel() -> None:
            stopped.set()
            sc.cancelJobGroup(group)

        # Parsing and analysis only (Spark analyses a query when it is built and reads rows at an action): an error
        # here is the text's, said as such, and a privacy budget reserved for the run is given back.
        try:
            frame = spark.sql(sqls[0])
            for sql in sqls[1:]:
                frame = frame.unionByName(spark.sql(sql), allowMissingColumns=True)
        except (AnalysisException, ParseException) as exc:
            raise _invalid(exc) from exc
        except Exception as exc:  # anything else failing here is said as any failure, as on DuckDB
            raise failed(exc) from exc
        timer = threading.Timer(limits.timeout_seconds, cancel)
        timer.daemon = True
        sc.setJobGroup(group, "hygie analysis run", interruptOnCancel=True)
        timer.start()
        try:
            # The action: rows are read from here on, so any error, whatever its class, may depend on the data
            # (an AnalysisException raised while executing too): never "invalid", never a refund.
            table = frame.toArrow()
            grant.check()
            return _like_duckdb(table)
        except Exception as exc:
            grant.check()  # a custody refusal inside Spark becomes CustodyRefused, not a data error
            if stopped.is_set():
                raise self._timeout(limits) from exc
            raise failed(exc) from exc  # its message may quote a value of the data: not shown
        finally:
            timer.cancel()
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    @staticmethod
    def _timeout(limits: Limits) -> QueryStopped:
        return QueryStopped(
            N_(
                "stopped at the time limit of {seconds:g} s: narrow the population or the period, or ask for "
                "fewer groups",
                seconds=limits.timeout_seconds,
            ),
            reason="timeout",
        )


def _invalid(exc: Exception) -> QueryStopped:
    """A query Spark refused while parsing or analysing it (before reading any row)."""
    unknown = sorted({a or b for a, b in _UNKNOWN.findall(str(exc))})
    if unknown:
        return QueryStopped(
            N_("the query is not valid on this view: unknown column {columns}", columns=", ".join(unknown)),
            reason="invalid",
        )
    return QueryStopped(N_("the query is not valid on this view"), reason="invalid")


def _like_duckdb(table: pa.Table) -> pa.Table:
    """Spark's Arrow types as DuckDB's for the same query: decimals as doubles (DuckDB's sums of doubles are
    doubles; Spark widens some averages to decimals), so both engines feed disclosure control the same values."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_decimal(field.type):
            column = column.cast(pa.float64())
            field = pa.field(field.name, pa.float64())
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))
