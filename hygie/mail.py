# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The one way Hygie sends e-mail: plain-text messages through a configured SMTP server, over STARTTLS, with
authentication when configured. Staff enrolment mails and breach notices both go through here.

Transport security (setting ``mail_smtp_starttls``): ``auto`` (the default) requires STARTTLS for every host but a
loopback one (``localhost``, 127.0.0.0/8, ::1: a relay on the same machine), where it is used if the server offers
it; ``required`` requires it everywhere; ``off`` never starts it (a relay that cannot do TLS, on a trusted link).
The server's certificate is checked against the system's authorities, or against ``mail_smtp_ca_file``, and must
name the host. Authentication (``mail_smtp_username``, with ``mail_smtp_password_file`` or the
``HYGIE_MAIL_SMTP_PASSWORD`` environment variable) is only ever sent over TLS or to a loopback host.
Every step is bounded by ``mail_smtp_timeout_seconds``.

The recipient's address is handed in by the caller, who reads it from where it is kept sealed, and lives only in
memory while the message is given to the server. A failure is reported by a description that names the server
and the kind of failure, never the recipient nor a credential, so it can go on the record and into logs.
Callers send outside their database transactions: a slow or unreachable server must not hold locks.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hygie.config import Settings

TIMEOUT_SECONDS = 30
"""Default of ``mail_smtp_timeout_seconds``."""


class MailFailure(Exception):
    """Sending failed; the message names the server and the failure kind, never a recipient or a credential."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    sender: str
    starttls: str = "auto"
    """'auto' (required unless the host is loopback), 'required' or 'off'."""
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout: float = TIMEOUT_SECONDS

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # never a password in a log line or a traceback
        return f"SmtpServer({self.where}, starttls={self.starttls}, auth={'yes' if self.username else 'no'})"


def server(settings: Settings, *, host: str, port: int, sender: str) -> SmtpServer:
    """The SMTP server at ``host:port`` with the transport and authentication settings (shared by every sender)."""
    password = None
    if settings.mail_smtp_password_file is not None:
        password = settings.mail_smtp_password_file.read_text(encoding="utf-8").strip()
    elif settings.mail_smtp_password is not None:
        password = settings.mail_smtp_password.get_secret_value()
    return SmtpServer(
        host=host,
        port=port,
        sender=sender,
        starttls=settings.mail_smtp_starttls,
        username=settings.mail_smtp_username,
        password=password,
        ca_file=settings.mail_smtp_ca_file,
        timeout=settings.mail_smtp_timeout_seconds,
    )


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Sender:
    """An open, secured, authenticated SMTP session: send several messages over it."""

    def __init__(self, server: SmtpServer, smtp: smtplib.SMTP) -> None:
        self.server = server
        self._smtp = smtp

    def send(self, *, to: str, subject: str, body: str) -> None:
        mail = EmailMessage()
        mail["From"] = self.server.sender
        mail["To"] = to
        mail["Subject"] = subject
        mail.set_content(body)
        try:
            self._smtp.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailFailure(f"{type(exc).__name__} from {self.server.where}") from None


def _tls_context(server: SmtpServer) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file) if server.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@contextmanager
def connect(server: SmtpServer) -> Iterator[Sender]:
    """Open a session with ``server`` (STARTTLS and AUTH as configured), or raise :class:`MailFailure`."""
    if server.starttls not in ("auto", "required", "off"):
        raise MailFailure(f"mail_smtp_starttls must be auto, required or off (not {server.starttls!r})")
    loopback = is_loopback(server.host)
    required = server.starttls == "required" or (server.starttls == "auto" and not loopback)
    try:
        smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailFailure(f"{type(exc).__name__} from {server.where}") from None
    try:
        try:
            smtp.ehlo()
            secured = False
            if server.starttls != "off" and smtp.has_extn("starttls"):
                smtp.starttls(context=_tls_context(server))
                smtp.ehlo()
                secured = True
            elif required:
                raise MailFailure(f"{server.where} does not offer STARTTLS, which is required (mail_smtp_starttls)")
            if server.username:
                if not secured and not loopback:
                    raise MailFailure(f"{server.where}: credentials are only sent over TLS or to a loopback host")
                smtp.login(server.username, server.password or "")
        except ssl.SSLError as exc:
            raise MailFailure(f"TLS failure with {server.where} ({type(exc).__name__})") from None
        except smtplib.SMTPAuthenticationError:
            raise MailFailure(f"{server.where} refused the credentials (mail_smtp_username and password)") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailFailure(f"{type(exc).__name__} from {server.where}") from None
        yield Sender(server, smtp)
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def send(server: SmtpServer, *, to: str, subject: str, body: str) -> str | None:
    """Send one message. Returns None when the server accepted it, else what went wrong (without the address)."""
    try:
        with connect(server) as sender:
            sender.send(to=to, subject=subject, body=body)
    except MailFailure as exc:
        return str(exc)
    return None
