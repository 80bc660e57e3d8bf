# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Access alerts over HTTP: the DPO and auditors read them, only the DPO handles them, every call is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hygie.audit import AuditEvent
from hygie.audit.alerts import AlertPolicy, evaluate
from hygie.portal.routes import alerts
from tests.portal.world import World

POLICY = AlertPolicy(settle_seconds=0, working_hours=(0, 24), working_days=tuple(range(7)))
"""Settled at once (PostgreSQL leaves id gaps on rollback), and no off-hours alerts whatever time tests run."""


@pytest.fixture
def w(world: World) -> World:
    app = world.client.app
    assert isinstance(app, FastAPI)
    if not any(getattr(r, "path", "").startswith("/alerts") for r in app.routes):
        app.include_router(alerts.router)
    return world


def events(w: World, action: str) -> list[AuditEvent]:
    with w.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def operator_alert(w: World) -> dict[str, Any]:
    """An operator creates a researcher account; the evaluation raises an alert citing that act."""
    body = {"username": "new-researcher", "role": "researcher", "email": "new.researcher@example.org"}
    r = w.call("operator", "POST", "/accounts", json=body)
    assert r.status_code == 200, r.text
    evaluate(w.hub, POLICY)
    act = next(e for e in events(w, "account.create") if e.actor == f"account:{w.ids['operator']}")
    page = w.call("dpo", "GET", "/alerts", params={"limit": 200}).json()
    (alert,) = [a for a in page["alerts"] if act.id in a["evidence"]["event_ids"]]
    return dict(alert)


def test_an_operators_governance_act_raises_an_alert(w: World) -> None:
    alert = operator_alert(w)
    assert alert["rule"] == "operator_governance" and alert["severity"] == "high"
    assert alert["actor"] == f"account:{w.ids['operator']}" and alert["status"] == "open"
    assert alert["evidence"]["actions"] == {"account.create": 1}
    raised = [e for e in events(w, "alert.raise") if e.object == f"alert:{alert['id']}"]
    assert len(raised) == 1 and raised[0].actor == "system"
    assert evaluate(w.hub, POLICY) == []  # evaluated once: nothing raised twice


@pytest.mark.parametrize("who", ["citizen1", "researcher1", "reviewer1", "operator", None])
def test_only_the_dpo_and_auditors_read_alerts(w: World, who: str | None) -> None:
    r = w.call(who, "GET", "/alerts")
    assert r.status_code == (401 if who is None else 403)
    if who is not None:
        denied = [e for e in events(w, "alert.list") if e.actor == f"account:{w.ids[who]}"]
        assert [e.outcome for e in denied] == ["denied"]


def test_reading_is_filtered_paginated_and_recorded(w: World) -> None:
    operator_alert(w)
    for who in ("dpo", "auditor"):
        page = w.call(who, "GET", "/alerts", params={"status": "open", "limit": 2, "offset": 1}).json()
        assert page["total"] >= 3 and page["limit"] == 2 and page["offset"] == 1 and len(page["alerts"]) == 2
        assert all(a["status"] == "open" for a in page["alerts"])
        ids = [a["id"] for a in page["alerts"]]
        assert ids == sorted(ids, reverse=True)  # newest first
        assert w.call(who, "GET", f"/alerts/{ids[0]}").json()["id"] == ids[0]
    assert w.call("dpo", "GET", "/alerts", params={"status": "dismissed"}).json()["total"] == 0
    assert w.call("dpo", "GET", "/alerts", params={"status": "bogus"}).status_code == 422
    assert w.call("dpo", "GET", "/alerts/999999").status_code == 404
    readers = {e.actor for e in events(w, "alert.list") if e.outcome == "ok"}
    assert readers == {f"account:{w.ids['dpo']}", f"account:{w.ids['auditor']}"}


def test_only_the_dpo_acknowledges_or_dismisses(w: World) -> None:
    alert = operator_alert(w)
    note = {"note": "asked the operator: onboarding of the Lyon team, ticket 42"}
    for who in ("auditor", "operator", "reviewer1", "researcher1"):
        assert w.call(who, "POST", f"/alerts/{alert['id']}/acknowledge", json=note).status_code == 403
        assert w.call(who, "POST", f"/alerts/{alert['id']}/dismiss", json=note).status_code == 403

    r = w.call("dpo", "POST", f"/alerts/{alert['id']}/acknowledge", json=note)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "acknowledged" and body["note"] == note["note"]
    assert body["handled_by"] == f"account:{w.ids['dpo']}" and body["handled_at"] is not None
    assert w.call("dpo", "POST", f"/alerts/{alert['id']}/acknowledge", json=note).status_code == 409
    assert w.call("dpo", "POST", f"/alerts/{alert['id']}/dismiss", json={"note": ""}).status_code == 422
    r = w.call("dpo", "POST", f"/alerts/{alert['id']}/dismiss", json={"note": "legitimate onboarding"})
    assert r.status_code == 200 and r.json()["status"] == "dismissed"
    assert w.call("dpo", "POST", f"/alerts/{alert['id']}/dismiss", json=note).status_code == 409
    assert w.call("dpo", "POST", "/alerts/999999/dismiss", json=note).status_code == 404
    dismissed = w.call("auditor", "GET", "/alerts", params={"status": "dismissed"}).json()
    assert [a["id"] for a in dismissed["alerts"]] == [alert["id"]]

    handled = [e for e in [*events(w, "alert.acknowledge"), *events(w, "alert.dismiss")] if e.outcome == "ok"]
    assert [(e.action, e.detail["to"]) for e in handled] == [
        ("alert.acknowledge", "acknowledged"),
        ("alert.dismiss", "dismissed"),
    ]
    # The note is free text a person typed: it stays in the alert, never in the record.
    assert all(note["note"] not in str(e.detail) for e in handled)
    refused = [e for e in events(w, "alert.acknowledge") if e.outcome == "denied"]
    assert {e.actor for e in refused} >= {f"account:{w.ids[n]}" for n in ("auditor", "operator")}
