# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Project view builds on Apache Spark (``HYGIE_ENGINE=spark``): the same view as :mod:`hygie.governance.views`.

:func:`hygie.governance.views.build_view` keeps the bookkeeping (project lock, generation, membership file,
``ProjectView`` row, citizen index, audit); this module writes the view's files in its place, reading the
warehouse's catalogued files through Spark (:mod:`hygie.warehouse.spark`):

- the population: the scope's criteria on the beneficiaries (newest row per person among the matching rows, as the
  DuckDB build's ``QUALIFY``), the coded criteria on the period's care and details, then the opt-out register;
- re-keying stays in custody: the people are collected to the driver and their project pseudonyms computed by
  custody MAC calls of at most ``REKEY_BATCH`` people (:func:`hygie.governance.views.rekey`), then joined as a
  small broadcast table ``pop`` (hub pseudonym -> project pseudonym); no pseudonym key ever reaches Spark;
- care rows of the period for those people, with claim keys a random permutation of 0..n-1 drawn for this build
  (sorted by a random number seeded from ``secrets``, numbered across partitions from per-partition counts), the
  detail rows joined to them on the DCIR keys, the beneficiaries' newest rows; every table written as ONE
  encrypted file under the project's view key, rows in claim-key (or project-pseudonym) order, in the format
  pyarrow writes, so :func:`~hygie.governance.views.open_view` reads it unchanged.

Every Spark job runs inside one custody grant naming the warehouse key (reading) and the project's view key
(writing); its wraps and unwraps are recorded with the build in the caller's transaction.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.governance.models import Project
from hygie.governance.policy import CLAIM_KEY
from hygie.governance.views import (
    OWNERS_FILE,
    ViewError,
    _drug_atc,
    _months,
    _opted_out,
    _Plan,
    project_view_key,
    rekey,
)
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import BENEFICIARY_TABLE, CARE_TABLE, DCIR_KEYS, DETAIL_TABLES, PSEUDONYM_COLUMN
from hygie.keys import WAREHOUSE_KEY
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.encryption import ParquetCrypto
from hygie.warehouse.store import sha256_file

REKEY_BATCH = 1_000_000
"""People re-keyed per custody call (a national population is some 67 calls, each a bounded message)."""

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from hygie.warehouse.spark import CustodyGrant


def _files(hub: Hub, session: Session, table: str, months: list[str] | None) -> list[Path]:
    query = select(FileRow.path).where(FileRow.table_name == table)
    if months is not None:
        query = query.where(FileRow.care_month.in_(months))
    return [hub.warehouse.directory / p for p in session.scalars(query.order_by(FileRow.id))]


class _Reader:
    """Warehouse tables as DataFrames, from the catalogue's files (an empty table of the stored schema if none)."""

    def __init__(self, hub: Hub, session: Session, spark: SparkSession, grant: CustodyGrant) -> None:
        self.hub, self.session, self.spark, self.grant = hub, session, spark, grant

    def table(self, name: str, months: list[str] | None) -> DataFrame:
        from hygie.ingest.rules import stored_schema
        from hygie.warehouse.spark import read_parquet

        files = _files(self.hub, self.session, name, months)
        if files:
            return read_parquet(self.spark, self.grant, files)
        return self.spark.createDataFrame(stored_schema(name).empty_table())


def _expr(plan: _Plan, table: str, column: str) -> Column:
    """A warehouse column in its approved form (as :meth:`_Plan.expr` for DuckDB)."""
    from pyspark.sql import functions as F

    form = plan.scope.column_form(table, column)
    if form == "month":
        return F.trunc(F.col(f"t.{column}"), "month").alias(column)
    if form != "exact":
        raise ViewError(
            N_(
                "{table}.{column} needs its potential identifier declared; it is never written otherwise",
                table=table,
                column=column,
            )
        )
    return F.col(f"t.{column}").alias(column)


