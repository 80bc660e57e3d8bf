# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A served hub for the black-box security suite: uvicorn on 127.0.0.1 over a copied test hub, spoken to over HTTP
only, as an insider or an outsider would.

Two hubs for the whole suite, package-scoped (their servers stop once the last test of tests/security/ ran):
``served`` for the attack replays (each test builds its own projects and accounts on it) and ``matrix_served`` for
the authorisation matrix and the bad-input sweep, which throw every route at every role and may leave objects in any
state. SQLite only: the black-box answers do not depend on the database, which the in-process tests cover on both.
The attack hub's mail goes to an SMTP server of the test (``mailbox``), where whoever holds an address reads it.

Sources: the throttling of sign-ins and of recorded refusals is per client address, so each test that fails on
purpose speaks from its own loopback address (127.0.0.2, 127.0.0.3, ...; the whole of 127.0.0.0/8 is loopback),
and the signed-in helpers speak from 127.0.0.1.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hygie.governance import credentials
from tests.mailbox import Mailbox
from tests.mailbox import serving as mail_serving
from tests.portal.world import PASSWORD, Template, World, build_world, make_template, project_request
from tests.portal.world import small_delivery as small_delivery
from tests.serving import serving

ROLES = ["researcher1", "researcher2", "reviewer1", "reviewer2", "dpo", "operator", "auditor", "citizen1", "citizen2"]
"""The signed-in callers of the authorisation matrix (reviewer3 also signs in, in the attack replays)."""

APPROVE = {"decision": "approve", "reason": "lawful purpose, minimal scope"}
REJECT = {"decision": "reject", "reason": "the scope is wider than the purpose needs"}
MISSING = 987_654
"""An id no object has."""

_sources = itertools.count(2)


def new_source() -> str:
    """A loopback address no other test speaks from (per-source throttling must not leak between tests)."""
    n = next(_sources)
    return f"127.0.{n // 250}.{n % 250 + 2}"


