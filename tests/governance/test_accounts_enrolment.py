# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Separation of duties for accounts: whoever creates a staff account through the API never holds its credentials,
and the account is unusable until a second person confirms it.

The attack replayed: the DPO creates a researcher and a reviewer and tries to use them as puppets. The enrolment
code reaches only the holder's mailbox (an SMTP server in the test, read "as the holder").
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from hygie.audit import AuditEvent
from hygie.governance import credentials
from hygie.governance.accounts import CONSOLE, ENROLMENT_REFUSAL, ROLE_SCOPES, Accounts, Actor, Status
from hygie.governance.acts import act
from hygie.governance.errors import Denied
from hygie.governance.models import Account
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.portal.app import create_app
from tests import postgres
from tests.conftest import make_settings
from tests.mailbox import Mailbox, serving

PASSWORD = "a long enough test password"
STAFF = {"operator": Role.OPERATOR, "dpo": Role.DPO, "auditor": Role.AUDITOR}


@dataclass
class Desk:
    hub: Hub
    client: TestClient
    mailbox: Mailbox
    ids: dict[str, int] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def call(self, name: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = {}
        if name is not None:
            if name not in self.tokens:
                self.tokens[name] = self.login(name, PASSWORD, self.secrets[name])
            headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return self.client.request(method, path, headers=headers, **kwargs)

    def login(self, username: str, password: str, secret: bytes | None) -> str:
        totp = credentials.totp_code(secret) if secret else "000000"
        r = self.client.post("/auth/login", json={"username": username, "password": password, "totp": totp})
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def code_for(self, address: str) -> str:
        code = self.mailbox.code_for(address)
        assert code is not None, f"nothing with a code was mailed to {address}"
        return code

    def enrol(self, address: str) -> dict[str, Any]:
        r = self.client.post("/accounts/enrol", json={"code": self.code_for(address), "password": PASSWORD})
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with serving() as box:
        yield box


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def desk(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[Desk]:
    """An empty hub (no population: accounts need none) with a console-made operator, DPO and auditor."""
    tmp = tmp_path_factory.mktemp("accounts")
    mail = {"mail_smtp_host": "127.0.0.1", "mail_smtp_port": mailbox.port}  # type: ignore[attr-defined]
    url = None
    if request.param == "postgresql":
        url = postgres.create_database(request.getfixturevalue("postgres_cluster"), "hygie_accounts_enrolment")
        mail["database_url"] = url
    hub = Hub.init(make_settings(tmp / "hub", **mail))
    desk = Desk(hub, TestClient(create_app(hub)), mailbox)
    with act(hub, CONSOLE, "test.setup") as session:
        accounts = Accounts(session, hub.custody, hub.settings)
        for name, role in STAFF.items():
            created = accounts.create(CONSOLE, username=name, role=role, password=PASSWORD, organisation="Test")
            assert created.totp_uri and created.account.status == Status.ACTIVE  # the console's installation act
            desk.ids[name] = created.account.id
            desk.secrets[name] = accounts.totp_secret(created.account)
    yield desk
    hub.close()
    if url:
        postgres.drop_database(url)


def new(desk: Desk, who: str, username: str, role: str, address: str) -> dict[str, Any]:
    r = desk.call(who, "POST", "/accounts", json={"username": username, "role": role, "email": address})
    assert r.status_code == 200, r.text
    return dict(r.json())


def b32(text: str) -> bytes:
    return base64.b32decode(text)


SECRETS = re.compile(r"otpauth|totp_secret|password|code", re.IGNORECASE)


def test_the_creator_never_holds_a_puppet_researchers_credentials(desk: Desk) -> None:
    address = "Alice.Martin@univ-lyon.example"
    sent_before = len(desk.mailbox.messages)
    out = new(desk, "dpo", "alice", "researcher", address)
    assert out["account"]["status"] == "pending_confirmation" and out["enrolment_mail"] is None
    assert out["account"]["created_by"] == f"account:{desk.ids['dpo']}"
    assert len(desk.mailbox.messages) == sent_before  # no code exists before a second person confirms
    confirmed = desk.call("auditor", "POST", f"/accounts/{out['account']['id']}/confirm", json={"email": address})
    assert confirmed.status_code == 200 and confirmed.json()["enrolment_mail"] == "sent", confirmed.text
    assert confirmed.json()["account"]["status"] == "pending_enrolment"
    code = desk.code_for(address.lower())
    assert len(desk.mailbox.messages) == sent_before + 1
    listing = desk.call("dpo", "GET", "/accounts").text
    for shown in (str(out), confirmed.text, listing):
        assert not SECRETS.search(shown) and code not in shown and "alice.martin" not in shown.lower()
    # A password from the creator is refused by name, and recorded; nothing is created.
    bob = {"username": "bob", "role": "researcher", "email": "b@x.example", "password": PASSWORD}
    r = desk.call("dpo", "POST", "/accounts", json=bob)
    assert r.status_code == 403 and "never chooses its password" in r.json()["detail"]
    dpo = Actor(desk.ids["dpo"], Role.DPO)
    with pytest.raises(Denied), desk.hub.session() as session:  # the rule lives in the service, whatever the route
        Accounts(session, desk.hub.custody, desk.hub.settings).create(
            dpo, username="carol", role=Role.RESEARCHER, password=PASSWORD, email="c@x.example"
        )
    assert desk.call("dpo", "GET", "/accounts").text.count('"bob"') == 0
    # Until the holder enrols, no password opens the account (not even one the creator might guess).
    r = desk.client.post("/auth/login", json={"username": "alice", "password": PASSWORD, "totp": "000000"})
    assert r.status_code == 401
    # The holder enrols once; the second factor is theirs, returned to them only.
    done = desk.client.post("/accounts/enrol", json={"code": code.lower().replace("-", " "), "password": PASSWORD})
    assert done.status_code == 200, done.text
    assert done.json()["totp_uri"].startswith("otpauth://totp/")
    again = desk.client.post("/accounts/enrol", json={"code": code, "password": PASSWORD + "!"})
    unknown = desk.client.post("/accounts/enrol", json={"code": "A" * 32, "password": PASSWORD})
    assert again.status_code == unknown.status_code == 403
    assert again.json() == unknown.json() == {"detail": ENROLMENT_REFUSAL}
    secret = b32(done.json()["totp_secret"])
    assert desk.login("alice", PASSWORD, secret).startswith("hs_")
    enrolled = [e for e in events(desk, "account.enrol") if e.outcome == "ok"]
    assert [e.actor for e in enrolled][-1] == f"account:{out['account']['id']}"


def test_a_reviewer_made_by_the_dpo_waits_for_a_second_person(desk: Desk) -> None:
    # The DPO makes an auditor, confirmed by the console's auditor and enrolled by its holder: a colleague, but one
    # the DPO made, so it may not confirm the DPO's next creation.
    aud = new(desk, "dpo", "auditor-b", "auditor", "aud.b@hygie.example")
    r = desk.call("auditor", "POST", f"/accounts/{aud['account']['id']}/confirm", json={"email": "aud.b@hygie.example"})
    assert r.status_code == 200 and r.json()["account"]["confirmed_by"] == f"account:{desk.ids['auditor']}"
    desk.secrets["auditor-b"] = b32(desk.enrol("aud.b@hygie.example")["totp_secret"])

    sent_before = len(desk.mailbox.messages)
    out = new(desk, "dpo", "rev-puppet", "reviewer", "rev.p@hygie.example")
    rid = out["account"]["id"]
    assert out["account"]["status"] == "pending_confirmation" and out["enrolment_mail"] is None
    assert len(desk.mailbox.messages) == sent_before  # no code exists before the confirmation
    r = desk.client.post("/auth/login", json={"username": "rev-puppet", "password": PASSWORD, "totp": "000000"})
    assert r.status_code == 401
    confirm = {"email": "rev.p@hygie.example"}
    refusals = {
        "dpo": "whoever created an account cannot confirm it",
        "auditor-b": "made by the same person",
        "operator": "may not confirm reviewer accounts",  # operators create (and confirm) researchers only
    }
    for who, why in refusals.items():
        r = desk.call(who, "POST", f"/accounts/{rid}/confirm", json=confirm)
        assert r.status_code == 403 and why in r.json()["detail"], (who, r.text)
    # The creator's own creator is of the same lineage: refused (checked at the service, in a transaction not
    # committed).
    with desk.hub.session() as session:
        dpo = session.get(Account, desk.ids["dpo"])
        assert dpo is not None
        dpo.created_by = f"account:{desk.ids['auditor']}"
        session.flush()
        auditor = Actor(desk.ids["auditor"], Role.AUDITOR, ROLE_SCOPES[Role.AUDITOR], None, "session")
        with pytest.raises(Denied, match="of its creator's lineage"):
            Accounts(session, desk.hub.custody, desk.hub.settings).confirm(auditor, rid, email="rev.p@hygie.example")
        session.rollback()
    # The confirmer re-types the holder's address from the directory: a wrong one is refused.
    r = desk.call("auditor", "POST", f"/accounts/{rid}/confirm", json={"email": "dpo.himself@hygie.example"})
    assert r.status_code == 403 and "not the one given" in r.json()["detail"]
    assert len(desk.mailbox.messages) == sent_before
    r = desk.call("auditor", "POST", f"/accounts/{rid}/confirm", json={"email": " REV.P@hygie.example "})
    assert r.status_code == 200 and r.json()["enrolment_mail"] == "sent", r.text
    assert desk.call("auditor", "POST", f"/accounts/{rid}/confirm", json=confirm).status_code == 409
    listed = {a["username"]: a for a in desk.call("auditor", "GET", "/accounts").json()}
    assert listed["rev-puppet"]["status"] == "pending_enrolment"
    assert listed["rev-puppet"]["created_by"] == f"account:{desk.ids['dpo']}"
    assert listed["rev-puppet"]["confirmed_by"] == f"account:{desk.ids['auditor']}"
    secret = b32(desk.enrol("rev.p@hygie.example")["totp_secret"])
    assert desk.login("rev-puppet", PASSWORD, secret)
    actions = [e.action for e in events(desk, None) if e.object == f"account:{rid}" and e.outcome == "ok"]
    assert actions == ["account.create", "account.confirm", "account.enrolment_mail", "account.enrol"]


def test_an_expired_code_is_refused_and_a_new_one_voids_the_old(desk: Desk) -> None:
    out = new(desk, "operator", "dora", "researcher", "dora.w@univ.example")
    r = desk.call("dpo", "POST", f"/accounts/{out['account']['id']}/confirm", json={"email": "dora.w@univ.example"})
    assert r.status_code == 200, r.text
    old = desk.code_for("dora.w@univ.example")
    with desk.hub.session() as session, session.begin():
        session.execute(update(Account).where(Account.id == out["account"]["id"])
                        .values(enrolment_expires_at=datetime.now(UTC) - timedelta(minutes=1)))  # fmt: skip
    r = desk.client.post("/accounts/enrol", json={"code": old, "password": PASSWORD})
    assert r.status_code == 403 and r.json()["detail"] == ENROLMENT_REFUSAL
    r = desk.call("operator", "POST", f"/accounts/{out['account']['id']}/enrolment-mail")
    assert r.status_code == 200 and r.json()["enrolment_mail"] == "sent" and not SECRETS.search(r.text)
    new_code = desk.code_for("dora.w@univ.example")
    assert new_code != old
    # The holder enrols on the French page: code, password twice, and the second factor shown once.
    page = desk.client.get("/activation")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    form = {"csrf": csrf.group(1), "code": old, "password": PASSWORD, "password2": PASSWORD}
    r = desk.client.post("/activation", data=form)
    assert r.status_code == 403 and "pas valable" in r.text
    r = desk.client.post("/activation", data={**form, "code": new_code})
    assert r.status_code == 200 and "otpauth://totp/" in r.text and "est activé" in r.text


def test_no_address_in_clear_in_the_database_or_the_record(desk: Desk) -> None:
    addresses = ["alice.martin@univ-lyon.example", "rev.p@hygie.example", "dora.w@univ.example"]
    mailed = " ".join(" ".join(to) for to, _ in desk.mailbox.messages)
    assert all(a in mailed for a in addresses)  # the tests above ran first and mailed each of them
    with desk.hub.session() as session:
        record = " ".join(str(e.as_dict()) for e in session.scalars(select(AuditEvent)))
        rows = " ".join(str(row) for row in session.execute(text("SELECT * FROM account")))
    url = desk.hub.settings.database_url
    if url is None:  # the SQLite file itself, with its write-ahead log
        db = Path(desk.hub.settings.data_dir) / "hygie.db"
        raw = b"".join(p.read_bytes() for p in db.parent.glob("hygie.db*"))
        assert len(raw) > 10_000
    else:
        raw = b""
    for address in addresses:
        for needle in (address, address.split("@")[0]):
            assert needle not in record and needle not in rows
            assert needle.encode() not in raw


def events(desk: Desk, action: str | None) -> list[AuditEvent]:
    with desk.hub.session() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(session.scalars(query))


def test_a_new_second_factor_is_not_refused_for_steps_spent_with_the_old_one(desk: Desk) -> None:
    """Enrolment issues a new TOTP secret: the time steps spent with an earlier one no longer count (else the
    holder's first valid codes would be refused as already used)."""
    out = new(desk, "operator", "eve", "researcher", "eve.r@univ.example")
    aid = out["account"]["id"]
    assert desk.call("dpo", "POST", f"/accounts/{aid}/confirm", json={"email": "eve.r@univ.example"}).status_code == 200
    with desk.hub.session() as session, session.begin():  # as if a step far ahead had been spent with an old secret
        session.execute(update(Account).where(Account.id == aid).values(totp_last_step=10**12))
    secret = b32(desk.enrol("eve.r@univ.example")["totp_secret"])
    assert desk.login("eve", PASSWORD, secret).startswith("hs_")
