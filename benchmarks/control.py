# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The control rules through the governed path beside the same rules as plain DuckDB SQL, in one process.

    uv run python benchmarks/control.py [--people 1400000] [--years 2] [--work /tmp/hygie-analysis-bench]

The hub is ``benchmarks/analysis.py``'s (``hygie synth`` then ``hygie ingest``, made once and reused from
``--work``: the 1.4-million-person, two-year hub holds about 55 million care rows). One active control project
(purpose ``expenditure``, every care row of the period with exact care dates and the columns the rules read) has
its view built once (untimed). Then, ``--repeat`` times each, the best time printed:

- governed: :func:`hygie.control.leads.run` with every rule: the data gate, the view opened from its encrypted
  Parquet, the rules, providers pseudonymised, the run and its leads stored with their audit event, committed;
- plain: the same rule functions (the same SQL text) on a DuckDB connection over plain Parquet copies of the same
  view tables (decrypted once, untimed), the same settings, the same contact rings: no gate, no decryption, no
  storage, no record.

Both must find the same leads per rule (checked). The rules are described in ``docs/control.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.analysis import FIRST_YEAR, prepare, project_with_view
from benchmarks.machine import cpu_model
from hygie.control.leads import contact_rings, death_exact, run
from hygie.control.rules import RULES, Context
from hygie.governance.accounts import ROLE_SCOPES, Actor
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import Role
from hygie.governance.views import READY, open_view
from hygie.hub import Hub

TITLE = "Control benchmark"


def scope(years: int) -> dict[str, Any]:
    return {
        "tables": {
            "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_SGN",
                         "PFS_EXE_NUM", "PFS_PRE_NUM", "PSE_SPE_COD"],
            "IR_BEN_R": ["BEN_DCD_DTE", "BEN_RES_DPT"],
        },
        "population": {"period_start": f"{FIRST_YEAR}-01-01", "period_end": f"{FIRST_YEAR + years - 1}-12-31"},
        "potential_identifiers": ["care_dates"],
    }  # fmt: skip


def control_project(hub: Hub, years: int) -> tuple[Project, float | None]:
    """The benchmark's active control project, its view built once (build seconds, or None when reused)."""
    return project_with_view(
        hub, years, wanted=scope(years), title=TITLE, purpose="expenditure", requester_name="controller"
    )


def plain_copies(hub: Hub, project: Project, target: Path) -> dict[str, Path]:
    """The view's tables decrypted once into plain Parquet (untimed): the baseline reads these."""
    target.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    with hub.session() as session:
        con = open_view(hub, session, project)
        try:
            for (table,) in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
                path = target / f"{table}.parquet"
                out[str(table)] = path
                if path.exists():
                    continue
                reader = con.sql(f"SELECT * FROM {table}").to_arrow_reader(1 << 16)
                partial = path.with_suffix(".partial")
                with pq.ParquetWriter(partial, reader.schema, compression="zstd", compression_level=1) as writer:
                    for batch in reader:
                        writer.write_batch(batch)
                partial.rename(path)
        finally:
            con.close()
    return out


def governed(hub: Hub, actor: Actor, project: Project) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    done = run(hub, actor, project.id, list(RULES))
    return time.perf_counter() - started, dict(done.counts)


Rings = dict[str, tuple[str, int]]


def plain(hub: Hub, project: Project, files: dict[str, Path], rings: Rings) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    try:
        for table, path in files.items():
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
        ctx = Context(con, hub.settings, death_exact(project), rings)
        counts: Counter[str] = Counter()
        for name, rule in RULES.items():
            counts[name] += len(rule(ctx))
    finally:
        con.close()
    return time.perf_counter() - started, {name: counts.get(name, 0) for name in RULES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=1_400_000)
    parser.add_argument("--years", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=12_288)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-analysis-bench"))
    args = parser.parse_args()

    hub = prepare(args.work, args.people, args.years, args.seed, args.memory_mb)
    project, _built = control_project(hub, args.years)
    actor = Actor(account_id=project.requester_id, role=Role.RESEARCHER, scopes=ROLE_SCOPES[Role.RESEARCHER],
                  via="benchmark")  # fmt: skip
    files = plain_copies(hub, project, args.work / f"plain-control-{project.id}")
    with hub.session() as session:
        view = session.query(ProjectView).filter_by(project_id=project.id, status=READY).one()
        # the vault's keyed contacts, through the hub pseudonym version the view was built with: given to both sides
        rings = contact_rings(hub, session, project.id, view.pseudonym_version)
        care = view.tables["ER_PRS_F"]
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}, load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    print(f"view: {int(care['rows']):,} care rows; rules: {', '.join(RULES)}", flush=True)
    plain(hub, project, files, rings)  # untimed: the rules' libraries (scikit-learn) imported once, for both
    best_governed = best_plain = float("inf")
    found_governed: dict[str, int] = {}
    found_plain: dict[str, int] = {}
    for i in range(args.repeat):
        seconds, found_plain = plain(hub, project, files, rings)
        best_plain = min(best_plain, seconds)
        print(f"  plain    #{i + 1}: {seconds:7.2f} s {found_plain}", flush=True)
        seconds, found_governed = governed(hub, actor, project)
        best_governed = min(best_governed, seconds)
        print(f"  governed #{i + 1}: {seconds:7.2f} s {found_governed}", flush=True)
    if found_governed != found_plain:
        raise SystemExit(f"the two paths found different leads: {found_governed} != {found_plain}")
    print(f"all rules: governed {best_governed:.2f} s, plain DuckDB {best_plain:.2f} s, "
          f"ratio {best_governed / best_plain:.2f}; same leads per rule: {found_governed}")  # fmt: skip
    hub.close()


if __name__ == "__main__":
    main()
