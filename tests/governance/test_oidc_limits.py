# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Provider logins started, and callbacks with made-up states, from one address are limited in the database: the
flow table and the audit log do not grow with a flood."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hygie.audit import AuditEvent
from hygie.hub import Hub
from hygie.portal.app import create_app


@pytest.fixture
def client(populated: Hub) -> Iterator[TestClient]:
    with TestClient(create_app(populated)) as client:
        yield client


def recorded(hub: Hub, action: str) -> int:
    with hub.session() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))
        return int(count or 0)


@pytest.mark.parametrize("populated", ["sqlite"], indirect=True)
def test_starts_and_forged_callbacks_from_one_address_are_limited(populated: Hub, client: TestClient) -> None:
    hub = populated
    hub.settings.oidc_issuer = "http://127.0.0.1:9"  # nobody listens: a start answers "unavailable", yet counts
    hub.settings.oidc_client_id, hub.settings.oidc_attempts_per_source = "hygie", 3
    client.cookies.set("hygie_csrf", "c" * 64)
    answers = [client.post("/citoyen/connexion-fc", data={"csrf": "c" * 64}, follow_redirects=False).status_code
               for _ in range(5)]  # fmt: skip
    assert answers[3:] == [429, 429] and 429 not in answers[:3]

    before = recorded(hub, "oidc.callback")
    answers = [client.get("/citoyen/connexion-fc/retour", params={"state": f"made-up-{i}", "code": "x",
                                                                  "iss": hub.settings.oidc_issuer}).status_code
               for i in range(8)]  # fmt: skip
    assert answers[:3] == [403, 403, 403] and set(answers[3:]) == {429}
    assert recorded(hub, "oidc.callback") - before == 3  # eight forged callbacks, three records
    limited = client.get("/citoyen/connexion-fc/retour", params={"state": "again", "iss": hub.settings.oidc_issuer})
    assert limited.headers["Retry-After"] and "Trop de tentatives" in limited.text
