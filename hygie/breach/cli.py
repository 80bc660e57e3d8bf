# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie breach ...`: import a leak, review it, notify, send the outbox, destroy files past retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hygie.config import get_settings
from hygie.governance.accounts import CONSOLE
from hygie.governance.errors import GovernanceError

if TYPE_CHECKING:
    from hygie.hub import Hub

breach_app = typer.Typer(help="Breach response: import a leaked file, match, notify (counts only).",
                         no_args_is_help=True)  # fmt: skip
err = Console(stderr=True)


def _hub() -> Hub:
    from hygie.console import open_hub as _open_hub

    hub: Hub = _open_hub(get_settings())
    return hub


def _fail(exc: GovernanceError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc.message}")
    return typer.Exit(2)


@breach_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The leaked file (CSV, TSV, XLSX, JSON)")],
    incident: Annotated[str, typer.Option("--incident", help="A name for the incident")],
    as_json: Annotated[bool, typer.Option("--json", help="Counts and per-row statuses as JSON")] = False,
) -> None:
    """Store the leak encrypted, map its columns, match its rows against the identity vault.

    Matched at once, unlike an import over HTTP (staged until a second person confirms it): the console runs with
    the hub's keys, the controller's installation act (docs/breach.md, "The console stays direct")."""
    from hygie.breach.service import Incidents
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.import") as session:
            result = Incidents(hub, session).import_file(CONSOLE.ref, incident, file.name, file.read_bytes())
            summary = result.as_json()
            mapping = result.incident.mapping
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        hub.close()
    if as_json:
        print(json.dumps(summary))
        return
    print(f"incident {summary['incident']}: {summary['rows']} rows")
    for key in ("matched", "ambiguous", "unmatched", "invalid"):
        print(f"  {key:<10} {summary[key]}")
    print("columns:")
    for m in mapping:
        print(f"  {m['column']:>3} {m['header'][:40]:<40} → {m['field']} ({m['source']})")


@breach_app.command("list")
def list_() -> None:
    """Incidents with their counts."""
    from sqlalchemy import select

    from hygie.audit import record
    from hygie.breach.models import BreachIncident
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.list") as session:
            rows = session.scalars(select(BreachIncident).order_by(BreachIncident.id)).all()
            record(session, actor=CONSOLE.ref, action="breach.list", detail={"count": len(rows)})
            for i in rows:
                print(f"{i.id}\t{i.name}\t{i.status}\t{json.dumps(i.counts)}")
    finally:
        hub.close()


@breach_app.command()
def report(incident: Annotated[str, typer.Argument(help="The incident's name")]) -> None:
    """What a notification to the CNIL (GDPR art. 33) needs, as JSON."""
    from hygie.audit import record
    from hygie.breach.service import Incidents
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.report") as session:
            incidents = Incidents(hub, session)
            found = incidents.by_name(incident)
            out = incidents.report(found)
            record(session, actor=CONSOLE.ref, action="breach.report", object=f"breach:{found.id}")
        print(json.dumps(out, indent=2, ensure_ascii=False))
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        hub.close()


@breach_app.command()
def notify(incident: Annotated[str, typer.Argument(help="The incident's name")]) -> None:
    """Notices, outbox messages and account flags for every matched person (never a row in review)."""
    from hygie.breach.service import Incidents
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.notify") as session:
            incidents = Incidents(hub, session)
            people = incidents.notify(CONSOLE.ref, incidents.by_name(incident))
        print(f"{people} people notified")
    except GovernanceError as exc:
        raise _fail(exc) from None
    finally:
        hub.close()


@breach_app.command()
def send() -> None:
    """Send pending notices through the configured SMTP server."""
    from hygie.breach.mail import send_pending
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.send") as session:
            counts = send_pending(hub, session, CONSOLE.ref)
        print(json.dumps(counts))
    finally:
        hub.close()


@breach_app.command()
def sweep() -> None:
    """Destroy leaked files past their retention date."""
    from hygie.breach.sweep import sweep as run
    from hygie.governance.acts import act

    hub = _hub()
    try:
        with act(hub, CONSOLE, "breach.sweep") as session:
            done = run(hub, session, CONSOLE.ref)
        print(f"{len(done)} leaked files destroyed")
    finally:
        hub.close()
