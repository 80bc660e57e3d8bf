# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A differential-privacy release beside the same aggregate with suppression and rounding, in one process: time and
utility.

    uv run python benchmarks/dp.py [--people 5000] [--years 1] [--seed 11] [--work /tmp/hygie-dp-bench] [--repeat 3]

The hub and the project's view are made once (``benchmarks/analysis.py``'s ``prepare`` and ``project_with_view``:
``hygie synth`` then ``hygie ingest``, one active project over everyone) and reused by later runs in ``--work``.
Each aggregate of ``SPECS`` runs through the governed path (``Analyses.submit_aggregate``: access gate, job row,
compilation, sandboxed DuckDB run on the encrypted view, release row, audit events, commits) ``--repeat`` times with
the project in 'sdc' mode (threshold, complementary suppression, keyed rounding, the release ledger) and as many in
'dp' mode (budget reserved and settled, OpenDP's Gaussian noise on every cell of the public grid); the best time of
each is printed.

Utility, per aggregate: each released cell against the exact value (the same aggregate computed by the platform's
compiler with no folding of rare codes and no protection), over cells whose codes are listed by both releases (no
'other'): the relative error |released - exact| / exact of the people count and of the summed amount, median and
90th percentile, for suppression-and-rounding (cells it released) and for DP (every cell), and the cells lost to
suppression. The DP figures are for the default settings (rho per statistic, contribution bounds): the bench project
gets a large budget so that repeats never run out.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import hygie  # noqa: F401  (first: it sets Arrow's allocator options, which pyarrow reads once, as it loads)

# isort: split

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.analysis import prepare, project_with_view
from benchmarks.machine import cpu_model
from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.compile import OTHER, compile_aggregate, output_table
from hygie.analysis.engine import Limits, engine_for
from hygie.analysis.service import Analyses
from hygie.analysis.spec import AggregateSpec
from hygie.governance.accounts import ROLE_SCOPES, Actor
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import Role, Scope
from hygie.governance.privacy import open_budgets
from hygie.governance.views import READY
from hygie.hub import Hub

SPECS: dict[str, dict[str, Any]] = {
    "people and amounts by sex x age band (10 years)": {
        "group_by": ["sex", "age_band:10"],
        "measures": ["people", "sum:PRS_PAI_MNT"],
    },
    "people and amounts by region x age band (20 years)": {
        "group_by": ["region", "age_band:20"],
        "measures": ["people", "sum:PRS_PAI_MNT"],
    },
}
BENCH_BUDGET = 1000.0
"""rho of the bench project and its population: repeats never run out (a real budget is about 1)."""
Key = tuple[str, ...]


def set_mode(hub: Hub, project_id: int, mode: str) -> None:
    with hub.session() as session:
        project = session.get(Project, project_id)
        assert project is not None
        project.release_mode = mode
        project.privacy_budget = BENCH_BUDGET if mode == "dp" else None
        if mode == "dp":
            open_budgets(session, project, population_budget=BENCH_BUDGET, actor="benchmark")
        session.commit()


def governed(hub: Hub, project: Project, spec: AggregateSpec) -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
    actor = Actor(account_id=project.requester_id, role=Role.RESEARCHER, scopes=ROLE_SCOPES[Role.RESEARCHER],
                  via="benchmark")  # fmt: skip
    started = time.perf_counter()
    with hub.session() as session:
        analyses = Analyses(hub, session)
        job = analyses.submit_aggregate(actor, project.id, spec)
        if job.status != "succeeded":
            raise SystemExit(f"the job {job.status}: {job.error}")
        _, release = analyses.job(actor, project.id, job.id)
        session.commit()
        assert release is not None
        rows = analyses.rows_of(release) if release.status == "released" else []
        summary = dict(release.summary)
    return time.perf_counter() - started, rows, summary


def exact(hub: Hub, project: Project, spec: AggregateSpec) -> dict[Key, tuple[int, float]]:
    """(people, summed amount) per cell, every code listed (threshold 1), no protection: the truth."""
    with hub.session() as session:
        view = session.query(ProjectView).filter_by(project_id=project.id, status=READY).one()
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        year = Scope.model_validate(project.scope).population.period_start.year
        keys = project_record_keys(hub, session, project)
        plan = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=1)
        run = engine_for(hub).run(project, plan.query, Limits.from_settings(hub.settings))
    amount = next(m.name for m in spec.measures if m.kind == "sum")
    table = output_table(plan, run.table)
    return {tuple(str(k) for k in c.key): (c.people, float(c.values.get(amount) or 0.0)) for c in table.cells}


