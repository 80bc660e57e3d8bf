# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Sign-in, second factor (each code once), uniform refusals, per-source throttling, sessions and scoped tokens,
through the HTTP API."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hygie.audit import AuditEvent
from hygie.governance import credentials
from hygie.governance.models import Account, ApiToken, AuthSession
from hygie.portal.pages.web import ANON_CSRF_COOKIE, CSRF_FIELD
from tests.portal.world import PASSWORD, World


def events(world: World, action: str) -> list[AuditEvent]:
    with world.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_staff_need_their_second_factor(world: World) -> None:
    r = world.client.post("/auth/login", json={"username": "reviewer1", "password": PASSWORD})
    assert r.status_code == 401
    wrong = "000000" if credentials.totp_code(world.secrets["reviewer1"]) != "000000" else "111111"
    r = world.client.post("/auth/login", json={"username": "reviewer1", "password": PASSWORD, "totp": wrong})
    assert r.status_code == 401
    assert world.login("reviewer1").startswith("hs_")
    outcomes = [(e.actor, e.outcome) for e in events(world, "auth.login")]
    me = f"account:{world.ids['reviewer1']}"
    assert outcomes == [(me, "denied"), (me, "denied"), (me, "ok")]


def login(client: TestClient, username: str, totp: str | None = None, password: str = PASSWORD) -> Any:
    return client.post("/auth/login", json={"username": username, "password": password, "totp": totp})


def answer(r: Any) -> tuple[int, bytes, str | None]:
    return r.status_code, r.content, r.headers.get("www-authenticate")


def test_a_second_factor_code_works_once(world: World) -> None:
    code = world.code("reviewer1")
    assert login(world.client, "reviewer1", code).status_code == 200
    replayed = login(world.client, "reviewer1", code)
    assert replayed.status_code == 401 and replayed.json()["detail"] == "wrong username, password or code"
    assert events(world, "auth.login")[-1].detail["reason"] == "second factor already used"
    # Two sign-ins racing with one fresh code: at most one session (a conditional UPDATE of the last step).
    code = world.code("reviewer2")
    clients = [TestClient(world.client.app, client=(f"198.51.100.{i}", 1000)) for i in (1, 2)]
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(lambda c: login(c, "reviewer2", code).status_code, clients))
    assert statuses == [200, 401], statuses


def test_every_refusal_is_the_same_answer(world: World) -> None:
    """Unknown, disabled, once-locked accounts, wrong passwords, wrong, missing and spent codes: byte-identical."""
    assert world.call("operator", "POST", f"/accounts/{world.ids['researcher2']}/disable").status_code == 200
    with world.hub.session() as session:  # a lock left by the old policy no longer means anything
        session.execute(update(Account).where(Account.username == "reviewer3")
                        .values(locked_until=datetime.now(UTC) + timedelta(hours=1)))  # fmt: skip
        session.commit()
    spent = world.code("reviewer1")
    assert login(world.client, "reviewer1", spent).status_code == 200
    wrong = "000000" if credentials.totp_code(world.secrets["auditor"]) != "000000" else "111111"
    refusals = [
        login(world.client, "nobody-of-that-name", "123456"),
        login(world.client, "researcher2", world.code("researcher2")),  # disabled, right password and code
        login(world.client, "researcher1", world.code("researcher1"), password="not the password!"),
        login(world.client, "auditor", wrong),
        login(world.client, "auditor", None),
        login(world.client, "reviewer1", spent),
        login(world.client, "citizen1", password="not the password!"),
    ]
    assert len({answer(r) for r in refusals}) == 1, [answer(r) for r in refusals]
    assert answer(refusals[0])[:2] == (401, b'{"detail":"wrong username, password or code"}')
    assert login(world.client, "reviewer3", world.code("reviewer3")).status_code == 200
    reasons = [e.detail["reason"] for e in events(world, "auth.login") if e.outcome == "denied"]
    assert reasons == ["unknown account", "account disabled", "wrong password", "wrong or missing second factor",
                       "wrong or missing second factor", "second factor already used", "wrong password"]  # fmt: skip


