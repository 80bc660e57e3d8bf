"""Sign-in, second factor, lockout, sessions and scoped tokens, through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from hygie.audit import AuditEvent
from hygie.governance import credentials
from hygie.governance.models import ApiToken, AuthSession
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


def test_lockout_after_repeated_failures_even_for_the_right_password(world: World) -> None:
    limit = world.hub.settings.login_max_failures
    for _ in range(limit):
        r = world.client.post("/auth/login", json={"username": "researcher1", "password": "not the password!"})
        assert r.status_code == 401
    totp = credentials.totp_code(world.secrets["researcher1"])
    r = world.client.post("/auth/login", json={"username": "researcher1", "password": PASSWORD, "totp": totp})
    assert r.status_code == 401
    assert "locked" in r.json()["detail"]
    details = [e.detail for e in events(world, "auth.login")]
    assert details[limit - 1].get("locked_minutes") == world.hub.settings.lockout_minutes
    assert details[-1]["reason"] == "locked"
    # The DPO (not the operator: researchers are theirs to create, but a lock is lifted by whoever may) unlocks.
    r = world.call("dpo", "POST", f"/accounts/{world.ids['researcher1']}/enable")
    assert r.status_code == 200
    assert world.login("researcher1")


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
    assert r.status_code == 401 and "disabled" in r.json()["detail"]


def test_passwords_are_argon2id_hashes_and_totp_secrets_are_sealed(world: World) -> None:
    from hygie.governance.models import Account

    with world.hub.session() as session:
        account = session.scalars(select(Account).where(Account.username == "dpo")).one()
    assert account.password_hash.startswith("$argon2id$")
    assert PASSWORD not in account.password_hash
    assert account.totp_sealed is not None and world.secrets["dpo"] not in account.totp_sealed
