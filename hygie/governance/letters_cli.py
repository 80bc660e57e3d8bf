# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie outbox ...`: the mail room's side of citizens' letters (activation codes, step-up codes, breach notices).

``list`` shows counts and letter numbers only. ``print`` writes the pending letters as PDF files for the printer:
this is where names and postal addresses leave the vault, by design (a letter needs them on paper), so it is an
operator's act with the hub's keys, recorded, and each letter's sealed copy is erased once printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from hygie.config import get_settings

if TYPE_CHECKING:
    from hygie.governance.letters import Purpose

outbox_app = typer.Typer(help="Citizens' letters by post: list the outbox, print it for the mail room.",
                         no_args_is_help=True)  # fmt: skip
err = Console(stderr=True)
PURPOSES = ("activation", "device", "contact", "breach_notice")


def operator() -> str:
    """The operating-system user running this command: a named person on the record of a print run."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        return f"uid {os.getuid()}"


def _purpose(value: str | None) -> Purpose | None:
    from hygie.console import fail
    from hygie.governance.letters import Purpose

    if value is None:
        return None
    if value not in PURPOSES:
        raise fail(f"unknown purpose {value!r}: one of {', '.join(PURPOSES)}")
    return Purpose(value)


@outbox_app.command("list")
def list_command(
    purpose: Annotated[str | None, typer.Option(help="Only letters of this kind.")] = None,
) -> None:
    """Letters waiting to be printed: number, kind, date queued (never a name or an address)."""
    from hygie.audit import record
    from hygie.console import open_hub
    from hygie.governance import letters
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act

    wanted = _purpose(purpose)
    hub = open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "outbox.list") as session:
            waiting = letters.pending(session, wanted)
            rows = [(f"L-{x.id}", x.purpose, x.created_at.date().isoformat()) for x in waiting]
            record(session, actor=CONSOLE.ref, action="outbox.list", detail={"pending": len(rows)})
    finally:
        hub.close()
    for reference, kind, queued in rows:
        typer.echo(f"{reference}\t{kind}\t{queued}")
    err.print(f"{len(rows)} letter(s) waiting to be printed")


@outbox_app.command("print")
def print_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Directory the PDF files are written to (mode 0600): yours, writable by nobody else; "
            "created 0700 if missing.",
        ),
    ],
    purpose: Annotated[str | None, typer.Option(help="Only letters of this kind.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many letters.")] = None,
) -> None:
    """Print the pending letters as PDF files and mark them printed. Names and addresses leave the vault here, on
    purpose: hand the files to the mail room and delete them once printed."""
    from hygie.console import fail, open_hub
    from hygie.governance import letters
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.errors import GovernanceError

    wanted = _purpose(purpose)
    hub = open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "outbox.print") as session:
            done = letters.print_letters(hub, session, CONSOLE.ref, out, purpose=wanted, limit=limit,
                                         operator=operator())  # fmt: skip
    except GovernanceError as exc:  # an output directory others could write to: refused, and recorded
        raise fail(exc.message) from None
    finally:
        hub.close()
    for path in done.files:
        typer.echo(str(path))
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(done.skipped.items()))
    err.print(f"printed {len(done.files)} letter(s)" + (f"; not printed: {skipped}" if skipped else ""))
