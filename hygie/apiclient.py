# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The HTTP client of the commands that act as a person (``hygie analysis``, ``hygie control ... show``).

Such a command never opens the hub: it calls the API with its holder's token, so the server checks who asks,
records the act and answers only what that person may see. The token comes from ``HYGIE_TOKEN`` (from
``POST /auth/login`` or ``POST /me/tokens``), the server from ``--server`` or ``HYGIE_SERVER``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx

Server = Annotated[str, typer.Option("--server", envvar="HYGIE_SERVER", help="Base URL of the Hygie API.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


def client(server: str) -> httpx.Client:
    """An authenticated client; tests replace this to talk to an in-process app."""
    import httpx

    token = os.environ.get("HYGIE_TOKEN")
    if not token:
        raise typer.BadParameter("set HYGIE_TOKEN to a token from POST /auth/login or POST /me/tokens")
    return httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=600)


def call(server: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The answer of one request; a refusal is printed (the server's words) and ends the command with status 1."""
    http = client(server)
    try:
        response = http.request(method, path, **kwargs)
    finally:
        http.close()
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        typer.echo(f"error {response.status_code}: {detail}", err=True)
        raise typer.Exit(1)
    return response
