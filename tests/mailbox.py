# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A real SMTP server (aiosmtpd) on loopback for the tests: every address's mailbox, read as its holder reads it."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from tests.serving import free_port

CODE = re.compile(r"\b([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\b")
"""An enrolment code as the mail shows it (format of hygie.governance.accounts)."""


class Mailbox(Sink):
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        """(recipients, raw message), in the order received."""
        self.port = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    @property
    def contents(self) -> list[bytes]:
        return [raw for _, raw in self.messages]

    def code_for(self, address: str) -> str | None:
        """The newest enrolment code mailed to ``address``, or None when nothing with a code was mailed there."""
        for to, raw in reversed(self.messages):
            if address in to:
                body = email.message_from_bytes(raw).get_payload(decode=True)
                found = CODE.search(body.decode() if isinstance(body, bytes) else str(body))
                return found.group(1) if found else None
        return None


@contextmanager
def serving() -> Iterator[Mailbox]:
    """A mailbox behind an SMTP server on a free loopback port (``.port``), stopped on exit."""
    box = Mailbox()
    box.port = free_port()  # aiosmtpd's readiness check cannot use port 0
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