@dataclass
class Served:
    """A hub served over HTTP, and clients that sign in as each of its people."""

    world: World
    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    _clients: list[httpx.Client] = field(default_factory=list)
    _by_source: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def ids(self) -> dict[str, int]:
        return self.world.ids

    def client(self, source: str = "127.0.0.1", token: str | None = None) -> httpx.Client:
        """An HTTP client speaking from ``source``, with a bearer token if given."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        c = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=60,
            transport=httpx.HTTPTransport(local_address=source),
        )
        self._clients.append(c)
        return c

    def sign_in(self, name: str, source: str = "127.0.0.1", at: float | None = None) -> httpx.Response:
        """POST /auth/login as ``name`` with the right password and (staff) the current second-factor code."""
        totp = credentials.totp_code(self.world.secrets[name], at) if name in self.world.secrets else None
        with self.client(source) as c:
            return c.post("/auth/login", json={"username": name, "password": PASSWORD, "totp": totp})

    def token(self, name: str) -> str:
        """One session per person for the whole hub (a second-factor time step is good for one sign-in)."""
        if name not in self.tokens:
            r = self.sign_in(name)
            assert r.status_code == 200, (name, r.status_code, r.text)
            self.tokens[name] = r.json()["token"]
        return self.tokens[name]

    def call(self, name: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if name is not None:
            headers["Authorization"] = f"Bearer {self.token(name)}"
        source = kwargs.pop("source", "127.0.0.1")
        if source not in self._by_source:
            self._by_source[source] = self.client(source)
        return self._by_source[source].request(method, path, headers=headers, **kwargs)

    # -- objects, made as their users make them -------------------------------------------------------------

    def draft(self, requester: str = "researcher1", **overrides: Any) -> int:
        r = self.call(requester, "POST", "/projects", json=project_request(**overrides))
        assert r.status_code == 200, r.text
        return int(r.json()["id"])

    def submitted(self, requester: str = "researcher1", **overrides: Any) -> int:
        pid = self.draft(requester, **overrides)
        r = self.call(requester, "POST", f"/projects/{pid}/submit")
        assert r.status_code == 200, r.text
        return pid

    def active(self, requester: str = "researcher1", **overrides: Any) -> int:
        """A project taken through submission and the approvals of reviewer1 and reviewer2."""
        pid = self.submitted(requester, **overrides)
        for reviewer in ("reviewer1", "reviewer2"):
            r = self.call(reviewer, "POST", f"/projects/{pid}/decisions", json=APPROVE)
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "active", r.text
        return pid

    def wait_job(self, name: str, pid: int, job: dict[str, Any]) -> dict[str, Any]:
        """Poll an analysis until it leaves the queue, as a client does."""
        deadline = time.monotonic() + 60
        while job["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
            r = self.call(name, "GET", f"/projects/{pid}/analyses/{job['id']}")
            assert r.status_code == 200, r.text
            job = r.json()
        return job

    def sql(self, name: str, pid: int, sql: str) -> dict[str, Any]:
        r = self.call(name, "POST", f"/projects/{pid}/analyses/sql", json={"sql": sql})
        assert r.status_code == 200, r.text
        return self.wait_job(name, pid, r.json())

    def aggregate(self, name: str, pid: int, spec: dict[str, Any]) -> dict[str, Any]:
        r = self.call(name, "POST", f"/projects/{pid}/analyses/aggregate", json=spec)
        assert r.status_code == 200, r.text
        return self.wait_job(name, pid, r.json())

    def console_account(self, username: str, role: str = "researcher") -> int:
        """A staff account made at the console, as build_world makes the hub's staff (setup, not part of an attack);
        its second-factor secret goes to ``world.secrets``. Returns its id."""
        from hygie.governance.accounts import CONSOLE, Accounts
        from hygie.governance.acts import act
        from hygie.governance.policy import Role

        hub = self.world.hub
        with act(hub, CONSOLE, "test.setup") as session:
            accounts = Accounts(session, hub.custody, hub.settings)
            created = accounts.create(CONSOLE, username=username, role=Role(role), password=PASSWORD,
                                      organisation="Test")  # fmt: skip
            self.world.secrets[username] = accounts.totp_secret(created.account)
            self.world.ids[username] = created.account.id
        return self.world.ids[username]

    def open_alert(self, within: float = 20.0) -> dict[str, Any] | None:
        """An open access alert, as the DPO lists them, waiting for the alerter's next pass if none is open yet (the
        suite's reviewers are all new accounts: their approvals raise ``fresh_approver`` alerts)."""
        deadline = time.monotonic() + within
        while True:
            r = self.call("dpo", "GET", "/alerts", params={"status": "open"})
            assert r.status_code == 200, r.text
            alerts: list[dict[str, Any]] = r.json()["alerts"]
            if alerts or time.monotonic() > deadline:
                return alerts[0] if alerts else None
            time.sleep(0.2)

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """The auditor's search of the record (newest first), up to 500 events."""
        r = self.call("auditor", "GET", "/audit/events", params={"limit": 500, **filters})
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        return events

    def close(self) -> None:
        for c in self._clients:
            c.close()


def serve(world: World) -> Iterator[Served]:
    """The portal of ``world.hub`` served by uvicorn in a background thread, lifespan included."""
    world.hub.settings.alert_seconds = 1.0  # alerts raised within a second (the suite reads and handles them)
    with serving(world.hub, "security-hub-under-test") as url:
        served = Served(world, url)
        yield served
        served.close()


@pytest.fixture(scope="package")
def security_template(tmp_path_factory: pytest.TempPathFactory, small_delivery: Path) -> Template:
    return make_template(tmp_path_factory.mktemp("security-tpl"), small_delivery, None)


@pytest.fixture(scope="package")
def mailbox() -> Iterator[Mailbox]:
    with mail_serving() as box:
        yield box


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory, security_template: Template, mailbox: Mailbox) -> Iterator[Served]:
    """The hub the attack replays run against (each test makes its own projects on it); its mail goes to
    ``mailbox`` (the deployment's SMTP server)."""
    for world in build_world(tmp_path_factory.mktemp("security-hub"), security_template, None):
        if "mail_smtp_port" in type(world.hub.settings).model_fields:
            world.hub.settings.mail_smtp_host = "127.0.0.1"
            world.hub.settings.mail_smtp_port = mailbox.port
        yield from serve(world)


@pytest.fixture(scope="package")
def matrix_served(tmp_path_factory: pytest.TempPathFactory, security_template: Template) -> Iterator[Served]:
    """A second hub for the authorisation matrix and the bad-input sweep (they may leave anything in any state)."""
    for world in build_world(tmp_path_factory.mktemp("security-matrix"), security_template, None):
        yield from serve(world)
