# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie vault ...`: maintenance of the identity vault's derived indexes (counts only, never people)."""

from __future__ import annotations

from typing import Annotated

import typer

from hygie.config import get_settings

vault_app = typer.Typer(help="The identity vault's derived indexes.", no_args_is_help=True)


@vault_app.command("rebuild-pivot")
def rebuild_pivot_command(
    from_scratch: Annotated[
        bool,
        typer.Option("--from-scratch", help="Drop the pivot index and build it again (if it was damaged or lost)."),
    ] = False,
) -> None:
    """Index the vault records the identity pivot index lacks (data stored before it existed), from the vault.

    Each record is decrypted once, in batches; only keyed pivots (HMAC under the identity-pivot key) are written.
    Safe while the portal serves: a lookup on a lagging index indexes a few records itself or says it is not ready.
    """
    from hygie.audit import record
    from hygie.console import open_hub as _open_hub
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.identity.pivot import rebuild

    hub = _open_hub(get_settings())
    try:
        with act(hub, CONSOLE, "vault.pivot.rebuild") as session:
            done = rebuild(session, hub.custody, hub.vault(session), from_scratch=from_scratch)
            record(session, actor=CONSOLE.ref, role=CONSOLE.role_name, action="vault.pivot.rebuild",
                   detail={"from_scratch": from_scratch, "records": done})  # fmt: skip
    finally:
        hub.close()
    print(f"indexed {done} vault record(s)")
