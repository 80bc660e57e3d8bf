# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The three aggregates of ``benchmarks/analysis.py`` on the same project view: DuckDB, Spark ``local[2]``, and Spark
on a 2-worker standalone cluster started on this machine, side by side.

    uv run python benchmarks/spark.py [--people 20000] [--years 1] [--seed 11] [--work /tmp/hygie-spark-bench]
                                      [--repeat 3]

The hub, its warehouse and the project's view are prepared as ``benchmarks/analysis.py`` does (same functions,
reused between runs; keep ``--work`` outside the repository). Each engine reads the view's **encrypted** files:

- DuckDB: the sandboxed connection of :func:`hygie.governance.views.open_view` (pyarrow decrypts in process),
  ``analysis_threads`` threads (2);
- Spark ``local[2]``: :func:`hygie.warehouse.spark.read_parquet` inside a custody grant (the Java KMS client asks
  custody for every key-encryption key over the loopback channel), DataFrame operations (no SQL text);
- Spark standalone: the same DataFrame code in a driver process of its own (one SparkContext per process) against
  a master and 2 workers of 1 core each started from pyspark's installation (``standalone_cluster``), RPC
  authenticated and encrypted with a shared secret.

Every engine computes the same per-cell outputs (people, events, sums: the numbers disclosure control is applied
to); the script checks they are identical (sums to the cent) and prints seconds (best of ``--repeat``), care rows
per second per core, and the ratio against DuckDB. Spark's fixed costs (job scheduling, JVM warm-up after the
first run) dominate at small sizes; the figures at 55 million rows belong on a machine of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.analysis import FIRST_YEAR, PASSPHRASE, TOP, prepare, project_with_view, settings_for
from benchmarks.machine import cpu_model
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import departements_by_region
from hygie.governance.views import READY, _drug_atc, open_view, project_view_key
from hygie.hub import Hub

Result = list[tuple[Any, ...]]


def family_of(hub: Hub, project: Project) -> str:
    with hub.session() as session:
        con = open_view(hub, session, project)
        row = con.sql(
            "SELECT substr(CAM_PRS_IDE, 1, 4) AS fam, count(*) FROM ER_CAM_F GROUP BY fam ORDER BY 2 DESC, fam LIMIT 1"
        ).fetchall()
        con.close()
    return str(row[0][0])


def duckdb_aggregates(years: int, family: str) -> list[tuple[str, str]]:
    last = FIRST_YEAR + years - 1
    return [
        (
            "amounts by region and month",
            """SELECT coalesce(CAST(r.GEO_REG_COD AS VARCHAR), 'unknown') AS region,
                      strftime(f.EXE_SOI_DTD, '%Y-%m') AS care_month, count(DISTINCT f.BEN_NIR_PSA) AS people,
                      count(*) AS events, round(sum(f.PRS_PAI_MNT), 2) AS paid
               FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA) LEFT JOIN dpt r ON r.GEO_DPT_COD = b.BEN_RES_DPT
               GROUP BY ALL""",
        ),
        (
            f"distinct patients per drug class, {last}",
            f"""SELECT coalesce(substr(dr.PHA_ATC_C07, 1, 3), 'unknown') AS atc_3,
                       count(DISTINCT f.BEN_NIR_PSA) AS people
                FROM ER_PHA_F d JOIN ER_PRS_F f USING (CLE_DCI_JNT) LEFT JOIN drugs dr USING (PHA_PRS_C13)
                WHERE year(f.EXE_SOI_DTD) = {last} GROUP BY ALL""",
        ),
        (
            f"top {TOP} providers by amount, CCAM family {family}",
            f"""SELECT f.PFS_EXE_NUM AS provider, count(DISTINCT f.BEN_NIR_PSA) AS people,
                       round(sum(f.PRS_PAI_MNT), 2) AS paid
                FROM ER_CAM_F d JOIN ER_PRS_F f USING (CLE_DCI_JNT)
                WHERE substr(d.CAM_PRS_IDE, 1, 4) = '{family}'
                GROUP BY ALL ORDER BY paid DESC NULLS LAST, provider LIMIT {TOP}""",
        ),
    ]


