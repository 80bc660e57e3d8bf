# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A hub with a small synthetic population, staff accounts of every role, and an API client."""

from __future__ import annotations

import csv
import itertools
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hygie.governance import credentials
from hygie.governance.accounts import CONSOLE, Accounts
from hygie.governance.acts import act
from hygie.governance.citizens import Citizens
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.portal.app import create_app
from hygie.synth import generate
from tests import postgres
from tests.conftest import make_settings

PASSWORD = "a long enough test password"
STAFF = {
    "operator": Role.OPERATOR,
    "dpo": Role.DPO,
    "reviewer1": Role.REVIEWER,
    "reviewer2": Role.REVIEWER,
    "reviewer3": Role.REVIEWER,
    "researcher1": Role.RESEARCHER,
    "researcher2": Role.RESEARCHER,
    "auditor": Role.AUDITOR,
}

SCOPE: dict[str, Any] = {
    "tables": {
        "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT"],
        "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"],
    },
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
}


def project_request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Statin use after 60",
        "organisation": "Université de Lyon",
        "purpose": "research",
        "justification": "Describe statin dispensing by age and sex to evaluate guidelines.",
        "public_summary": "How statins are used by people over 60, by region.",
        "scope": SCOPE,
        "duration_days": 180,
    }
    body.update(overrides)
    return body


