# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rotating the hub pseudonym key, beside plain DuckDB re-keying plaintext Parquet copies of the same tables.

    uv run python benchmarks/rotation.py [--people 200000] [--years 1] [--work /tmp/hygie-rotation-bench]

The hub is ``benchmarks/analysis.py``'s (``hygie synth`` then ``hygie ingest``, made once and reused from
``--work``), with one project view built (untimed) so that a membership file is re-keyed too. Timed, in this
process:

- governed: :func:`hygie.governance.pseudonym_rotation.rotate` (grace period 0): a new key version, every NIR of
  the vault decrypted and pseudonymised under both versions, every warehouse file holding pseudonyms and every
  membership file decrypted, re-keyed, encrypted under a fresh data key and made durable one by one, the switch
  transaction, the citizen index rebuilt, the old files removed, three audit events;
- plain: from the NIRs in clear (read from the vault, untimed) and the current pseudonyms, new pseudonyms by
  HMAC-SHA-256 with the standard library, then DuckDB joins plaintext copies of the same tables to that mapping
  and writes them as Parquet: no vault, no encryption, no durability, no catalog, no index.

Both must leave the same number of rows and of distinct pseudonyms per table (checked).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import platform
import secrets
import shutil
import sys
import time
from pathlib import Path

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import pyarrow as pa
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.analysis import plain_copies, prepare, project_with_view
from benchmarks.machine import cpu_model
from hygie.governance.pseudonym_rotation import rotate
from hygie.identity.pseudonym import active_version, encode_pseudonyms
from hygie.identity.vault import IdentityRow

TABLES = ("IR_BEN_R", "ER_PRS_F")
"""The warehouse tables that hold BEN_NIR_PSA (detail tables are tied to care rows by the claim key)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--years", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-rotation-bench"))
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    hub = prepare(args.work, args.people, args.years, args.seed, 4096)
    hub.settings.pseudonym_rotation_grace_seconds = 0.0
    project_with_view(hub, args.years)
    plain_dir = args.work / "plain"
    shutil.rmtree(plain_dir, ignore_errors=True)  # made again: each run leaves the hub under a new key version
    plain_copies(hub, plain_dir)

    # The plain side starts from every NIR in clear and its current pseudonym (untimed).
    with hub.session() as session:
        version = active_version(session)
        indexes = list(session.scalars(select(IdentityRow.person_index).distinct()))
        nirs = [i.nir for i in hub.vault(session).identities_of(indexes).values()]
    old = hub.pseudonymiser.at(version).pseudonyms(nirs, cache=False)
    con = duckdb.connect()
    out = args.work / "plain-rekeyed"
    out.mkdir(exist_ok=True)
    key = secrets.token_bytes(32)
    started = time.perf_counter()
    new = encode_pseudonyms([hmac.new(key, n.encode("ascii"), hashlib.sha256).digest() for n in nirs])
    con.register("mapping_arrow", pa.table({"old": old, "new": new}))
    con.execute("CREATE TABLE mapping AS SELECT * FROM mapping_arrow")
    for table in TABLES:
        con.execute(
            f"COPY (SELECT t.* REPLACE (m.new AS BEN_NIR_PSA) FROM read_parquet('{plain_dir / table}.parquet') t "
            f"JOIN mapping m ON t.BEN_NIR_PSA = m.old) TO '{out / table}.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
    plain_seconds = time.perf_counter() - started
    plain_counts = {
        t: con.execute(
            f"SELECT count(*), count(DISTINCT BEN_NIR_PSA) FROM read_parquet('{out / t}.parquet')"
        ).fetchone()
        for t in TABLES
    }

    started = time.perf_counter()
    done = rotate(hub, actor="benchmark")
    governed_seconds = time.perf_counter() - started
    with hub.session() as session:
        wh = hub.warehouse.connect(session, list(TABLES))
        governed_counts = {
            t: wh.execute(f"SELECT count(*), count(DISTINCT BEN_NIR_PSA) FROM {t}").fetchone() for t in TABLES
        }
        wh.close()
    assert governed_counts == plain_counts, (governed_counts, plain_counts)
    rows = sum(int(c[0]) for c in governed_counts.values())  # type: ignore[index]
    print(f"rows re-keyed: {rows:,} in {done.warehouse_files} warehouse files and {done.membership_files} "
          f"membership files, {done.people:,} people (version {done.from_version} -> {done.to_version})")  # fmt: skip
    print(f"governed rotation: {governed_seconds:.1f} s ({rows / governed_seconds:,.0f} rows/s)")
    print(f"plain DuckDB re-keying: {plain_seconds:.1f} s ({rows / plain_seconds:,.0f} rows/s)")
    print(f"ratio governed / plain: {governed_seconds / plain_seconds:.2f}x; load after {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
