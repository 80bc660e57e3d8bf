# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Three typical aggregates over 50+ million care rows: the governed path beside plain DuckDB SQL in clear.

    uv run python benchmarks/analysis.py [--people 1400000] [--years 2] [--seed 11] [--work /tmp/hygie-analysis-bench]
                                         [--repeat 3] [--memory-mb 12288]

Prepared once and reused by later runs (keep ``--work`` outside the repository): a hub in ``<work>/hub``
(``hygie synth`` then ``hygie ingest``; about 54 million care rows for 1.4 million people over 2023-2024, some
twenty minutes on two shared cores), plaintext Parquet copies of its warehouse tables in ``<work>/plain`` (the
baseline's data: the same rows, decrypted) and one active project whose view covers everyone over both years
(built once; its build time is printed, it is not part of the aggregates' times).

The aggregates (``AGGREGATES``):

1. amounts by region of residence and care month (people, care rows, sum of the amount paid);
2. distinct patients per drug class (ATC, 3 characters) over the last year;
3. the top 20 providers (PFS_EXE_NUM) by amount paid for the most frequent CCAM act family (4 characters).

Timed, in this process, each ``--repeat`` times (the best run is kept, both paths alike):

- governed: the aggregate spec compiled with SQLGlot, run by the analysis engine in the sandboxed DuckDB connection
  on the project's encrypted view (record keys for the cell-key method registered beside it), the result turned
  into an output table and passed through disclosure control (threshold, complementary suppression, keyed
  rounding); for the top providers, the top 20 of the released cells;
- plain: the same aggregate written by hand in DuckDB SQL over the plaintext copies of the warehouse tables (the
  nine DCIR keys join care to its details; the newest beneficiary row gives the residence), no sandbox, no
  encryption, no disclosure control.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import pyarrow
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from hygie.config import Settings
from hygie.governance.models import Account, Project, ProjectMember, ProjectView
from hygie.governance.policy import departements_by_region
from hygie.governance.views import READY, _drug_atc, build_view
from hygie.hub import Hub
from hygie.ingest.contract import DCIR_KEYS
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.synth import generate

PASSPHRASE = "hygie analysis benchmark"
"""A benchmark-only hub; a light Argon2id so that opening it costs nothing measurable."""
FIRST_YEAR = 2023
TOP = 20
TABLES = ("IR_BEN_R", "ER_PRS_F", "ER_PHA_F", "ER_CAM_F")


def settings_for(data_dir: Path, memory_mb: int = 12_288) -> Settings:
    return Settings(
        data_dir=data_dir,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        kdf_memory_kib=8192,
        kdf_iterations=1,
        kdf_lanes=1,
        # A run over 50 million rows on two shared cores may take minutes: the benchmark measures, it is not
        # the place to stop a run. Per-person cells over 1.4 million people need far more than the default 2 GB
        # (nothing spills: the sandbox has no temp directory; 6 GB was not enough for regions x months); the
        # plain side gets the same memory and threads.
        analysis_timeout_seconds=3600,
        analysis_memory_limit_mb=memory_mb,
    )


def scope(years: int) -> dict[str, Any]:
    return {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
            "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "PFS_EXE_NUM"],
            "ER_PHA_F": ["PHA_PRS_C13"],
            "ER_CAM_F": ["CAM_PRS_IDE"],
        },
        "population": {"period_start": f"{FIRST_YEAR}-01-01", "period_end": f"{FIRST_YEAR + years - 1}-12-31"},
    }


# -- preparation (untimed, once) ----------------------------------------------------------------------------


def prepare(work: Path, people: int, years: int, seed: int, memory_mb: int) -> Hub:
    """A hub holding the synthetic population, made once and reused (``prep.sh``-style runs count too)."""
    data_dir = work / "hub"
    settings = settings_for(data_dir, memory_mb)
    if (data_dir / "keys" / "keystore.json").exists():
        hub = Hub.open(settings)
        with hub.session() as session:
            counts = hub.warehouse.row_counts(session)
        if counts.get("IR_BEN_R") == people and counts.get("ER_PRS_F", 0) > 0:
            print(f"reusing the hub in {data_dir}: {counts}", flush=True)
            return hub
        raise SystemExit(f"{data_dir} holds another population ({counts}): remove it or pick another --work folder")
    hub = Hub.init(settings)
    delivery = work / "delivery"
    started = time.perf_counter()
    print(f"synthesising {people:,} people x {years} year(s) into {delivery}", flush=True)
    generate(delivery, people=people, years=years, seed=seed, start_year=FIRST_YEAR)
    print(f"synthesised in {time.perf_counter() - started:.0f} s; ingesting", flush=True)
    started = time.perf_counter()
    for result in ingest_batches(hub, expand_batches([delivery])):
        if result.status != "accepted":
            raise SystemExit(f"batch {result.batch_dir} was {result.status}: {result.errors[:3]}")
    print(f"  ingested ({time.perf_counter() - started:.0f} s)", flush=True)
    return hub


def plain_copies(hub: Hub, target: Path) -> None:
    """Decrypted copies of the warehouse tables for the baseline (untimed, made once)."""
    target.mkdir(parents=True, exist_ok=True)
    with hub.session() as session:
        for table in TABLES:
            path = target / f"{table}.parquet"
            if path.exists():
                continue
            print(f"plain copy of {table} ...", flush=True)
            dataset = hub.warehouse.dataset(session, table)
            assert dataset is not None, f"the warehouse has no {table}"
            partial = path.with_suffix(".partial")
            with pq.ParquetWriter(partial, dataset.schema, compression="zstd", compression_level=1) as writer:
                for batch in dataset.to_batches():
                    writer.write_batch(batch)
            partial.rename(path)


def project_with_view(
    hub: Hub,
    years: int,
    *,
    wanted: dict[str, Any] | None = None,
    title: str = "Analysis benchmark",
    purpose: str = "research",
    requester_name: str = "benchmark",
) -> tuple[Project, float | None]:
    """A benchmark's active project (``scope(years)`` unless ``wanted``), its view built once (build seconds, or
    None when reused)."""
    wanted = wanted if wanted is not None else scope(years)
    now = datetime.now(UTC)
    with hub.session() as session:
        for project in session.query(Project).filter_by(title=title):
            ready = session.query(ProjectView).filter_by(project_id=project.id, status=READY).count()
            if project.scope == wanted and ready:
                session.expunge(project)
                return project, None
        requester = session.query(Account).filter_by(username=requester_name).one_or_none()
        if requester is None:
            requester = Account(
                username=requester_name, role="researcher", password_hash="-", created_at=now, created_by="benchmark"
            )
            session.add(requester)
            session.flush()
        project = Project(
            requester_id=requester.id, organisation="Benchmark", title=title, purpose=purpose,
            justification="benchmark", public_summary="benchmark", scope=wanted, duration_days=365, threshold=11,
            status="active", created_at=now,
        )  # fmt: skip
        session.add(project)
        session.flush()
        # The access gate wants a member researcher of an active, unexpired project.
        project.expires_at = now + timedelta(days=365)
        session.add(ProjectMember(project_id=project.id, account_id=requester.id, added_at=now, added_by=requester.id))
        session.commit()
        print(f"building the view of project {project.id} ...", flush=True)
        started = time.perf_counter()
        view = build_view(hub, session, project, actor="benchmark")
        session.commit()
        elapsed = time.perf_counter() - started
        print(f"view built in {elapsed:.0f} s: {view.people:,} people, "
              f"{ {t: m['rows'] for t, m in view.tables.items()} }", flush=True)  # fmt: skip
        session.expunge(project)
        return project, elapsed


def act_family(plain_dir: Path) -> str:
    """The most frequent CCAM act family (first 4 characters) in the data: a family with real volume."""
    con = duckdb.connect()
    row = con.sql(
        f"SELECT substr(CAM_PRS_IDE, 1, 4) AS fam, count(*) FROM read_parquet('{plain_dir}/ER_CAM_F.parquet') "
        "GROUP BY fam ORDER BY 2 DESC, fam LIMIT 1"
    ).fetchall()
    con.close()
    return str(row[0][0])


# -- the aggregates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    name: str
    spec: dict[str, Any]
    plain_sql: str
    """Over read_parquet views named as the warehouse tables, plus ``dpt`` (département -> region) and ``drugs``."""
    top: int | None = None
    """Keep the top N cells by the last measure (plain: ORDER BY ... LIMIT, governed: on the released cells)."""


def aggregates(years: int, family: str) -> list[Aggregate]:
    last = FIRST_YEAR + years - 1
    keys = " AND ".join(f"d.{k} = f.{k}" for k in DCIR_KEYS)
    newest_ben = (
        "SELECT BEN_NIR_PSA, BEN_RES_DPT FROM IR_BEN_R "
        "QUALIFY row_number() OVER (PARTITION BY BEN_NIR_PSA ORDER BY BEN_DTE_MAJ DESC NULLS LAST) = 1"
    )
    period = f"f.EXE_SOI_DTD BETWEEN DATE '{FIRST_YEAR}-01-01' AND DATE '{last}-12-31'"
    return [
        Aggregate(
            "amounts by region and month",
            {"group_by": ["region", "care_month"], "measures": ["people", "events", "sum:PRS_PAI_MNT"]},
            f"""
            SELECT coalesce(CAST(r.GEO_REG_COD AS VARCHAR), 'unknown') AS region,
                   strftime(f.EXE_SOI_DTD, '%Y-%m') AS care_month,
                   count(DISTINCT f.BEN_NIR_PSA) AS people, count(*) AS events, sum(f.PRS_PAI_MNT) AS paid
            FROM ER_PRS_F f JOIN ({newest_ben}) b ON b.BEN_NIR_PSA = f.BEN_NIR_PSA
            LEFT JOIN dpt r ON r.GEO_DPT_COD = b.BEN_RES_DPT
            WHERE {period}
            GROUP BY ALL
            """,
        ),
        Aggregate(
            f"distinct patients per drug class, {last}",
            {"group_by": ["atc:3"], "filters": [{"dimension": "care_year", "in": [last]}], "measures": ["people"]},
            f"""
            SELECT coalesce(substr(dr.PHA_ATC_C07, 1, 3), 'unknown') AS atc_3,
                   count(DISTINCT f.BEN_NIR_PSA) AS people
            FROM ER_PHA_F d JOIN ER_PRS_F f ON {keys}
            LEFT JOIN drugs dr ON dr.PHA_PRS_C13 = d.PHA_PRS_C13
            WHERE f.EXE_SOI_DTD BETWEEN DATE '{last}-01-01' AND DATE '{last}-12-31'
            GROUP BY ALL
            """,
        ),
        Aggregate(
            f"top {TOP} providers by amount, CCAM family {family}",
            {
                "group_by": ["provider"],
                "filters": [{"dimension": "ccam:4", "in": [family]}],
                "measures": ["people", "sum:PRS_PAI_MNT"],
            },
            f"""
            SELECT f.PFS_EXE_NUM AS provider, count(DISTINCT f.BEN_NIR_PSA) AS people, sum(f.PRS_PAI_MNT) AS paid
            FROM ER_CAM_F d JOIN ER_PRS_F f ON {keys}
            WHERE substr(d.CAM_PRS_IDE, 1, 4) = '{family}' AND {period}
            GROUP BY ALL ORDER BY paid DESC NULLS LAST, provider LIMIT {TOP}
            """,
            top=TOP,
        ),
    ]


def plain_connection(plain_dir: Path, settings: Settings) -> duckdb.DuckDBPyConnection:
    """Plain DuckDB over the plaintext copies, with the memory and threads one governed run gets."""
    con = duckdb.connect(
        config={"memory_limit": f"{settings.analysis_memory_limit_mb}MB", "threads": settings.analysis_threads}
    )
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{plain_dir}/{table}.parquet')")
    regions = [(d, r) for r, ds in departements_by_region().items() for d in ds]
    con.register("dpt", pa.table({"GEO_DPT_COD": [d for d, _ in regions], "GEO_REG_COD": [r for _, r in regions]}))
    con.register("drugs", _drug_atc())
    return con


def run_plain(con: duckdb.DuckDBPyConnection, aggregate: Aggregate) -> tuple[float, int]:
    started = time.perf_counter()
    rows = con.sql(aggregate.plain_sql).to_arrow_table().num_rows
    return time.perf_counter() - started, rows


Governed = Callable[[Aggregate], tuple[float, int, str]]
"""Runs one aggregate through the governed path: (seconds, released rows, a note on what disclosure did)."""


def governed_runner(hub: Hub, project: Project) -> Governed:
    """The governed path: ``Analyses.submit_aggregate`` as the HTTP route calls it (access gate, job row,
    compilation, sandboxed run, disclosure control, release row, audit events, commits)."""
    from hygie.analysis.service import Analyses
    from hygie.analysis.spec import AggregateSpec
    from hygie.governance.accounts import ROLE_SCOPES, Actor
    from hygie.governance.policy import Role

    actor = Actor(account_id=project.requester_id, role=Role.RESEARCHER, scopes=ROLE_SCOPES[Role.RESEARCHER],
                  via="benchmark")  # fmt: skip

    def run(aggregate: Aggregate) -> tuple[float, int, str]:
        spec = AggregateSpec.model_validate(aggregate.spec)
        started = time.perf_counter()
        with hub.session() as session:
            analyses = Analyses(hub, session)
            job = analyses.submit_aggregate(actor, project.id, spec)
            if job.status != "succeeded":
                raise SystemExit(f"{aggregate.name}: the job {job.status}: {job.error}")
            _, release = analyses.job(actor, project.id, job.id)  # reading the outcome is part of the path
            session.commit()
            assert release is not None
            rows = analyses.rows_of(release) if release.status == "released" else []  # unsealed, as a download
            status, summary = release.status, dict(release.summary)
        if aggregate.top is not None:
            measure = aggregate.spec["measures"][-1].replace(":", "_")
            rows = sorted((r for r in rows if r.get(measure) is not None), key=lambda r: -float(r[measure]))
            rows = rows[: aggregate.top]
        elapsed = time.perf_counter() - started
        note = f"{status}, {summary.get('cells')} cells, {summary.get('suppressed')} suppressed"
        return elapsed, len(rows), note

    return run


def best(runs: int, fn: Callable[[], tuple[float, Any]]) -> tuple[float, Any]:
    results = [fn() for _ in range(runs)]
    return min(results, key=lambda r: r[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_400_000)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=12_288, help="DuckDB memory of one run, both paths")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-analysis-bench"))
    args = parser.parse_args()
    work = args.work.resolve()
    if Path(__file__).resolve().parents[1] in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; use a folder outside it (e.g. /tmp)")
    print(
        f"machine: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, pyarrow {pyarrow.__version__}",
        flush=True,
    )
    hub = prepare(work, args.people, args.years, args.seed, args.memory_mb)
    with hub.session() as session:
        care_rows = hub.warehouse.row_counts(session).get("ER_PRS_F", 0)
    plain_copies(hub, work / "plain")
    project, build_s = project_with_view(hub, args.years)
    family = act_family(work / "plain")
    governed = governed_runner(hub, project)
    con = plain_connection(work / "plain", hub.settings)
    lines = []
    for aggregate in aggregates(args.years, family):
        plain_s, plain_rows = best(args.repeat, lambda a=aggregate: run_plain(con, a))  # type: ignore[misc]
        gov = [governed(aggregate) for _ in range(args.repeat)]
        gov_s, released, note = min(gov, key=lambda r: r[0])
        first_s = gov[0][0]  # the process's first run of it: code lists, and for the first aggregate the view read
        line = (
            f"| {aggregate.name} | {plain_s:.2f} s ({plain_rows} rows) | {gov_s:.2f} s ({released} rows: {note}) | "
            f"{gov_s / plain_s:.2f} | {first_s:.2f} s, {first_s / plain_s:.2f} |"
        )
        print(line, flush=True)
        lines.append(line)
    con.close()
    print(f"\n{care_rows:,} care rows (ER_PRS_F); view built in "
          f"{'(reused)' if build_s is None else f'{build_s:.0f} s'}; best of {args.repeat}")  # fmt: skip
    print("| aggregate | plain DuckDB in clear | governed | governed / plain | first governed run, / plain |")
    print("|---|---|---|---|---|")
    print("\n".join(lines))
    hub.close()


if __name__ == "__main__":
    main()
