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
) -> None:
    """Control runs of a project, newest first: when, which view generation, and how many leads per rule (counts
    only; the leads themselves are read in the portal by the project's members, through its data gate)."""
    from sqlalchemy import select

    from hygie.audit import record
    from hygie.config import get_settings
    from hygie.console import fail, open_hub
    from hygie.control.leads import ControlRun
    from hygie.disclosure.counts import shown_count
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.models import Project

    hub = open_hub(get_settings())
    try:
        with hub.session() as session:
            found_project = session.get(Project, project)
            if found_project is None:
                record(session, actor=CONSOLE.ref, role=CONSOLE.role_name, action="control.runs.read",
                       outcome="denied", object=f"project:{project}", detail={"reason": "no such project"})  # fmt: skip
                session.commit()
                raise fail(f"no project {project}")
            threshold = max(hub.settings.disclosure_threshold, found_project.threshold or 0)
            base = hub.settings.disclosure_rounding_base
            found = list(session.scalars(select(ControlRun).where(ControlRun.project_id == project)
                                         .order_by(ControlRun.id.desc())))  # fmt: skip
            record(session, actor=CONSOLE.ref, role=CONSOLE.role_name, action="control.runs.read",
                   object=f"project:{project}", project_id=project, detail={"runs": len(found)})  # fmt: skip
            session.commit()
    finally:
        hub.close()
    # The console is the operator's, who never reaches a project's data: lead counts are shown as any count
    # leaving a project is (rounded, none under the threshold: "fewer than 11").
    for r in found:
        shown = {rule: shown_count(int(n), threshold, base) for rule, n in r.counts.items()}
        if as_json:
            typer.echo(json.dumps({"run": r.id, "at": r.run_at.isoformat(), "view_generation": r.view_generation,
                                   "leads": shown}))  # fmt: skip
        else:
            counts = ", ".join(f"{rule} {'fewer than ' + str(threshold) if n is None else n}"
                               for rule, n in shown.items())  # fmt: skip
            typer.echo(f"run {r.id} ({r.run_at:%Y-%m-%d %H:%M}, view {r.view_generation}): {counts}")
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
