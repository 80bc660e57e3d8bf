# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""From approval to a queryable view, beside plain DuckDB making the same selection from plaintext Parquet.

    uv run python benchmarks/governance.py [--people 20000 1000000] [--years 1] [--seed 7] [--work DIR]

For each population size a hub is prepared once in ``<work>/hub-<people>`` (``hygie synth`` then ``hygie
ingest``; several minutes at a million people on two cores) and reused by later runs; keep the work folder outside
the repository. Plaintext Parquet copies of the warehouse tables are made once too (untimed), for the baseline.

Timed, in this process, for each scope:

- secure: ``build_view`` (population, opt-outs, re-keyed pseudonyms, generalisation, encrypted Parquet under the
  project's key, membership file, catalog row, audit event) and its commit, then ``open_view`` and one count query;
- plain: DuckDB selects the same population, period and columns from the plaintext copies and writes them as
  plain Parquet (no encryption, no re-keying, no claim key, no membership), then the same count query.

Then, per population, the citizen index's merge (``merge_recorded``: what the background tasks do once
``citizen_index_merge_waiting`` generations wait, off the approval's path) of every generation waiting, this run's
and earlier runs' on the same hub: its time and its time per generation, the share each build leaves for later.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import pyarrow
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from hygie.config import Settings
from hygie.governance.accounts import CONSOLE
from hygie.governance.citizen_index import merge_recorded
from hygie.governance.models import Account, Project
from hygie.governance.views import build_view, destroy_view, open_view
from hygie.hub import Hub
from hygie.ingest.contract import DCIR_KEYS
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.synth import generate

PASSPHRASE = "hygie governance benchmark"
"""A benchmark-only hub; a light Argon2id so that opening it costs nothing measurable."""

YEAR = {"period_start": "2023-01-01", "period_end": "2023-12-31"}
SCOPES: dict[str, dict[str, Any]] = {
    "adults, one year": {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
            "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT", "EXO_MTF", "PSE_SPE_COD"],
            "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
        },
        "population": {**YEAR, "age_min": 18},
    },
    "statin users, one year": {
        "tables": {
            "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
            "ER_PRS_F": ["EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"],
            "ER_PHA_F": ["PHA_PRS_C13", "PHA_ACT_QSN"],
        },
        "population": {**YEAR, "drugs_atc": ["C10"]},
    },
}
COUNT = "SELECT count(*), count(DISTINCT BEN_NIR_PSA) FROM ER_PRS_F"


def settings_for(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        key_passphrase=PASSPHRASE,  # type: ignore[arg-type]
        kdf_memory_kib=8192,
        kdf_iterations=1,
        kdf_lanes=1,
    )


def prepare(work: Path, people: int, years: int, seed: int) -> Hub:
    """A hub holding the synthetic population, made once and reused."""
    data_dir = work / f"hub-{people}"
    settings = settings_for(data_dir)
    if (data_dir / "keys" / "keystore.json").exists():
        hub = Hub.open(settings)
        with hub.session() as session:
            if hub.warehouse.row_counts(session).get("IR_BEN_R") == people:
                print(f"[{people:,}] reusing the hub in {data_dir}", flush=True)
                return hub
        raise SystemExit(f"{data_dir} holds another population: remove it or pick another --work folder")
    hub = Hub.init(settings)
    delivery = work / f"delivery-{people}"
    started = time.perf_counter()
    print(f"[{people:,}] synthesising {people:,} people x {years} year(s) into {delivery}", flush=True)
    generate(delivery, people=people, years=years, seed=seed, start_year=2023)
    print(f"[{people:,}] synthesised in {time.perf_counter() - started:.0f} s; ingesting", flush=True)
    started = time.perf_counter()
    for result in ingest_batches(hub, expand_batches([delivery])):
        if result.status != "accepted":
            raise SystemExit(f"batch {result.batch_dir} was {result.status}: {result.errors[:3]}")
    print(f"[{people:,}]   ingested ({time.perf_counter() - started:.0f} s)", flush=True)
    return hub


def plain_copies(hub: Hub, target: Path) -> None:
    """Decrypted copies of the warehouse tables for the baseline (untimed, made once)."""
    target.mkdir(parents=True, exist_ok=True)
    with hub.session() as session:
        for table in ("IR_BEN_R", "ER_PRS_F", "ER_PHA_F"):
            path = target / f"{table}.parquet"
            if path.exists():
                continue
            dataset = hub.warehouse.dataset(session, table)
            assert dataset is not None, f"the warehouse has no {table}"
            with pq.ParquetWriter(path, dataset.schema, compression="zstd", compression_level=1) as writer:
                for batch in dataset.to_batches():
                    writer.write_batch(batch)


