# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Uploads (a leaked file is identities in clear) never touch the disk, and a body beyond the limit is refused."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from hygie.portal.app import create_app
from hygie.portal.uploads import BodyLimit
from tests.portal.world import World


def test_a_large_upload_is_never_spooled_to_a_temporary_file(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    spooled: list[Any] = []
    real = tempfile.TemporaryFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        spooled.append(args)
        return real(*args, **kwargs)

    # SpooledTemporaryFile.rollover() writes to disk through tempfile.TemporaryFile (unnamed: not in a listing).
    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    blob = b"\x00\x01" * (3 * 2**20)  # 6 MiB: far above Starlette's 1 MiB spooling threshold
    r = world.call("dpo", "POST", "/breach/incidents", files={"file": ("leak.csv", blob)}, data={"incident": "big"})
    assert r.status_code in (200, 422), r.text  # read whole (in memory), whatever the import made of it
    assert spooled == []


def _echo_app(limit: int) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"bytes": len(await request.body())})

    return Starlette(
        routes=[Route("/", echo, methods=["POST"]), Route("/upload", echo, methods=["POST"])],
        middleware=[Middleware(BodyLimit, limit=limit, upload_limit=10 * limit, uploads=frozenset({"/upload"}))],
    )


def test_a_body_beyond_the_limit_is_refused_with_413() -> None:
    client = TestClient(_echo_app(1000))
    assert client.post("/", content=b"x" * 1000).json() == {"bytes": 1000}
    r = client.post("/", content=b"x" * 1001)  # declared length: refused before reading
    assert r.status_code == 413 and "larger than 1000 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no declared length: refused once the bytes received pass the limit
        for _ in range(20):
            yield b"y" * 100

    r = client.post("/", content=chunks())
    assert r.status_code == 413
    assert client.post("/upload", content=b"x" * 5000).json() == {"bytes": 5000}  # an upload path's own limit
    assert client.post("/upload", content=b"x" * 10_001).status_code == 413


def test_a_large_body_elsewhere_is_refused_before_it_is_read(world: World) -> None:
    limit = world.hub.settings.request_body_max_kib * 2**10
    r = world.client.post(
        "/auth/login", content=b"{" + b" " * limit + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and "the most this service reads" in r.json()["detail"]


def test_the_portal_refuses_a_leak_beyond_its_setting(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.hub.settings, "breach_upload_max_mib", 1)
    client = TestClient(create_app(world.hub))
    headers = world.headers("dpo")
    blob = b"x" * (3 * 2**20)
    r = client.post("/breach/incidents", files={"file": ("leak.csv", blob)}, data={"incident": "big"}, headers=headers)
    assert r.status_code == 413, r.text

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b"z" * 2**17

    multipart = {"Content-Type": "multipart/form-data; boundary=hygie"}
    r = client.post("/breach/incidents", content=chunks(), headers={**headers, **multipart})
    assert r.status_code == 413, r.text
