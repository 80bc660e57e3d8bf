# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The one mail sender against a real SMTP server (aiosmtpd) on loopback: STARTTLS with a throwaway certificate,
AUTH, and every refusal to send in clear or to an unproven server."""

from __future__ import annotations

import datetime as dt
import email
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hygie import mail
from hygie.mail import SmtpServer
from tests.conftest import make_settings
from tests.mailbox import Mailbox
from tests.serving import free_port

USER, PASSWORD = "hygie-relay", "a relay password 123"


def throwaway_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (cert, key), made for this test run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp.pem", directory / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Relay(Mailbox):
    def __init__(self) -> None:
        super().__init__()
        self.tls_sessions = 0
        self.logins: list[str] = []


def authenticator(relay: Relay) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            relay.logins.append(mechanism)
        return AuthResult(success=ok, handled=False)

    return check


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return throwaway_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture(scope="module")
def relay(certificate: tuple[Path, Path]) -> Iterator[Relay]:
    """A relay that, like a real one, demands STARTTLS before anything and AUTH before accepting mail."""
    box = Relay()
    box.port = free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    controller = Controller(
        box, hostname="127.0.0.1", port=box.port, tls_context=context, require_starttls=True,
        authenticator=authenticator(box), auth_required=True, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def plain() -> Iterator[Mailbox]:
    """A relay without TLS (as the staff-mail tests use on loopback)."""
    box = Mailbox()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def good(relay: Relay, certificate: tuple[Path, Path]) -> SmtpServer:
    return SmtpServer(host="127.0.0.1", port=relay.port, sender="dpo@hygie.invalid", starttls="required",
                      username=USER, password=PASSWORD, ca_file=certificate[0], timeout=10)  # fmt: skip


def test_starttls_and_auth_deliver(relay: Relay, certificate: tuple[Path, Path]) -> None:
    before = len(relay.messages)
    assert mail.send(good(relay, certificate), to="a.person@example.org", subject="Objet é", body="Corps é") is None
    to, raw = relay.messages[-1]
    assert len(relay.messages) == before + 1 and to == ["a.person@example.org"]
    assert email.message_from_bytes(raw).get_payload(decode=True).decode().strip() == "Corps é"  # type: ignore[union-attr]
    assert relay.logins  # the server saw our credentials, over TLS (auth_require_tls)


def test_settings_give_the_sender_its_transport_and_credentials(
    relay: Relay, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    settings = make_settings(tmp_path / "hub", mail_smtp_username=USER, mail_smtp_password_file=secret,
                             mail_smtp_ca_file=certificate[0], mail_smtp_starttls="required")  # fmt: skip
    server = mail.server(settings, host="127.0.0.1", port=relay.port, sender="x@hygie.invalid")
    assert server.password == PASSWORD and PASSWORD not in repr(server)
    assert mail.send(server, to="b@example.org", subject="s", body="b") is None


def test_refusals_name_the_server_never_the_recipient_or_the_password(
    relay: Relay, plain: Mailbox, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    before = len(relay.messages), len(plain.messages)
    server = good(relay, certificate)
    outcomes = {
        # The server's certificate is not trusted (no CA given): no session, nothing sent.
        "untrusted certificate": mail.send(replace(server, ca_file=None), to="c@example.org", subject="s", body="b"),
        "wrong password": mail.send(replace(server, password="not it"), to="c@example.org", subject="s", body="b"),
        # STARTTLS required and not offered (a relay without TLS): refused before any mail or credential.
        "no starttls": mail.send(replace(server, port=plain.port), to="c@example.org", subject="s", body="b"),
    }
    assert all(outcomes.values()), outcomes
    for what in outcomes.values():
        assert what is not None
        assert "c@example.org" not in what and PASSWORD not in what and "not it" not in what
    assert "STARTTLS" in str(outcomes["no starttls"]) and "credentials" in str(outcomes["wrong password"])
    assert (len(relay.messages), len(plain.messages)) == before


def test_auto_requires_tls_except_on_loopback(plain: Mailbox) -> None:
    loopback = SmtpServer(host="127.0.0.1", port=plain.port, sender="s@hygie.invalid", timeout=10)
    assert mail.send(loopback, to="d@example.org", subject="s", body="b") is None  # a local relay, no TLS: allowed
    # Credentials over cleartext to a loopback relay are allowed; the same to any other host is refused before
    # connecting credentials (here: required STARTTLS is missing).
    assert mail.is_loopback("localhost") and mail.is_loopback("::1") and not mail.is_loopback("smtp.example.org")
    remote = replace(loopback, starttls="required", username=USER, password=PASSWORD)
    refused = mail.send(remote, to="d@example.org", subject="s", body="b")
    assert refused is not None and "STARTTLS" in refused
    off = replace(loopback, starttls="off")
    assert mail.send(off, to="d@example.org", subject="s", body="b") is None


def test_a_breach_notice_repeats_no_leaked_value_and_says_how_to_check_it() -> None:
    from hygie.breach.mail import message_text
    from hygie.breach.models import BreachIncident, BreachNotice

    settings = make_settings(Path("/nonexistent"), enrolment_portal_url="https://hygie.example.fr")
    incident = BreachIncident(name="Laboratoire Exemple, mars 2026")
    notice = BreachNotice(categories=["social security number", "name", "birth date", "phone number"])
    text = message_text(incident, notice, settings)
    assert text.startswith("Bonjour") and text.index("Hello") > text.index("délégué")  # French first
    assert "numéro de sécurité sociale, nom et prénom, date de naissance, numéro de téléphone" in text
    assert "ne reproduit aucune de ces données" in text
    # How to check it is genuine: no link to follow, the same notice in the personal space, nothing ever asked.
    assert "http" not in text.replace("https://hygie.example.fr", "")
    assert "https://hygie.example.fr" in text and "Violations de données" in text
    assert "jamais" in text and "mot de passe" in text and "coordonnées bancaires" in text


def test_no_database_lock_is_held_while_a_staff_mail_is_sent(tmp_path: Path) -> None:
    """The SMTP server, while it takes the enrolment mail, writes to the hub's SQLite database: it could not if the
    sender's transaction held the write lock (before: the mail went out inside the account's transaction)."""
    import sqlite3

    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.policy import Role
    from hygie.hub import Hub

    database = tmp_path / "hub" / "hygie.db"
    seen: list[str] = []

    class Probe(Mailbox):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            probe = sqlite3.connect(database, timeout=0.2)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.rollback()
                seen.append("free")
            except sqlite3.OperationalError:
                seen.append("locked")
            finally:
                probe.close()
            return await super().handle_DATA(server, session, envelope)

    box = Probe()
    box.port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        hub = Hub.init(make_settings(tmp_path / "hub", mail_smtp_host="127.0.0.1", mail_smtp_port=box.port))
        with act(hub, CONSOLE, "test.setup") as session:
            created = Accounts(session, hub.custody, hub.settings).create(
                CONSOLE, username="chercheuse", role=Role.RESEARCHER, email="chercheuse@example.org"
            )
            assert created.enrolment_mail == "sent"
        hub.close()
    finally:
        controller.stop()
    assert seen == ["free"]
    assert box.code_for("chercheuse@example.org")
