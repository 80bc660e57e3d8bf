# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie control rate ...``: the improper-payment rate from the command line.

``show`` prints the estimates released from a control project's samples (released numbers only), asked of the API
as a person who may see them (never the operator's console); ``simulate`` runs the estimator's coverage simulation
on a synthetic population of known rate (no hub). The sample is drawn, reviewed and released in the portal, by
the project's researchers and trained reviewers: those acts read the project's view, which the console never does.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hygie.apiclient import DEFAULT_SERVER, Server, call

rate_app = typer.Typer(help="The improper-payment rate: released estimates, the estimator's coverage simulation.",
                       no_args_is_help=True)  # fmt: skip


@rate_app.command("show")
def show(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per estimate.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Estimates released from the project's samples, newest first: 'estimated improper payments: X % (95 % CI
    a–b), from n reviewed claims'. Never a count of fraud, never merged with leads detected by rules. Asks the API
    as the holder of HYGIE_TOKEN: a project's researchers and the roles that oversee it; never the operator."""
    rows = call(server, "GET", f"/projects/{project}/control/estimates").json()
    for row in rows:
        typer.echo(json.dumps(row) if as_json else f"sample {row['sample_id']}: {row['statement']}")
    if not rows and not as_json:
        typer.echo(f"no estimate released yet in project {project}")


@rate_app.command("simulate")
def simulate(
    replicates: Annotated[int, typer.Option(min=10, max=100_000, help="Replicate samples drawn.")] = 1_000,
    seed: Annotated[int, typer.Option(help="Seed of the population and of the draws.")] = 2026,
    half_width: Annotated[float, typer.Option(help="Target half-width the samples are sized for.")] = 0.01,
    expected_rate: Annotated[float, typer.Option(help="Rate assumed when sizing the samples.")] = 0.09,
    min_per_stratum: Annotated[int, typer.Option(min=2, help="Fewest claims per stratum.")] = 30,
) -> None:
    """How often the 95 % interval holds the true rate, over replicate samples of a synthetic population."""
    from hygie.console import fail
    from hygie.control.estimate import EstimateError, simulate_coverage, synthetic_population

    xs, ys = synthetic_population(seed)
    try:
        found = simulate_coverage(xs, ys, replicates=replicates, seed=seed + 1, half_width=half_width,
                                  expected_rate=expected_rate, min_per_stratum=min_per_stratum)  # fmt: skip
    except EstimateError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"true rate {found.truth * 100:.2f} %, {found.replicates} samples of {found.sample_size} claims: "
        f"the 95 % interval held it in {found.covered * 100:.1f} % of them "
        f"(mean estimate {found.mean_rate * 100:.2f} %, median half-width {found.median_half_width * 100:.2f} points)"
    )
