# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What every ``hygie`` sub-command shares: the error stream, a refusal that exits, and opening the hub.

Kept apart from :mod:`hygie.cli` so that the sub-CLIs (breach, citizen index) reach it without importing the
command line that imports them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    # Types only: importing the settings (pydantic) or the hub here would slow every `hygie --help`.
    from hygie.config import Settings
    from hygie.hub import Hub

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print the refusal on standard error; the caller raises what this returns."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def open_hub(settings: Settings) -> Hub:
    """The hub of ``settings``, or a plain refusal when it is not initialised or its keys are locked."""
    from hygie.hub import Hub, HubNotInitialised
    from hygie.keys import CustodyLocked

    try:
        return Hub.open(settings)
    except (HubNotInitialised, CustodyLocked) as exc:
        raise fail(str(exc)) from None
