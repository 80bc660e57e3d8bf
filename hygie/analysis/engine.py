# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Where a compiled query runs: an engine behind a small interface (DuckDB embedded, Spark for national scale).

An engine receives a query as a SQLGlot expression (each engine renders it in its own dialect), auxiliary tables
the platform adds (record keys, referentials), and limits; it returns an Arrow table or raises
:class:`QueryStopped`. The DuckDB engine runs on :func:`hygie.governance.views.open_view` connections: one
in-memory connection per run, external access off, configuration locked, its own memory and thread limits, and a
timer thread that interrupts the query at the wall-clock limit, so one project's runaway query cannot starve
another's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import duckdb
import pyarrow as pa
from sqlglot import exp

from hygie.config import Settings
from hygie.governance.models import Project
from hygie.governance.views import open_view
from hygie.hub import Hub
from hygie.i18n import N_


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    memory_mb: int
    threads: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.analysis_memory_limit_mb, settings.analysis_threads, settings.analysis_timeout_seconds)


@dataclass(frozen=True)
class CompiledQuery:
    """A checked query: the AST to run, the view tables it reads, and tables the platform adds for it."""

    ast: exp.Expr
    tables: frozenset[str]
    """View tables the query reads (for the cost estimate)."""
    auxiliary: Mapping[str, pa.Table] = field(default_factory=dict)
    """Platform tables registered next to the view for this run only (never reachable from a user's SQL)."""
    joins_as_written: bool = False
    """The platform wrote every join with its smaller input on the right (the build side of a hash join): the
    engine keeps that side. DuckDB knows no sizes of Arrow-registered views (it estimates one row each) and would
    otherwise build on whichever input is narrower: 55 million care rows, five times over in one aggregate, which
    18 GB did not hold."""


@dataclass(frozen=True)
class RunResult:
    table: pa.Table
    seconds: float
    cpu_seconds: float


class QueryStopped(Exception):
    """The run was stopped at a limit or failed; ``message`` is safe to show the author (no data values)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        """timeout, memory, invalid (the query is wrong before it reads data), runtime (failed while reading)."""


class Engine(Protocol):
    name: str

    def run(self, project: Project, query: CompiledQuery, limits: Limits) -> RunResult:
        """Run ``query`` over ``project``'s newest ready view within ``limits``."""
        ...


_BEFORE_DATA = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)
"""Errors raised while planning, before any row is read: their message names columns and types, never values."""


class DuckDBEngine:
    """One sandboxed in-memory DuckDB connection per run, on the project's encrypted view files."""

    name = "duckdb"

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def run(self, project: Project, query: CompiledQuery, limits: Limits) -> RunResult:
        with self.hub.session() as session:
            con = open_view(
                self.hub,
                session,
                project,
                limits={
                    "memory_limit": f"{limits.memory_mb}MB",
                    "threads": limits.threads,
                    **({"disabled_optimizers": "build_side_probe_side"} if query.joins_as_written else {}),
                },
            )
        try:
            for name, table in query.auxiliary.items():
                con.register(name, table)
            sql = query.ast.sql(dialect="duckdb")
            started, cpu = time.perf_counter(), time.thread_time()
            # Parsing and binding only (a relation is bound when it is made, and read when it is fetched): an error
            # here is the text's, said as such, before any row is read.
            try:
                relation = con.sql(sql)
            except _BEFORE_DATA as exc:
                raise QueryStopped(
                    N_("the query is not valid on this view: {error}", error=str(exc)), reason="invalid"
                ) from exc
            except duckdb.Error as exc:  # e.g. a file the locked connection may not open: said as any failure
                raise failed(exc) from exc
            timer = threading.Timer(limits.timeout_seconds, con.interrupt)
            timer.daemon = True
            timer.start()
            try:  # rows are read from here on: whatever its class, an error may depend on the data
                result = relation.to_arrow_table()
            except duckdb.InterruptException as exc:
                raise QueryStopped(
                    N_(
                        "stopped at the time limit of {seconds:g} s: narrow the population or the period, or ask for "
                        "fewer groups",
                        seconds=limits.timeout_seconds,
                    ),
                    reason="timeout",
                ) from exc
            except duckdb.OutOfMemoryException as exc:
                raise QueryStopped(
                    N_(
                        "stopped at the memory limit of {megabytes} MB: aggregate earlier or ask for fewer groups",
                        megabytes=limits.memory_mb,
                    ),
                    reason="memory",
                ) from exc
            except duckdb.Error as exc:
                raise failed(exc) from exc
            finally:
                timer.cancel()
            return RunResult(result, time.perf_counter() - started, time.thread_time() - cpu)
        finally:
            con.close()


def failed(exc: Exception) -> QueryStopped:
    """A run that failed, said by its error's class only: runtime errors (conversions, error(), division...) may
    quote a value of the data."""
    return QueryStopped(
        N_(
            "the query failed while reading the data ({error}); the message may quote data values, so it "
            "is not shown: test the query on the project's dummy data",
            error=type(exc).__name__,
        ),
        reason="runtime",
    )


def engine_for(hub: Hub) -> Engine:
    """The engine the hub's settings name (``HYGIE_ENGINE``): DuckDB, the embedded default, or Spark (imported only
    when chosen: pyspark and the JVM cost seconds)."""
    if hub.settings.engine == "spark":
        from hygie.analysis.spark_engine import SparkEngine

        return SparkEngine(hub)
    return DuckDBEngine(hub)
