# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie control rate ...``: the improper-payment rate from the command line.

``show`` prints the estimates released from a control project's samples (released numbers only), asked of the API
as a person who may see them (never the operator's console); ``simulate`` runs the estimator's coverage simulation
on a synthetic population of known rate (no hub). ``samples``, ``draw``, ``designate``, ``queue``, ``claim``,
``review`` and ``release`` are the portal's acts over the API, by the project's researchers and trained reviewers,
as the holder of HYGIE_TOKEN: those acts read the project's view, which the console never does.
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


ProjectArg = Annotated[int, typer.Argument(help="The control project's id.")]
SampleArg = Annotated[int, typer.Argument(help="The sample's id.")]


@rate_app.command("samples")
def samples(project: ProjectArg, server: Server = DEFAULT_SERVER) -> None:
    """The project's samples with their progress, and its trained claim reviewers."""
    found = call(server, "GET", f"/projects/{project}/control/samples").json()
    for item in found["samples"]:
        typer.echo(f"sample {item['id']} ({item['drawn_at'][:16].replace('T', ' ')}, view {item['view_generation']}):"
                   f" {item['reviewed']} of {item['drawn']} claims reviewed")  # fmt: skip
    if not found["samples"]:
        typer.echo(f"no sample drawn yet in project {project}")
    for r in found["reviewers"]:
        typer.echo(f"trained reviewer: account {r['account_id']} ({r['username']}): {r['training']}")


@rate_app.command("draw")
def draw(project: ProjectArg, server: Server = DEFAULT_SERVER) -> None:
    """Draw a stratified random sample of the project's paid claims, sized by the hub's design settings; its seed
    is recorded. Whoever draws it does not review it."""
    drawn = call(server, "POST", f"/projects/{project}/control/samples").json()
    typer.echo(f"sample {drawn['id']}: {drawn['drawn']} claims drawn (view {drawn['view_generation']})")


@rate_app.command("designate")
def designate(
    project: ProjectArg,
    account: Annotated[int, typer.Argument(help="A researcher member of the project.")],
    training: Annotated[str, typer.Option("--training", help="What training they had (10 to 300 characters).")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Designate a member as a trained claim reviewer (the project's requester; never themselves)."""
    row = call(server, "POST", f"/projects/{project}/control/reviewers",
               json={"account_id": account, "training": training}).json()  # fmt: skip
    typer.echo(f"account {row['account_id']} is a trained claim reviewer of project {project}")


@rate_app.command("queue")
def queue(
    project: ProjectArg,
    sample: SampleArg,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per claim.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """A sample's review queue, awaiting review first (its trained reviewers, never who drew it)."""
    found = call(server, "GET", f"/projects/{project}/control/samples/{sample}/claims").json()
    if not as_json:
        typer.echo(f"sample {sample}: {found['reviewed']} of {len(found['claims'])} claims reviewed")
    for c in found["claims"]:
        if as_json:
            typer.echo(json.dumps(c))
            continue
        done = c["decision"] or "to review"
        if c["decision"] == "improper":
            done += f" ({c['reason']}, {c['error_amount']:.2f} EUR in error)"
        typer.echo(f"claim {c['claim_key']} [{c['stratum']}] {c['amount']:.2f} EUR: {done}")


@rate_app.command("claim")
def claim(
    project: ProjectArg,
    sample: SampleArg,
    key: Annotated[int, typer.Argument(help="The claim's project claim key.")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """One sampled claim as the project's view holds it (its rows, as JSON); the read is recorded."""
    found = call(server, "GET", f"/projects/{project}/control/samples/{sample}/claims/{key}").json()
    typer.echo(json.dumps(found, indent=2, ensure_ascii=False))


@rate_app.command("review")
def review(
    project: ProjectArg,
    sample: SampleArg,
    key: Annotated[int, typer.Argument(help="The claim's project claim key.")],
    proper: Annotated[bool, typer.Option("--proper/--improper", help="Was the payment due?")],
    reason: Annotated[str | None, typer.Option("--reason", help="Improper: why (a reason code).")] = None,
    amount: Annotated[float | None, typer.Option("--amount", help="Improper: the amount paid in error (EUR).")] = None,
    server: Server = DEFAULT_SERVER,
) -> None:
    """A trained reviewer's decision on a sampled claim: proper, or improper with a reason code
    (documentation-absente, documentation-insuffisante, non-justifie-medicalement, erreur-cotation, doublon,
    non-eligible, autre) and the amount paid in error. Recorded."""
    body = {"decision": "proper" if proper else "improper", "reason": reason, "error_amount": amount}
    done = call(server, "POST", f"/projects/{project}/control/samples/{sample}/claims/{key}/decision",
                json=body).json()  # fmt: skip
    typer.echo(f"claim {done['claim_key']} of sample {sample}: {done['decision']}")


@rate_app.command("release")
def release(project: ProjectArg, sample: SampleArg, server: Server = DEFAULT_SERVER) -> None:
    """Estimate the improper-payment rate from the sample's reviews and release it (refused, and said why, until
    enough claims of enough people are reviewed)."""
    found = call(server, "POST", f"/projects/{project}/control/samples/{sample}/estimate").json()
    typer.echo(f"sample {found['sample_id']}: {found['statement']}")


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