def run_duckdb(hub: Hub, project: Project, years: int, family: str, repeat: int) -> dict[str, tuple[float, Result]]:
    out: dict[str, tuple[float, Result]] = {}
    regions = [(d, r) for r, ds in departements_by_region().items() for d in ds]
    for name, sql in duckdb_aggregates(years, family):
        times, rows = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            with hub.session() as session:
                con = open_view(hub, session, project, limits={"threads": hub.settings.analysis_threads})
            # open_view locks the connection's configuration, not its registrations: the reference tables join in.
            con.register(
                "dpt", pa.table({"GEO_DPT_COD": [d for d, _ in regions], "GEO_REG_COD": [r for _, r in regions]})
            )
            con.register("drugs", _drug_atc())
            rows = sorted(tuple(r) for r in con.sql(sql).fetchall())
            con.close()
            times.append(time.perf_counter() - started)
        out[name] = (min(times), rows)
    return out


def view_files(hub: Hub, project_id: int) -> dict[str, str]:
    with hub.session() as session:
        view = (
            session.query(ProjectView)
            .filter_by(project_id=project_id, status=READY)
            .order_by(ProjectView.generation.desc())
            .first()
        )
        assert view is not None
        return {t: str(hub.settings.data_dir / m["file"]) for t, m in view.tables.items()}


def run_spark(hub: Hub, project_id: int, years: int, family: str, repeat: int) -> dict[str, tuple[float, Result]]:
    """The three aggregates as DataFrame operations on the view's encrypted files (this process's session)."""
    from pyspark.sql import functions as F

    from hygie.warehouse.spark import collect_checked, custody_grant, read_parquet, spark_session

    spark = spark_session(hub)
    last = FIRST_YEAR + years - 1
    files = view_files(hub, project_id)
    regions = [(d, str(r)) for r, ds in departements_by_region().items() for d in ds]
    dpt = F.broadcast(spark.createDataFrame(regions, "GEO_DPT_COD STRING, GEO_REG_COD STRING"))
    drugs = F.broadcast(spark.createDataFrame(_drug_atc()))
    out: dict[str, tuple[float, Result]] = {}

    def timed(name: str, build: Any) -> None:
        times, rows = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            with custody_grant(hub, [project_view_key(project_id)], actor="benchmark", project_id=project_id) as g:

                def table(t: str) -> Any:
                    return read_parquet(spark, g, [Path(files[t])])

                rows = sorted(tuple(r) for r in collect_checked(g, build(table)))
            times.append(time.perf_counter() - started)
        out[name] = (min(times), rows)

    def region_month(table: Any) -> Any:
        f, b = table("ER_PRS_F"), table("IR_BEN_R").select("BEN_NIR_PSA", "BEN_RES_DPT")
        joined = f.join(b, "BEN_NIR_PSA").join(dpt, F.col("BEN_RES_DPT") == F.col("GEO_DPT_COD"), "left")
        return joined.groupBy(
            F.coalesce(F.col("GEO_REG_COD"), F.lit("unknown")).alias("region"),
            F.date_format("EXE_SOI_DTD", "yyyy-MM").alias("care_month"),
        ).agg(
            F.countDistinct("BEN_NIR_PSA").alias("people"),
            F.count("*").alias("events"),
            F.round(F.sum("PRS_PAI_MNT"), 2).alias("paid"),
        )

    def drug_classes(table: Any) -> Any:
        d, f = table("ER_PHA_F"), table("ER_PRS_F").where(F.year("EXE_SOI_DTD") == last)
        joined = d.join(f, "CLE_DCI_JNT").join(drugs, "PHA_PRS_C13", "left")
        return joined.groupBy(F.coalesce(F.substring("PHA_ATC_C07", 1, 3), F.lit("unknown")).alias("atc_3")).agg(
            F.countDistinct("BEN_NIR_PSA").alias("people")
        )

    def top_providers(table: Any) -> Any:
        d = table("ER_CAM_F").where(F.substring("CAM_PRS_IDE", 1, 4) == family)
        joined = d.join(table("ER_PRS_F"), "CLE_DCI_JNT")
        grouped = joined.groupBy(F.col("PFS_EXE_NUM").alias("provider")).agg(
            F.countDistinct("BEN_NIR_PSA").alias("people"), F.round(F.sum("PRS_PAI_MNT"), 2).alias("paid")
        )
        return grouped.orderBy(F.col("paid").desc_nulls_last(), "provider").limit(TOP)

    names = [name for name, _ in duckdb_aggregates(years, family)]
    for name, build in zip(names, (region_month, drug_classes, top_providers), strict=True):
        timed(name, build)
    return out


