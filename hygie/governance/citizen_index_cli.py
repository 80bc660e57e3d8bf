# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie citizen-index ...`: maintenance of the index behind citizens' reads (counts only, never people)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from hygie.config import get_settings

citizen_index_app = typer.Typer(
    help="The index behind citizens' reads: reimbursements and who used my data.", no_args_is_help=True
)
err = Console(stderr=True)


@citizen_index_app.command("rebuild")
def rebuild_command(
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch",
            help="Drop the whole index and build it again (after rotating the citizen-index key, or to be sure).",
        ),
    ] = False,
) -> None:
    """Index the accepted batches and view generations the index lacks, from the warehouse and membership files.

    Safe while the portal serves: what is not indexed yet is read the slow way, never left out.
    """
    from hygie.audit import record
    from hygie.console import open_hub as _open_hub
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.citizen_index import CitizenIndexError, rebuild

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "citizen_index.rebuild") as session:
            done = rebuild(hub, session, from_scratch=from_scratch)
            counts = {"from_scratch": from_scratch, "batches": done.batches, "generations": done.generations}
            record(session, actor=CONSOLE.ref, role=CONSOLE.role_name, action="citizen_index.rebuild", detail=counts)
    except CitizenIndexError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    finally:
        hub.close()
    print(f"indexed {done.batches} batch(es) and {done.generations} view generation(s)")


@citizen_index_app.command("merge")
def merge_command() -> None:
    """Move the batches and view generations waiting in the recent tables to the person-first tables, now.

    The server does this on its own once HYGIE_CITIZEN_INDEX_MERGE_WAITING wait; reads are whole either way.
    """
    from hygie.console import open_hub as _open_hub
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.citizen_index import merge_recorded

    hub = _open_hub(get_settings())
    try:
        moved = merge_recorded(hub, CONSOLE)
    finally:
        hub.close()
    print(f"merged {moved.batches} batch(es) and {moved.generations} view generation(s)")
