# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie serve` believes no X-Forwarded-For unless a setting names the proxies: a client on a same-host TCP
pass-through (its peer is 127.0.0.1) cannot choose the source address every per-source limit counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hygie.cli import proxy_options
from hygie.config import Settings
from tests.serving import free_port


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.client.host if request.client else "")


@contextmanager
def served(**options: Any) -> Iterator[str]:
    port = free_port()
    app = Starlette(routes=[Route("/", whoami)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def source_seen(url: str) -> str:
    return httpx.get(url, headers={"X-Forwarded-For": "203.0.113.66"}).text


def test_forwarded_for_is_believed_only_from_named_proxies() -> None:
    with served() as url:  # uvicorn's defaults (what `hygie serve` used): the client picks its own address
        assert source_seen(url) == "203.0.113.66"
    assert proxy_options(Settings()) == {"proxy_headers": False}
    with served(**proxy_options(Settings())) as url:  # now: the TCP peer, whatever the header says
        assert source_seen(url) == "127.0.0.1"
    trusted = proxy_options(Settings(forwarded_allow_ips="127.0.0.1"))
    assert trusted == {"proxy_headers": True, "forwarded_allow_ips": "127.0.0.1"}
    with served(**trusted) as url:  # a proxy named in the setting is believed
        assert source_seen(url) == "203.0.113.66"


def test_several_server_processes_are_refused_over_sqlite(tmp_path: Path) -> None:
    """SQLite serves one process: a second would take the analysis jobs the first runs for orphans."""
    from typer.testing import CliRunner

    from hygie.cli import app

    result = CliRunner().invoke(app, ["serve", "--workers", "2"], env={"HYGIE_DATA_DIR": str(tmp_path)})
    assert result.exit_code != 0 and "needs PostgreSQL" in result.output