def _population(hub: Hub, session: Session, reader: _Reader, plan: _Plan, project: Project) -> list[str]:
    """Sorted hub pseudonyms of the people the view covers (the DuckDB build's rules)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pop = plan.scope.population
    ben = reader.table(BENEFICIARY_TABLE, None).alias("t")
    cond = F.lit(True)
    if pop.age_min is not None:
        cond &= F.lit(pop.period_start.year) - F.col("t.BEN_NAI_ANN") >= pop.age_min
    if pop.age_max is not None:
        cond &= F.lit(pop.period_start.year) - F.col("t.BEN_NAI_ANN") <= pop.age_max
    if pop.sexes:
        cond &= F.col("t.BEN_SEX_COD").isin(list(pop.sexes))
    departements = pop.all_departements()
    if departements:
        cond &= F.col("t.BEN_RES_DPT").isin(list(departements))
    newest = Window.partitionBy("BEN_NIR_PSA").orderBy(F.col("BEN_DTE_MAJ").desc_nulls_last())
    people = (
        ben.where(cond)
        .withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        .select(F.col("BEN_NIR_PSA").alias("psa"))
    )
    if pop.drugs_atc or pop.ccam_acts or pop.exemption_codes:
        people = people.join(_coded_people(reader, plan), "psa", "left_semi")
    found = [r[0] for r in people.collect()]
    if project.purpose not in hub.settings.opt_out_exempt_purposes:
        objected = set(_opted_out(hub, session, plan.pseudonym_version))
        found = [p for p in found if p not in objected]
    return sorted(found)


def _coded_people(reader: _Reader, plan: _Plan) -> DataFrame:
    """Hub pseudonyms (``psa``) of people with at least one care in the period matching a code criterion."""
    from pyspark.sql import functions as F

    pop = plan.scope.population
    months = _months(pop.period_start, pop.period_end)
    prs = reader.table(CARE_TABLE, months).alias("t")
    period = F.col("t.EXE_SOI_DTD").between(F.lit(pop.period_start), F.lit(pop.period_end))
    keys = [F.col(f"d.{k}") == F.col(f"t.{k}") for k in DCIR_KEYS]
    parts: list[DataFrame] = []
    if pop.exemption_codes:
        parts.append(prs.where(period & F.col("t.EXO_MTF").isin(list(pop.exemption_codes))).select("t.BEN_NIR_PSA"))
    if pop.drugs_atc:
        drugs = _drug_atc()
        codes, classes = drugs.column("PHA_PRS_C13").to_pylist(), drugs.column("PHA_ATC_C07").to_pylist()
        c13 = [
            int(code)
            for code, atc in zip(codes, classes, strict=True)
            if any(atc.startswith(prefix) for prefix in pop.drugs_atc)
        ]
        pha = reader.table("ER_PHA_F", months).alias("d")
        parts.append(
            pha.join(prs, keys).where(period & F.col("d.PHA_PRS_C13").isin(c13)).select(F.col("t.BEN_NIR_PSA"))
        )
    if pop.ccam_acts:
        cam = reader.table("ER_CAM_F", months).alias("d")
        parts.append(
            cam.join(prs, keys)
            .where(period & F.col("d.CAM_PRS_IDE").isin(list(pop.ccam_acts)))
            .select(F.col("t.BEN_NIR_PSA"))
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union.select(F.col("BEN_NIR_PSA").alias("psa")).distinct()


def _numbered(df: DataFrame) -> DataFrame:
    """``df`` with ``CLAIM_KEY``: a random permutation of 0..n-1 (random order, then numbered across partitions
    from their counts: no single-partition window)."""
    from pyspark.sql import functions as F

    seed = secrets.randbits(63)
    shuffled = (
        df.orderBy(F.rand(seed))
        .withColumn("_part", F.spark_partition_id())
        .withColumn("_mid", F.monotonically_increasing_id())
        .cache()
    )
    counts = sorted((r["_part"], r["n"]) for r in shuffled.groupBy("_part").agg(F.count("*").alias("n")).collect())
    offsets, total = [], 0
    for part, n in counts:
        offsets.append((part, total))
        total += n
    spark = df.sparkSession
    offs = spark.createDataFrame(offsets or [(0, 0)], "_part INT, _off LONG")
    base = F.col("_mid") - F.shiftleft(F.col("_part").cast("long"), 33)  # monotonically_increasing_id's layout
    return (
        shuffled.join(F.broadcast(offs), "_part")
        .withColumn(CLAIM_KEY, (F.col("_off") + base).cast("long"))
        .drop("_part", "_mid", "_off")
    )


def write_view_spark(
    hub: Hub,
    session: Session,
    plan: _Plan,
    project: Project,
    target: Path,
    view_crypto: ParquetCrypto,
    *,
    actor: str,
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Write the view's files into ``target`` with Spark; return its people (hub pseudonyms) and tables, as
    :func:`hygie.governance.views._write_view_duckdb` does."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from hygie.warehouse.spark import CustodyRefused, custody_grant, spark_session, write_parquet_file

    spark = spark_session(hub)
    view_key = project_view_key(project.id)
    written: dict[str, Path] = {}
    try:
        with custody_grant(
            hub,
            [WAREHOUSE_KEY, view_key],
            actor=actor,
            session=session,
            project_id=project.id,
            purpose=project.purpose,
        ) as grant:
            reader = _Reader(hub, session, spark, grant)
            people = _population(hub, session, reader, plan, project)
            pids = [  # in custody, a bounded batch per call: the pseudonym key never reaches Spark
                pid
                for i in range(0, len(people), REKEY_BATCH)
                for pid in rekey(hub, project.id, people[i : i + REKEY_BATCH])
            ]
            pop = F.broadcast(
                spark.createDataFrame(
                    pa.table({"psa": pa.array(people, pa.string()), "pid": pa.array(pids, pa.string())})
                )
            ).alias("p")

            def write(name: str, df: DataFrame) -> None:
                path = target / name
                write_parquet_file(df, grant, path, master_key=view_key)
                written[name] = path

            if BENEFICIARY_TABLE in plan.columns:
                ben = (
                    reader.table(BENEFICIARY_TABLE, None).alias("t").join(pop, F.col("t.BEN_NIR_PSA") == F.col("p.psa"))
                )
                newest = F.row_number().over(
                    Window.partitionBy("t.BEN_NIR_PSA").orderBy(F.col("t.BEN_DTE_MAJ").desc_nulls_last())
                )
                cols = [F.col("p.pid").alias(PSEUDONYM_COLUMN)] + [
                    _expr(plan, BENEFICIARY_TABLE, c) for c in plan.data_columns(BENEFICIARY_TABLE)
                ]
                out = ben.withColumn("_n", newest).where(F.col("_n") == 1).select(*cols)
                write(f"{BENEFICIARY_TABLE}.parquet", out.orderBy(PSEUDONYM_COLUMN))
            if plan.needs_care:
                pop_ = plan.scope.population
                months = _months(pop_.period_start, pop_.period_end)
                period = F.col("t.EXE_SOI_DTD").between(F.lit(pop_.period_start), F.lit(pop_.period_end))
                fetch = [F.col(f"t.{k}").alias(k) for k in DCIR_KEYS] + [F.col("p.pid").alias("_pid")]
                fetch += [_expr(plan, CARE_TABLE, c) for c in plan.data_columns(CARE_TABLE)]
                care = (
                    reader.table(CARE_TABLE, months)
                    .alias("t")
                    .join(pop, F.col("t.BEN_NIR_PSA") == F.col("p.psa"))
                    .where(period)
                    .select(*fetch)
                )
                care = _numbered(care).cache().alias("c")

                def from_care(column: str) -> Column:
                    if column == PSEUDONYM_COLUMN:
                        return F.col("c._pid").alias(PSEUDONYM_COLUMN)
                    return F.col(f"c.{column}").alias(column)

                for table in plan.columns:
                    if table == CARE_TABLE:
                        out = care.select(*[from_care(c) for c in plan.columns[table]])
                    elif table in DETAIL_TABLES:
                        det = reader.table(table, months).alias("t")
                        joined = det.join(care, [F.col(f"t.{k}") == F.col(f"c.{k}") for k in DCIR_KEYS])
                        out = joined.select(
                            *[
                                from_care(c) if c in (CLAIM_KEY, PSEUDONYM_COLUMN) else _expr(plan, table, c)
                                for c in plan.columns[table]
                            ]
                        )
                    else:
                        continue
                    write(f"{table}.parquet", out.orderBy(CLAIM_KEY))
                if plan.needs_owners:
                    owners = care.select(F.col(f"c.{CLAIM_KEY}"), F.col("c._pid").alias(PSEUDONYM_COLUMN))
                    write(OWNERS_FILE, owners.orderBy(CLAIM_KEY))
                care.unpersist()
            grant.check()
    except CustodyRefused as exc:
        raise ViewError(
            N_("project {project}: the view cannot be built on Spark: {error}", project=project.id, error=str(exc))
        ) from exc
    tables: dict[str, dict[str, Any]] = {}
    decryption = view_crypto.decryption_properties()
    for table in plan.columns:
        path = written[f"{table}.parquet"]
        tables[table] = {
            "rows": pq.ParquetFile(path, decryption_properties=decryption).metadata.num_rows,
            "columns": plan.columns[table],
            "file": path.relative_to(hub.settings.data_dir).as_posix(),
            "sha256": sha256_file(path),
        }
    return people, tables


def open_view_spark(
    hub: Hub, session: Session, project: Project, spark: SparkSession, grant: CustodyGrant
) -> dict[str, DataFrame]:
    """The project's newest ready view as one DataFrame per table, for Spark as
    :func:`hygie.governance.views.open_view` is for DuckDB: the catalogued files only, a missing file refused,
    and the rows of people who objected since the build left out (by pseudonym, or by claim key for detail rows).

    ``grant`` must name the project's view key (:func:`~hygie.governance.views.project_view_key`); every action on
    the frames runs inside it. The left-out people are known to the driver only as a filter value list, as in the
    DuckDB path.
    """
    from pyspark.sql import functions as F

    from hygie.governance.views import (
        _excluded_claims,
        _require_filterable,
        excluded_since_build,
        newest_ready,
    )
    from hygie.warehouse.spark import read_parquet

    view = newest_ready(session, project.id)
    if view is None:
        raise ViewError(
            N_(
                "project {project} has no ready view: it is provisioned when the project is activated",
                project=project.id,
            )
        )
    key = project_view_key(project.id)
    if key not in grant.keys:
        raise ViewError(
            N_(
                "project {project}: the Spark job's custody grant does not name the view key {key}",
                project=project.id,
                key=repr(key),
            )
        )
    paths: dict[str, Path] = {}
    for table, meta in view.tables.items():
        path = hub.settings.data_dir / meta["file"]
        if not path.exists():
            raise ViewError(
                N_(
                    "project {project}: file {file} of view generation {generation} is missing; "
                    "rebuild the view (build_view) or run `hygie warehouse verify`",
                    project=project.id,
                    file=meta["file"],
                    generation=view.generation,
                )
            )
        paths[table] = path
    _require_filterable(hub, view)
    excluded = excluded_since_build(hub, session, project, view)
    frames: dict[str, DataFrame] = {}
    for table, path in paths.items():
        df = read_parquet(spark, grant, [path])
        columns = list(view.tables[table]["columns"])
        if excluded and PSEUDONYM_COLUMN in columns:
            person = F.col(PSEUDONYM_COLUMN)
            df = df.where(person.isNull() | ~person.isin(sorted(excluded)))
        elif excluded and CLAIM_KEY in columns:
            crypto = ParquetCrypto(hub.custody, master_key=key)
            claims = _excluded_claims(hub, view, crypto, excluded).to_pylist()
            if claims:
                df = df.where(~F.col(CLAIM_KEY).isin(claims))
        frames[table] = df
    return frames