def test_failures_slow_their_source_and_never_lock_the_holder_out(world: World) -> None:
    throttle = world.client.app.state.signin_throttle  # type: ignore[attr-defined]
    now = [time.time()]
    throttle.clock = lambda: now[0]
    attacker = TestClient(world.client.app, client=("203.0.113.7", 4000))
    free = world.hub.settings.login_free_failures
    statuses = []
    for _ in range(20):  # twenty guesses, waiting out each backoff as a patient attacker would
        r = login(attacker, "researcher1", "123456", password="a guessed password")
        if r.status_code == 429:
            now[0] += int(r.headers["retry-after"])
            r = login(attacker, "researcher1", "123456", password="a guessed password")
        statuses.append(r.status_code)
    assert statuses == [401] * 20
    # While it waits, the attacker's source is told so, the same way for an existing and an unknown username.
    throttled = login(attacker, "researcher1", "123456", password="a guessed password")
    for _ in range(free):
        login(attacker, "no-such-person", "123456", password="a guessed password")
    unknown = login(attacker, "no-such-person", "123456", password="a guessed password")
    assert throttled.status_code == unknown.status_code == 429
    assert int(throttled.headers["retry-after"]) >= 1
    assert "too many failed sign-ins from your address" in throttled.json()["detail"]
    # The holder, from another address, signs in at once, with no lock to lift.
    assert world.login("researcher1").startswith("hs_")
    assert login(attacker, "researcher1", "123456", password="a guessed password").status_code == 429
    # Spraying many usernames from one address is slowed too (source-wide count), not only one account.
    sprayer = TestClient(world.client.app, client=("203.0.113.8", 4000))
    limit = world.hub.settings.login_source_free_failures
    codes = [login(sprayer, f"guess-{i}", "123456").status_code for i in range(limit + 1)]
    assert codes == [401] * limit + [429]
    # The page sign-in is throttled with the API's count: 429, Retry-After, a French sentence, no account named.
    attacker.cookies.set(ANON_CSRF_COOKIE, "c" * 64)
    page = attacker.post("/connexion", data={CSRF_FIELD: "c" * 64, "username": "researcher1", "password": "guess"})
    assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
    assert "Trop de tentatives de connexion ont échoué depuis votre adresse" in page.text
    # Each wait's first refusal is on the record, without the address or the username; the others are not.
    throttles = events(world, "auth.throttle")
    assert throttles and all(set(e.detail) == {"key", "retry_after"} for e in throttles)
    assert len(throttles) <= 25


def test_an_unknown_username_is_refused_and_never_recorded(world: World) -> None:
    typed = "2850575123456 or jean.dupont@example.org"
    r = world.client.post("/auth/login", json={"username": typed, "password": "whatever it is"})
    assert r.status_code == 401
    assert r.json()["detail"] == "wrong username, password or code"
    [event] = events(world, "auth.login")
    assert event.actor == "anonymous" and event.outcome == "denied"
    assert typed not in str(event.as_dict())


def test_sessions_expire_and_logout_closes_them(world: World) -> None:
    headers = world.headers("researcher1")
    assert world.client.get("/me", headers=headers).status_code == 200
    with world.hub.session() as session:
        session.execute(update(AuthSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    r = world.client.get("/me", headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert events(world, "auth.token")[-1].outcome == "denied"
    fresh = {"Authorization": f"Bearer {world.login('researcher1')}"}
    assert world.client.post("/auth/logout", headers=fresh).status_code == 200
    assert world.client.get("/me", headers=fresh).status_code == 401


def test_tokens_are_scoped_bounded_and_expire(world: World) -> None:
    r = world.call("researcher1", "POST", "/me/tokens", json={"name": "ci", "scopes": ["governance"], "days": 30})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token.startswith("ht_")
    me = world.client.get("/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["scopes"] == ["governance"] and me["via"] == "token"
    # Too long, no project for data, a token minting a token, the audit scope a researcher does not hold.
    too_long = world.hub.settings.api_token_max_days + 1
    assert world.call("researcher1", "POST", "/me/tokens",
                      json={"name": "x", "scopes": ["governance"], "days": too_long}).status_code == 422  # fmt: skip
    assert world.call("researcher1", "POST", "/me/tokens",
                      json={"name": "x", "scopes": ["data"], "days": 1}).status_code == 422  # fmt: skip
    r = world.client.post("/me/tokens", headers={"Authorization": f"Bearer {token}"},
                          json={"name": "x", "scopes": ["governance"], "days": 1})  # fmt: skip
    assert r.status_code == 403
    assert world.call("researcher1", "POST", "/me/tokens",
                      json={"name": "x", "scopes": ["audit"], "days": 1}).status_code == 403  # fmt: skip
    with world.hub.session() as session:
        session.execute(update(ApiToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert world.client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    minted = events(world, "token.mint")
    assert [e.outcome for e in minted] == ["ok", "failed", "failed", "denied", "denied"]


def test_a_disabled_account_cannot_sign_in_nor_use_its_session(world: World) -> None:
    headers = world.headers("researcher2")
    assert world.call("operator", "POST", f"/accounts/{world.ids['researcher2']}/disable").status_code == 200
    assert world.client.get("/me", headers=headers).status_code == 401
    totp = credentials.totp_code(world.secrets["researcher2"])
    r = world.client.post("/auth/login", json={"username": "researcher2", "password": PASSWORD, "totp": totp})
    assert r.status_code == 401 and r.json()["detail"] == "wrong username, password or code"
    assert events(world, "auth.login")[-1].detail["reason"] == "account disabled"


def test_passwords_are_argon2id_hashes_and_totp_secrets_are_sealed(world: World) -> None:
    from hygie.governance.models import Account

    with world.hub.session() as session:
        account = session.scalars(select(Account).where(Account.username == "dpo")).one()
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    assert account.totp_sealed is not None and world.secrets["dpo"] not in account.totp_sealed
