# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Uploads stay in memory and within their limit.

A leaked file is identities in clear, and none may reach a disk outside the vault — temporary files included.
Starlette spools a multipart file part larger than 1 MiB to a temporary file on disk; the portal keeps every part
in memory instead (up to the largest upload it accepts), and refuses a request body beyond that limit with 413
before reading further, so the memory an upload can take is bounded too.
"""

from __future__ import annotations

import contextlib
import json

from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hygie.i18n import N_

_FORM_OVERHEAD = 2**20
"""Room for the multipart boundaries and the form's small fields beside the largest file."""


def keep_uploads_in_memory(largest_file: int) -> int:
    """Set Starlette's spooling threshold above the largest upload (a process-wide setting: the portal is the one
    user of Starlette in a Hygie process) and return the request body limit to enforce with :class:`BodyLimit`."""
    limit = largest_file + _FORM_OVERHEAD
    # Never lowered: several apps in one process (tests) each keep their own uploads in memory.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limit + 1)
    return limit


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies larger than their limit with 413: by their declared length at once, else as soon as
    the bytes received pass it. ``limit`` holds for every path but ``uploads``, the few that take a leaked file,
    which get ``upload_limit`` (anything else an anonymous client sends is small: a large body is only a way to
    fill the server's memory)."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int, uploads: frozenset[str]) -> None:
        self.app = app
        self.default = limit
        self.upload_limit = upload_limit
        self.uploads = uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] in self.uploads else self.default
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        received = 0
        exceeded = started = refused = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            # Once the limit is passed, whatever the app answers (a parse error, a 500) becomes the 413.
            nonlocal started, refused
            if exceeded and not started:
                if not refused:
                    refused = True
                    await self._refuse(send, limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):  # raised from our receive, through the app: answered below
            await self.app(scope, counted, watched)
        if exceeded and not started and not refused:
            await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        size = (
            f"{limit // 2**20} MiB"
            if limit >= 2**20
            else f"{limit // 2**10} KiB"
            if limit >= 2**10
            else f"{limit} bytes"
        )
        if limit == self.upload_limit:
            detail = N_(
                "the request is larger than {size}: import a larger leaked file with `hygie breach import`", size=size
            )
        else:
            detail = N_("the request body is larger than {size}, the most this service reads", size=size)
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})
