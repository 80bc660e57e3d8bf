# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The portal served for real: uvicorn on a free loopback port in a background thread, lifespan included."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn

from hygie.cli import proxy_options
from hygie.hub import Hub
from hygie.portal.app import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(hub: Hub, name: str = "portal-under-test") -> Iterator[str]:
    """Serve ``hub``'s portal until the block ends; yields its base URL once uvicorn says it has started."""
    port = free_port()
    config = uvicorn.Config(
        create_app(hub), host="127.0.0.1", port=port, log_level="warning", **proxy_options(hub.settings)
    )  # as `hygie serve`: X-Forwarded-For never believed
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the portal did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