def cluster_child(args: argparse.Namespace) -> None:
    """In the driver process of the standalone run: print the Spark results as JSON."""
    hub = Hub.open(settings_for(args.work.resolve() / "hub"))
    result = run_spark(hub, args.project, args.years, args.family, args.repeat)
    print("RESULT " + json.dumps({k: [t, [list(r) for r in rows]] for k, (t, rows) in result.items()}), flush=True)


def run_cluster(args: argparse.Namespace, project_id: int, family: str) -> dict[str, tuple[float, Result]]:
    import secrets
    import tempfile

    from hygie.warehouse.spark import standalone_cluster

    secret_dir = Path(tempfile.mkdtemp(prefix="hygie-bench-secret-"))
    secret = secret_dir / "cluster.secret"  # RPC authenticated and encrypted, as a real cluster runs
    secret.touch(mode=0o600)
    secret.write_text(secrets.token_urlsafe(32))
    with standalone_cluster(2, cores=1, memory_mb=2048, secret_file=secret) as master:
        env = {
            **os.environ,
            "HYGIE_SPARK_AUTH_SECRET_FILE": str(secret),
            "HYGIE_SPARK_MASTER": master,
            "HYGIE_SPARK_EXECUTOR_MEMORY_MB": "2048",
            "HYGIE_KEY_PASSPHRASE": PASSPHRASE,
        }
        cmd = [sys.executable, __file__, "--child", "--project", str(project_id), "--family", family]
        cmd += ["--years", str(args.years), "--repeat", str(args.repeat), "--work", str(args.work)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the standalone run failed:\n{done.stderr[-3000:]}")
    raw = json.loads(lines[0].removeprefix("RESULT "))
    return {k: (float(t), sorted(tuple(r) for r in rows)) for k, (t, rows) in raw.items()}


def spec_releases(hub: Hub, project: Project, years: int, family: str, repeat: int) -> None:
    """The analysis service's path: three aggregate specs (the same questions as above) compiled once and run by
    both engines (``hygie.analysis.engine.DuckDBEngine``, ``hygie.analysis.spark_engine.SparkEngine``), then passed
    through disclosure control: seconds side by side and whether the released tables are identical."""
    from hygie.analysis.cellkeys import project_record_keys
    from hygie.analysis.compile import compile_aggregate, output_table
    from hygie.analysis.engine import DuckDBEngine, Limits
    from hygie.analysis.spark_engine import SparkEngine
    from hygie.analysis.spec import AggregateSpec
    from hygie.disclosure.policy import DisclosurePolicy
    from hygie.disclosure.protect import protect
    from hygie.governance.views import newest_ready

    last = FIRST_YEAR + years - 1
    specs = {
        "amounts by region and month": {
            "group_by": ["region", "care_month"],
            "measures": ["people", "events", "sum:PRS_PAI_MNT"],
        },
        f"patients per drug class, {last}": {
            "group_by": ["atc:3"],
            "filters": [{"dimension": "care_year", "in": [str(last)]}],
            "measures": ["people"],
        },
        f"amounts by provider, CCAM family {family}": {
            "group_by": ["provider"],
            "filters": [{"dimension": "ccam:4", "in": [family]}],
            "measures": ["people", "sum:PRS_PAI_MNT"],
        },
    }
    with hub.session() as session:
        view = newest_ready(session, project.id)
        assert view is not None
        keys = project_record_keys(hub, session, project)
    columns = {t: list(m["columns"]) for t, m in view.tables.items()}
    limits = Limits(hub.settings.analysis_memory_limit_mb, hub.settings.analysis_threads, 3600)
    engines = {"DuckDB": DuckDBEngine(hub), "Spark local[2]": SparkEngine(hub)}
    print("\nAggregate specs through the analysis engines, then disclosure control (threshold 11):")
    print("| spec | DuckDB s | Spark local[2] s | / DuckDB | released cells | same release |")
    print("|---|---|---|---|---|---|")
    for name, raw in specs.items():
        plan = compile_aggregate(AggregateSpec.model_validate(raw), columns, reference_year=FIRST_YEAR,
                                 record_keys=keys)  # fmt: skip
        seconds: dict[str, float] = {}
        released: dict[str, Any] = {}
        for engine_name, engine in engines.items():
            times = []
            for _ in range(repeat):
                run = engine.run(project, plan.query, limits)
                times.append(run.seconds)
            seconds[engine_name] = min(times)
            released[engine_name] = protect(output_table(plan, run.table), DisclosurePolicy(threshold=11)).rows()
        duck_s, spark_s = seconds["DuckDB"], seconds["Spark local[2]"]
        print(
            f"| {name} | {duck_s:.2f} | {spark_s:.2f} | {spark_s / duck_s:.1f} | {len(released['DuckDB'])} | "
            f"{'yes' if released['DuckDB'] == released['Spark local[2]'] else 'NO'} |",
            flush=True,
        )


def same(a: Result, b: Result) -> bool:
    def norm(rows: Result) -> list[tuple[Any, ...]]:
        return sorted(tuple(round(v, 2) if isinstance(v, float) else v for v in r) for r in rows)

    return norm(a) == norm(b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--years", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-spark-bench"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--project", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cluster_child(args)
        return
    work = args.work.resolve()
    if Path(__file__).resolve().parents[1] in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; use a folder outside it (e.g. /tmp)")
    import pyspark

    print(
        f"machine: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, pyspark {pyspark.__version__}",
        flush=True,
    )
    hub = prepare(work, args.people, args.years, args.seed, 4096)
    project, _ = project_with_view(hub, args.years)
    with hub.session() as session:
        view = session.query(ProjectView).filter_by(project_id=project.id, status=READY).one()
        care_rows = int(view.tables["ER_PRS_F"]["rows"])
    family = family_of(hub, project)
    duck = run_duckdb(hub, project, args.years, family, args.repeat)
    started = time.perf_counter()
    local = run_spark(hub, project.id, args.years, family, args.repeat)
    print(f"Spark local[2]: {time.perf_counter() - started:.0f} s in all (session start included)", flush=True)
    cluster = run_cluster(args, project.id, family)
    cores = {"DuckDB": hub.settings.analysis_threads, "Spark local[2]": 2, "Spark standalone 2x1": 2}
    print(f"\n{care_rows:,} care rows in the view; best of {args.repeat}; rows/s per core = care rows / s / cores")
    print("| aggregate | engine | seconds | care rows/s per core | / DuckDB | same output as DuckDB |")
    print("|---|---|---|---|---|---|")
    for name, (duck_s, duck_rows) in duck.items():
        for engine, results in (("DuckDB", duck), ("Spark local[2]", local), ("Spark standalone 2x1", cluster)):
            seconds, rows = results[name]
            print(
                f"| {name} | {engine} | {seconds:.2f} | {care_rows / seconds / cores[engine]:,.0f} | "
                f"{seconds / duck_s:.1f} | {'yes' if same(rows, duck_rows) else 'NO'} ({len(rows)} cells) |",
                flush=True,
            )
    spec_releases(hub, project, args.years, family, args.repeat)
    hub.close()


if __name__ == "__main__":
    main()