def plain(source: Path, out: Path, scope: dict[str, Any]) -> tuple[float, tuple[Any, ...]]:
    """The same selection with plain DuckDB: no encryption, no re-keying."""
    out.mkdir(parents=True, exist_ok=True)
    pop = scope["population"]
    con = duckdb.connect()
    started = time.perf_counter()
    period = f"c.EXE_SOI_DTD BETWEEN DATE '{pop['period_start']}' AND DATE '{pop['period_end']}'"
    ben = f"read_parquet('{source}/IR_BEN_R.parquet')"
    prs = f"read_parquet('{source}/ER_PRS_F.parquet')"
    pha = f"read_parquet('{source}/ER_PHA_F.parquet')"
    keys = " AND ".join(f"d.{k} = c.{k}" for k in DCIR_KEYS)
    where = "TRUE"
    if "age_min" in pop:
        where = f"2023 - BEN_NAI_ANN >= {pop['age_min']}"
    people = f"SELECT BEN_NIR_PSA FROM {ben} WHERE {where}"
    if "drugs_atc" in pop:
        drugs = Path(__file__).resolve().parents[1] / "hygie" / "reference" / "drugs.csv"
        codes = f"SELECT PHA_PRS_C13 FROM read_csv('{drugs}', comment='#', header=true) WHERE PHA_ATC_C07 LIKE 'C10%'"
        people = (
            f"SELECT DISTINCT c.BEN_NIR_PSA FROM {pha} d JOIN {prs} c ON {keys} "
            f"WHERE {period} AND d.PHA_PRS_C13 IN ({codes})"
        )
    con.execute(f"CREATE TABLE pop AS {people}")
    tables = scope["tables"]

    def cols(table: str) -> str:
        out = []
        for c in tables[table]:
            out.append(f"date_trunc('month', {c})::DATE AS {c}" if c == "EXE_SOI_DTD" else c)
        return ", ".join(out)

    con.execute(
        f"COPY (SELECT BEN_NIR_PSA, {cols('IR_BEN_R')} FROM {ben} WHERE BEN_NIR_PSA IN (SELECT * FROM pop)) "
        f"TO '{out}/IR_BEN_R.parquet'"
    )
    con.execute(
        f"COPY (SELECT {', '.join(DCIR_KEYS)}, BEN_NIR_PSA, {cols('ER_PRS_F')} FROM {prs} c "
        f"WHERE {period} AND BEN_NIR_PSA IN (SELECT * FROM pop)) TO '{out}/ER_PRS_F.parquet'"
    )
    detail = ", ".join(f"d.{c}" for c in [*DCIR_KEYS, *tables["ER_PHA_F"]])
    con.execute(
        f"COPY (SELECT {detail} FROM {pha} d JOIN {prs} c ON {keys} "
        f"WHERE {period} AND c.BEN_NIR_PSA IN (SELECT * FROM pop)) TO '{out}/ER_PHA_F.parquet'"
    )
    result = con.sql(COUNT.replace("ER_PRS_F", f"read_parquet('{out}/ER_PRS_F.parquet')")).fetchall()[0]
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed, result


def secure(hub: Hub, scope: dict[str, Any]) -> tuple[float, tuple[Any, ...], dict[str, int], float]:
    """Approval to a queryable view: build and commit, open, one count query. Then destroy (timed apart)."""
    now = datetime.now(UTC)
    with hub.session() as session:
        requester = session.query(Account).filter_by(username="benchmark").one_or_none()
        if requester is None:
            requester = Account(
                username="benchmark", role="researcher", password_hash="-", created_at=now, created_by="benchmark"
            )
            session.add(requester)
            session.flush()
        project = Project(
            requester_id=requester.id,
            organisation="Benchmark",
            title="Benchmark",
            purpose="research",
            justification="benchmark",
            public_summary="benchmark",
            scope=scope,
            duration_days=365,
            threshold=11,
            status="active",
            created_at=now,
        )
        session.add(project)
        session.commit()
        started = time.perf_counter()
        view = build_view(hub, session, project, actor="benchmark")
        session.commit()
        con = open_view(hub, session, project)
        result = con.sql(COUNT).fetchall()[0]
        elapsed = time.perf_counter() - started
        con.close()
        rows = {t: m["rows"] for t, m in view.tables.items()}
        started = time.perf_counter()
        destroy_view(hub, session, project, actor="benchmark")
        session.commit()
        return elapsed, result, rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, nargs="+", default=[20_000, 1_000_000])
    parser.add_argument("--years", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-gov-bench"))
    args = parser.parse_args()
    work = args.work.resolve()
    if Path(__file__).resolve().parents[1] in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; use a folder outside it (e.g. /tmp)")
    print(
        f"machine: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, pyarrow {pyarrow.__version__}",
        flush=True,
    )
    lines: list[str] = []
    merges: list[str] = []
    for people in args.people:
        hub = prepare(work, people, args.years, args.seed)
        plain_copies(hub, work / f"plain-{people}")
        for name, scope in SCOPES.items():
            print(f"[{people:,}] {name}: plain DuckDB ...", flush=True)
            plain_s, plain_result = plain(work / f"plain-{people}", work / f"plain-out-{people}", scope)
            print(f"[{people:,}] {name}: secure view ...", flush=True)
            secure_s, secure_result, rows, destroy_s = secure(hub, scope)
            if tuple(secure_result) != tuple(plain_result):
                raise SystemExit(f"the two paths disagree: secure {secure_result}, plain {plain_result}")
            view = f"{secure_result[1]:,} people with care, {rows.get('ER_PRS_F', 0):,} care rows, "
            line = (
                f"| {people:,} | {name} | {view}{rows.get('ER_PHA_F', 0):,} dispensations | {plain_s:.1f} s | "
                f"{secure_s:.1f} s | "
                f"{secure_s / plain_s:.1f} | {destroy_s:.2f} s |"
            )
            print(line, flush=True)
            lines.append(line)
        started = time.perf_counter()
        moved = merge_recorded(hub, CONSOLE).generations
        merged_s = time.perf_counter() - started
        merges.append(
            f"[{people:,}] citizen index merge (background, off the approval's path): {moved} generation(s) in "
            f"{merged_s:.1f} s" + (f", {merged_s / moved:.1f} s per generation" if moved else "")
        )
        print(merges[-1], flush=True)
        hub.close()
    print("\n| people | scope | view | plain DuckDB | approval to queryable view | secure / plain | destroy |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    print("\n".join(merges))


if __name__ == "__main__":
    main()