@dataclass
class World:
    hub: Hub
    client: TestClient
    delivery: Path
    ids: dict[str, int] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def code(self, name: str) -> str | None:
        """A current second-factor code for a staff account (None for citizens), made usable again: each time step
        is accepted once per account and tests sign the same person in several times within 30 s (the replay
        itself is attacked in tests/portal/test_auth.py)."""
        if name not in self.secrets:
            return None
        from sqlalchemy import update

        from hygie.governance.models import Account

        with self.hub.session() as session:
            session.execute(update(Account).where(Account.username == name).values(totp_last_step=None))
            session.commit()
        return credentials.totp_code(self.secrets[name])

    def login(self, name: str) -> str:
        totp = self.code(name)
        body = {"username": name, "password": PASSWORD, "totp": totp}
        if totp is None:  # a citizen: from this world's own device (a breach-flagged one steps up once, by post)
            body["device"] = f"test-world-device-of-{name}"
        r = self.client.post("/auth/login", json=body)
        if r.status_code == 401 and totp is None:  # the one refusal: a flagged citizen's new device gets a letter
            body["step_up_code"] = self.postal_code(name, "device")
            r = self.client.post("/auth/login", json=body)
        assert r.status_code == 200, r.text
        token: str = r.json()["token"]
        self.tokens[name] = token
        return token

    def postal_code(self, name: str, purpose: str) -> str:
        """The code on the newest letter of this purpose sent to this citizen (read from the sealed outbox, as the
        mail room would print it)."""
        from sqlalchemy import select

        from hygie.governance import letters
        from hygie.governance.models import Account

        with self.hub.session() as session:
            account = session.scalars(select(Account).where(Account.username == name)).one()
            letter = session.scalars(
                select(letters.CitizenLetter)
                .where(letters.CitizenLetter.person_index == account.person_index)
                .where(letters.CitizenLetter.purpose == purpose)
                .order_by(letters.CitizenLetter.id.desc())
            ).first()
            assert letter is not None, f"no {purpose} letter for {name}"
            code: str = letters.CODE.findall(letters.open_letter(self.hub.custody, letter).decode("latin-1"))[0]
            return code

    def headers(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            self.login(name)
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def call(self, name: str | None, method: str, path: str, **kwargs: Any) -> Any:
        headers = self.headers(name) if name else {}
        return self.client.request(method, path, headers=headers, **kwargs)

    def pages(self, name: str) -> TestClient:
        """A browser-like client signed in to the pages (cookies, CSRF) as ``name``."""
        pages = TestClient(self.client.app)
        csrf = re.search(r'name="csrf" value="([^"]+)"', pages.get("/connexion").text)
        assert csrf is not None
        form = {"csrf": csrf.group(1), "username": name, "password": PASSWORD, "totp": self.code(name)}
        assert pages.post("/connexion", data=form).status_code in (200, 303)
        return pages

    def active_project(self, requester: str = "researcher1", **overrides: Any) -> int:
        """A project taken through submission and two approvals."""
        r = self.call(requester, "POST", "/projects", json=project_request(**overrides))
        assert r.status_code == 200, r.text
        pid: int = r.json()["id"]
        assert self.call(requester, "POST", f"/projects/{pid}/submit").status_code == 200
        for reviewer in ("reviewer1", "reviewer2"):
            r = self.call(reviewer, "POST", f"/projects/{pid}/decisions",
                          json={"decision": "approve", "reason": "lawful purpose, minimal scope"})  # fmt: skip
            assert r.status_code == 200, r.text
        assert r.json()["status"] == "active"
        return pid


_counter = itertools.count()


@pytest.fixture(scope="session")
def small_delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("portal-delivery")
    generate(out, people=300, years=1, seed=3, start_year=2024)
    return out


@dataclass(frozen=True)
class Template:
    """A hub with the small population ingested once; each test gets a copy (ingesting takes seconds)."""

    data_dir: Path
    delivery: Path
    database: str | None
    """The PostgreSQL database to clone (CREATE DATABASE ... TEMPLATE), None on SQLite."""


def make_template(tmp: Path, delivery: Path, cluster: str | None) -> Template:
    database = f"hygie_tpl_{next(_counter)}" if cluster else None
    url = postgres.create_database(cluster, database) if cluster and database else None
    settings = make_settings(tmp / "hub", **({"database_url": url} if url else {}))
    hub = Hub.init(settings)
    for batch in expand_batches([delivery]):
        assert ingest_batch(hub, batch).status == "accepted"
    hub.close()
    return Template(tmp / "hub", delivery, database)


def clone_hub(tmp: Path, template: Template, cluster: str | None) -> Hub:
    """A hub of its own holding the template's data: files copied, PostgreSQL database cloned."""
    shutil.copytree(template.data_dir, tmp / "hub")
    if template.database is None:
        settings = make_settings(tmp / "hub")
    else:
        assert cluster is not None
        url = postgres.create_database(cluster, f"hygie_clone_{next(_counter)}", template=template.database)
        settings = make_settings(tmp / "hub", database_url=url)
    return Hub.open(settings)


def release_hub(hub: Hub) -> None:
    """Close a cloned hub and drop its PostgreSQL database (see tests/postgres.drop_database)."""
    url = hub.settings.database_url
    hub.close()
    if url:
        postgres.drop_database(url)


def build_world(tmp: Path, template: Template, cluster: str | None) -> Iterator[World]:
    hub = clone_hub(tmp, template, cluster)
    world = World(hub, TestClient(create_app(hub)), template.delivery)
    with act(hub, CONSOLE, "test.setup") as session:
        accounts = Accounts(session, hub.custody, hub.settings)
        for name, role in STAFF.items():
            created = accounts.create(CONSOLE, username=name, role=role, password=PASSWORD, organisation="Test")
            world.ids[name] = created.account.id
            world.secrets[name] = accounts.totp_secret(created.account)
        for i, person in enumerate(people(template.delivery)[:2], start=1):
            created = Citizens(hub, session).enrol(
                nir=person["BEN_NIR"], last_name=person["NOM"], birth_date=person["DATE_NAISSANCE"],
                username=f"citizen{i}", password=PASSWORD,
            )  # fmt: skip
            world.ids[f"citizen{i}"] = created.account.id
    yield world
    release_hub(hub)


def people(delivery: Path) -> list[dict[str, str]]:
    """The delivered beneficiaries, identities included (as the producer sent them)."""
    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def notify_first_people(world: World, incident: str, n: int = 20) -> list[dict[str, str]]:
    """The DPO imports a leak of the first ``n`` people of the population, the auditor confirms the import (a second
    person), and the DPO notifies them; returns everyone."""
    from hygie.breach.synthetic import HEADERS

    everyone = people(world.delivery)
    rows = [[p["BEN_NIR"], p["NOM"], p["PRENOM"], p["DATE_NAISSANCE"]] for p in everyone[:n]]
    blob = ("\n".join(",".join(r) for r in [HEADERS[:4], *rows]) + "\n").encode()
    r = world.call("dpo", "POST", "/breach/incidents", files={"file": ("l.csv", blob)}, data={"incident": incident})
    assert r.status_code == 200 and r.json()["status"] == "staged", r.text
    incident_id = r.json()["id"]
    r = world.call("auditor", "POST", f"/breach/incidents/{incident_id}/confirm")  # the second person
    assert r.status_code == 200 and r.json()["matched"] == n, r.text
    assert world.call("dpo", "POST", f"/breach/incidents/{incident_id}/notify").json()["people"] == n
    return everyone
