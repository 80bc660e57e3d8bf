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


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False))


@leads_app.command("run")
def run_rules(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="A rule to run (repeat); the default ones if none.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The run as one JSON object.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Run the rules over the project's view (a member who passes its data gate); the leads are stored with the
    run and recorded. An unknown rule is refused with the list of rules."""
    body = {"rules": rule} if rule else {}
    done = call(server, "POST", f"/projects/{project}/control/runs", json=body).json()
    if as_json:
        _echo_json(done)
        return
    counts = ", ".join(f"{name} {n}" for name, n in done["leads"].items())
    typer.echo(f"run {done['run']} (view {done['view_generation']}): {counts}")


@leads_app.command("list")
def list_leads(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    run: Annotated[int | None, typer.Option("--run", help="A run of the project; the newest by default.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The run's leads and your lift requests as JSON.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """A run's leads with their evidence (people and providers by project pseudonym), and your requests to lift a
    pseudonym in the project. A member of the project who passes its data gate; the read is recorded."""
    found = call(server, "GET", f"/projects/{project}/control/leads",
                 params={"run": run} if run is not None else None).json()  # fmt: skip
    if as_json:
        _echo_json(found)
        return
    if found["run"] is None:
        typer.echo(f"no control run yet in project {project}")
        return
    typer.echo(f"run {found['run']} ({found['at'][:16].replace('T', ' ')}, view {found['view_generation']}): "
               f"{len(found['leads'])} leads")  # fmt: skip
    for lead in found["leads"]:
        provider = f" provider {lead['provider']}" if lead["provider"] else ""
        numbers = "; ".join(f"{k} {json.dumps(v, ensure_ascii=False)}" for k, v in lead["numbers"].items())
        more = "…" if lead["claims_total"] > len(lead["claims"]) else ""
        claims = ", ".join(str(c) for c in lead["claims"])
        typer.echo(f"lead {lead['id']} [{lead['rule']}] {lead['subject_kind']} {lead['subject']}{provider}: {numbers}"
                   f" | {lead['claims_total']} claims: {claims}{more}")  # fmt: skip
    for lift in found["lifts"]:
        typer.echo(f"your lift request {lift['id']} (lead {lift['lead_id']}, {lift['subject_kind']}): {lift['status']}")


@leads_app.command("lift")
def request_lift(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    lead: Annotated[int, typer.Argument(help="The lead whose pseudonym to lift.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the investigation needs it (20 characters or more).")],
    provider: Annotated[
        bool, typer.Option("--provider", help="Lift the provider the lead names, not its subject.")
    ] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Ask to lift a lead's pseudonym for an investigation. A second person decides (``hygie control leads
    decide``); then you alone see the identity, once (``hygie control leads identity``)."""
    lift = call(server, "POST", f"/projects/{project}/control/leads/{lead}/lift",
                json={"reason": reason, "provider": provider}).json()  # fmt: skip
    typer.echo(f"lift request {lift['id']} recorded ({lift['status']}): a second person must approve it")


@leads_app.command("lifts")
def pending_lifts(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per request.")] = False,
    server: Server = DEFAULT_SERVER,
) -> None:
    """Requests to lift a pseudonym awaiting a second person (the roles of control_lift_approver_roles): who asked,
    for which lead, and why; never an identity."""
    found = call(server, "GET", "/control/lifts").json()
    for lift in found:
        if as_json:
            _echo_json(lift)
        else:
            typer.echo(f"request {lift['id']} (project {lift['project_id']}, lead {lift['lead_id']}, "
                       f"{lift['subject_kind']}) by {lift['requested_by']}: {lift['reason']}")  # fmt: skip
    if not found and not as_json:
        typer.echo("no request awaits a decision")


@leads_app.command("decide")
def decide_lift(
    lift: Annotated[int, typer.Argument(help="The request to decide.")],
    approve: Annotated[bool, typer.Option("--approve/--refuse", help="Approve or refuse the request.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (20 characters or more); recorded.")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """Approve or refuse a request to lift a pseudonym, as the second person (never the one who asked, nor an
    account of their creation lineage). You see no identity."""
    done = call(server, "POST", f"/control/lifts/{lift}/decision",
                json={"decision": "approve" if approve else "refuse", "reason": reason}).json()  # fmt: skip
    typer.echo(f"request {done['id']}: {done['status']}")


@leads_app.command("identity")
def identity(
    project: Annotated[int, typer.Argument(help="The control project's id.")],
    lift: Annotated[int, typer.Argument(help="Your approved request.")],
    server: Server = DEFAULT_SERVER,
) -> None:
    """The identity behind your approved request: once, within the window after the approval; recorded and
    alerted to the DPO. Printed as one JSON object."""
    _echo_json(call(server, "POST", f"/projects/{project}/control/lifts/{lift}/identity").json())


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
