# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie control ...``: control of spending inside a control project.

Leads found by rules (each with its evidence) and the improper-payment rate (a reviewed stratified sample) are two
separate sub-commands and never merged. Heavy imports happen inside the commands so that ``hygie --help`` stays
instant.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hygie.apiclient import DEFAULT_SERVER, Server, call

control_app = typer.Typer(
    help="Control of spending: leads found by rules, with their evidence; the improper-payment rate.",
    no_args_is_help=True,
)

leads_app = typer.Typer(
    help="Leads found by rules: runs recorded per project, and a benchmark of the rules on injected anomalies.",
    no_args_is_help=True,
)
control_app.add_typer(leads_app, name="leads")


@leads_app.command("runs")
def runs(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Control runs of a project, newest first: when, which view generation, and how many leads per rule (counts
    as any count leaving a project: rounded, none under the threshold; the leads themselves are read in the portal
    through the project's data gate). Asks the API as the holder of HYGIE_TOKEN: a project's researchers and the
    roles that oversee it; never the operator."""
    found = call(server, "GET", f"/projects/{project}/control/runs").json()
    for r in found:
        if as_json:
            typer.echo(json.dumps(r))
        else:
            counts = ", ".join(f"{rule} {'fewer than the threshold' if n is None else n}"
                               for rule, n in r["leads"].items())  # fmt: skip
            typer.echo(f"run {r['run']} ({r['at'][:16].replace('T', ' ')}, view {r['view_generation']}): {counts}")
    if not found and not as_json:
        typer.echo(f"no control run yet in project {project}")


@leads_app.command("bench")
def bench(
    people: Annotated[int, typer.Option(min=200, max=2_000_000, help="Synthetic beneficiaries.")] = 3_000,
    seed: Annotated[int, typer.Option(help="Seed of the population and of the injected anomalies.")] = 17,
) -> None:
    """Precision and recall of each rule family on a throwaway synthetic hub with every anomaly kind injected
    at its default rate (nothing touches the configured hub)."""
    from hygie.control.bench import bench as run_bench
    from hygie.control.measure import table

    result = run_bench(people, seed)
    typer.echo(table(result.scores))
    typer.echo(
        f"\n{result.people} people, {result.care_rows:,} care rows (before injection); all rules over the project's "
        f"view in {result.seconds_rules:.2f} s; whole bench {result.seconds_total:.1f} s"
    )


# The improper-payment rate (helper C2's sub-app): kept apart from leads, as the issue asks.
from hygie.control.rate_cli import rate_app  # noqa: E402  (after the group it joins)

control_app.add_typer(rate_app, name="rate")