def relative_errors(
    rows: list[dict[str, Any]], labels: list[str], amount: str, truth: dict[Key, tuple[int, float]]
) -> tuple[list[float], list[float], int, int]:
    """Relative errors of people and amounts over comparable cells with a nonzero exact value; cells compared;
    cells suppressed among them."""
    people_err: list[float] = []
    amount_err: list[float] = []
    compared = suppressed = 0
    for row in rows:
        key = tuple(str(row[label]) for label in labels)
        if OTHER in key or key not in truth:
            continue
        true_people, true_amount = truth[key]
        if true_people == 0:
            continue
        compared += 1
        if row.get("suppressed") or row.get("people") is None:
            suppressed += 1
            continue
        people_err.append(abs(float(row["people"]) - true_people) / true_people)
        if true_amount > 0 and row.get(amount) is not None:
            amount_err.append(abs(float(row[amount]) - true_amount) / true_amount)
    return people_err, amount_err, compared, suppressed


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{100 * statistics.median(ordered):.1f} % / {100 * p90:.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--years", type=int, default=1)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hygie-dp-bench"))
    args = parser.parse_args()
    work = args.work.resolve()
    if Path(__file__).resolve().parents[1] in work.parents:
        raise SystemExit(f"--work {work} is inside the repository; use a folder outside it (e.g. /tmp)")
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), Python {platform.python_version()}, "
          f"DuckDB {duckdb.__version__}", flush=True)  # fmt: skip
    hub = prepare(work, args.people, args.years, args.seed, args.memory_mb)
    with hub.session() as session:
        care_rows = hub.warehouse.row_counts(session).get("ER_PRS_F", 0)
    project, _ = project_with_view(hub, args.years)
    s = hub.settings
    timing: list[str] = []
    utility: list[str] = []
    for name, raw in SPECS.items():
        spec = AggregateSpec.model_validate(raw)
        labels = [d.label for d in spec.group_by]
        amount = next(m.name for m in spec.measures if m.kind == "sum")
        runs: dict[str, tuple[float, list[dict[str, Any]], dict[str, Any]]] = {}
        for mode in ("sdc", "dp"):
            set_mode(hub, project.id, mode)
            results = [governed(hub, project, spec) for _ in range(args.repeat)]
            runs[mode] = min(results, key=lambda r: r[0])
        set_mode(hub, project.id, "sdc")
        sdc_s, sdc_rows, sdc_summary = runs["sdc"]
        dp_s, dp_rows, dp_summary = runs["dp"]
        timing.append(f"| {name} | {sdc_s:.2f} s ({sdc_summary.get('cells')} cells, "
                      f"{sdc_summary.get('suppressed')} suppressed) | {dp_s:.2f} s ({dp_summary.get('cells')} cells, "
                      f"rho {dp_summary.get('rho')}) | {dp_s / sdc_s:.2f} |")  # fmt: skip
        truth = exact(hub, project, spec)
        sp, sa, s_compared, s_lost = relative_errors(sdc_rows, labels, amount, truth)
        dpp, dpa, d_compared, _ = relative_errors(dp_rows, labels, amount, truth)
        utility.append(f"| {name} | {s_compared} | {s_lost} | {quantiles(sp)} | {quantiles(sa)} | {d_compared} | "
                       f"{quantiles(dpp)} | {quantiles(dpa)} |")  # fmt: skip
    print(f"\n{args.people:,} people, {care_rows:,} care rows (ER_PRS_F); best of {args.repeat}; DP: zCDP, rho "
          f"{s.dp_rho_per_statistic} per statistic, at most {s.dp_events_per_person} events and "
          f"{s.dp_amount_lower:g}..{s.dp_amount_upper:g} of amount per person and cell")  # fmt: skip
    print("| aggregate | suppression and rounding | differential privacy | DP / SDC |")
    print("|---|---|---|---|")
    print("\n".join(timing))
    print("\nrelative error per cell, median / 90th percentile, over cells of nonzero exact value outside 'other'")
    print("| aggregate | SDC cells | SDC suppressed | SDC people | SDC amount | DP cells | DP people | DP amount |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(utility))
    hub.close()


if __name__ == "__main__":
    main()
