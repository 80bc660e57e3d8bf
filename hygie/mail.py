"""Sending one plain-text e-mail through a configured SMTP server, for any part of Hygie.

The recipient's address is handed in by the caller, who reads it from where it is kept sealed, and lives only in
memory while the message is given to the server. A failure is reported by a description that names the server
and the kind of failure, never the recipient, so it can go on the record and into logs.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str


def send(server: SmtpServer, *, to: str, subject: str, body: str) -> str | None:
    """Send one message. Returns None when the server accepted it, else what went wrong (without the address)."""
    mail = EmailMessage()
    mail["From"] = server.sender
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content(body)
    try:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS) as smtp:
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        return f"{type(exc).__name__} from {server.host}:{server.port}"
    return None
