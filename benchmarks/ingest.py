# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Secure ingestion throughput beside a plain DuckDB CSV-to-Parquet conversion of the same files.

    uv run python benchmarks/ingest.py [--people 250000] [--years 2] [--seed 7] [--work bench-data]

The synthetic delivery is generated once into the work folder and reused. Both paths then run in this
process on the same files: the plain path converts every CSV to Parquet with DuckDB (no checks, no security);
the secure path is `hygie ingest` (all checks, identity split, pseudonyms, encrypted Parquet, citizens' extracts,
catalog commit). After it, timed apart, the citizen index's merge of the batches' extracts into its person-first
table: the background tasks' work, off the ingestion's path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from hygie.config import Settings
from hygie.governance.accounts import CONSOLE
from hygie.governance.citizen_index import merge_recorded
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.synth import generate


def rows_in(batches: list[Path]) -> dict[str, int]:
    total: dict[str, int] = {}
    for b in batches:
        for f in json.loads((b / "manifest.json").read_text())["files"]:
            table = f["name"].removesuffix(".csv")
            total[table] = total.get(table, 0) + f["rows"]
    return total


def plain(batches: list[Path], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con = duckdb.connect()
    started = time.perf_counter()
    for b in batches:
        for csv in sorted(b.glob("*.csv")):
            target = out / f"{b.name}-{csv.stem}.parquet"
            con.execute(f"COPY (SELECT * FROM read_csv('{csv}', header=true)) TO '{target}' (FORMAT parquet)")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def secure(batches: list[Path], data_dir: Path) -> tuple[float, float]:
    """Ingestion of every batch, then (timed apart) the citizen index's merge of their extracts, which the
    background tasks do off the ingestion's path."""
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, key_passphrase="benchmark passphrase")  # type: ignore[arg-type]
    hub = Hub.init(settings)
    started = time.perf_counter()
    for result in ingest_batches(hub, batches):  # as `hygie ingest` takes a delivery
        if result.status != "accepted":
            raise SystemExit(f"{result.batch_dir.name}: {result.status} {result.errors[:5]}")
    elapsed = time.perf_counter() - started
    started = time.perf_counter()
    merge_recorded(hub, CONSOLE)
    merged = time.perf_counter() - started
    hub.close()
    return elapsed, merged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=250_000)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("bench-data"))
    args = parser.parse_args()

    deliveries = args.work / f"deliveries-p{args.people}-y{args.years}-s{args.seed}"
    if not (deliveries / ".complete").exists():
        shutil.rmtree(deliveries, ignore_errors=True)
        started = time.perf_counter()
        summary = generate(deliveries, people=args.people, years=args.years, seed=args.seed)
        took = time.perf_counter() - started
        (deliveries / ".complete").write_text("")
        total = sum(summary.rows.values())
        print(f"synth: {total:,} rows in {took:.1f} s ({total / took:,.0f} rows/s)")
    batches = expand_batches([deliveries])
    rows = rows_in(batches)
    total = sum(rows.values())
    care = rows.get("ER_PRS_F", 0)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"delivery: {len(batches)} batches, {total:,} rows ({care:,} ER_PRS_F care-sheet rows): {rows}")

    plain_s = plain(batches, args.work / "plain-parquet")
    secure_s, merge_s = secure(batches, args.work / "hub")
    print(f"plain DuckDB CSV->Parquet: {plain_s:8.1f} s  {total / plain_s:12,.0f} rows/s")
    print(
        f"secure hygie ingest:       {secure_s:8.1f} s  {total / secure_s:12,.0f} rows/s"
        f"  ({care / secure_s:,.0f} care rows/s)"
    )
    print(f"ratio secure/plain throughput: {plain_s / secure_s:.2f}")
    print(f"then the citizen index's merge of the batches' extracts (background): {merge_s:.1f} s")


if __name__ == "__main__":
    main()
