# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Access alert rules over crafted event streams: each fires on its pattern and stays quiet on ordinary work."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hygie.audit import AuditEvent, record_now
from hygie.audit.alerts import (
    Alert,
    AlertPolicy,
    AuditAlert,
    AuditAlertCursor,
    _settled,
    evaluate,
    start_alerting,
)
from hygie.config import Settings
from hygie.hub import Hub

WEDNESDAY = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
"""10:00 in Paris (CET), a working day."""
POLICY = AlertPolicy()


def add(hub: Hub, at: datetime, n: int = 1, step: timedelta = timedelta(seconds=10), **fields: Any) -> list[int]:
    """Events at chosen times (``record`` stamps the present; rules look at when things happened)."""
    values: dict[str, Any] = {"actor": "account:1", "role": "researcher", "action": "view.query", "outcome": "ok",
                              "project_id": 1, "detail": {}}  # fmt: skip
    values.update(fields)
    with hub.session() as session:
        events = [AuditEvent(at=at + i * step, **values) for i in range(n)]
        session.add_all(events)
        session.commit()
        return [e.id for e in events]


def rules(alerts: list[Alert]) -> list[str]:
    return sorted(a.rule for a in alerts)


def test_an_ordinary_day_raises_nothing(hub: Hub) -> None:
    add(hub, WEDNESDAY, 40, step=timedelta(minutes=5))  # steady queries through the morning
    add(hub, WEDNESDAY, 1, action="auth.login", project_id=None, detail={"session": 3})
    add(hub, WEDNESDAY, 2, action="auth.login", outcome="denied", project_id=None, detail={"reason": "wrong password"})
    add(hub, WEDNESDAY, 1, action="project.change", outcome="denied", project_id=None)
    add(hub, WEDNESDAY, 3, action="analysis.release", detail={"min_cell_people": 40, "threshold": 11})
    add(hub, WEDNESDAY, 4, action="analysis.release", detail={"min_cell_people": 12, "threshold": 11})
    add(hub, WEDNESDAY, 1, actor="account:2", role="reviewer", action="project.approve", project_id=1)
    add(hub, WEDNESDAY, 1, actor="account:3", role="operator", action="audit.verify", project_id=None)
    assert evaluate(hub, POLICY) == []


def test_volume_of_queries_and_of_rows(hub: Hub) -> None:
    ids = add(hub, WEDNESDAY, 250, step=timedelta(seconds=10))
    alerts = evaluate(hub, POLICY)
    volume = [a for a in alerts if a.rule == "volume"]
    assert len(volume) == 1  # one alert per window, not one per query past the limit
    assert volume[0].evidence["event_ids"] == ids[:201]
    assert volume[0].evidence["count"] == 201 and volume[0].evidence["window_seconds"] == 3600
    assert volume[0].actor == "account:1" and volume[0].severity == "medium"

    add(hub, WEDNESDAY + timedelta(days=1), 3, actor="account:5", detail={"rows": 2_000_000})
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["volume"] and alerts[0].evidence["rows"] == 6_000_000


def test_far_above_the_users_own_baseline(hub: Hub) -> None:
    policy = AlertPolicy(baseline_days=1, working_hours=(0, 24), working_days=tuple(range(7)))
    start = WEDNESDAY - timedelta(days=1)
    add(hub, start, 240, step=timedelta(minutes=6))  # ten queries an hour for a day
    add(hub, WEDNESDAY + timedelta(minutes=1), 60, step=timedelta(seconds=30))  # six times that: usual enough
    assert evaluate(hub, policy) == []
    ids = add(hub, WEDNESDAY + timedelta(hours=3), 120, step=timedelta(seconds=20))  # twelve times: not
    alerts = evaluate(hub, policy)
    assert rules(alerts) == ["baseline"]
    assert alerts[0].evidence["count"] >= 101 and set(alerts[0].evidence["event_ids"]) <= set(ids)
    assert alerts[0].evidence["baseline_per_window"] > 0


def test_repeated_releases_hovering_just_above_the_threshold(hub: Hub) -> None:
    ids = add(hub, WEDNESDAY, 5, step=timedelta(hours=2), action="analysis.release", project_id=3,
              detail={"min_cell_people": 12, "threshold": 11})  # fmt: skip
    add(hub, WEDNESDAY, 5, step=timedelta(hours=2), action="analysis.release", project_id=4,
        detail={"min_cell_people": 25, "threshold": 11})  # fmt: skip
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["threshold_hover"]
    assert alerts[0].project_id == 3 and alerts[0].severity == "high"
    assert alerts[0].evidence["event_ids"] == ids and alerts[0].evidence["min_cells"] == [12] * 5


def _member(hub: Hub, account_id: int, project_id: int) -> None:
    """The account requested the project: the alerts read that from its ``project.create`` event."""
    add(hub, WEDNESDAY - timedelta(hours=1), actor=f"account:{account_id}", action="project.create",
        project_id=project_id)  # fmt: skip


def test_attempts_outside_a_projects_scope(hub: Hub) -> None:
    _member(hub, 7, 2)
    inside = add(hub, WEDNESDAY, actor="account:7", action="project.change", outcome="denied", project_id=2)
    outside = add(hub, WEDNESDAY, 2, actor="account:7", action="project.read", outcome="denied", project_id=9)
    data = add(hub, WEDNESDAY, actor="account:7", action="view.describe", outcome="denied", project_id=2)
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["scope", "scope"]
    by_project = {a.project_id: a.evidence["event_ids"] for a in alerts}
    assert by_project == {9: outside, 2: data}  # a member's refused change is no attempt outside the project
    assert inside[0] not in by_project[2]
    # A member the requester added (``project.member.add`` names the account) is inside the project too.
    add(hub, WEDNESDAY - timedelta(hours=1), actor="account:7", action="project.member.add", project_id=2,
        detail={"account": 8})  # fmt: skip
    add(hub, WEDNESDAY + timedelta(hours=1), actor="account:8", action="project.change", outcome="denied",
        project_id=2)  # fmt: skip
    assert evaluate(hub, POLICY) == []


def test_bursts_of_denied_acts_and_of_failed_sign_ins(hub: Hub) -> None:
    add(hub, WEDNESDAY, 4, actor="account:8", action="account.list", outcome="denied", project_id=None)
    assert evaluate(hub, POLICY) == []
    # The fifth arrives after the first four were evaluated: the window reaches back over the cursor.
    add(hub, WEDNESDAY + timedelta(minutes=2), actor="account:8", action="account.list", outcome="denied",
        project_id=None)  # fmt: skip
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["denied"] and alerts[0].evidence["count"] == 5

    add(hub, WEDNESDAY, 12, step=timedelta(seconds=20), actor="anonymous", role=None, action="auth.login",
        outcome="denied", project_id=None, detail={"reason": "unknown account"})  # fmt: skip
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["login_failures"]  # sign-ins are their own rule, not also "denied"
    assert alerts[0].actor == "anonymous" and alerts[0].evidence["count"] == 10


def test_data_access_off_hours(hub: Hub) -> None:
    night = datetime(2026, 3, 11, 22, 30, tzinfo=UTC)  # 23:30 in Paris
    saturday = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
    add(hub, WEDNESDAY, 5, step=timedelta(minutes=1), actor="account:4")  # working hours
    add(hub, night, 2, step=timedelta(minutes=1), actor="account:5")  # two: not yet a burst
    ids = add(hub, night, 3, step=timedelta(minutes=1), actor="account:6")
    weekend = add(hub, saturday, 3, step=timedelta(minutes=1), actor="account:4")
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["off_hours", "off_hours"]
    assert {a.actor: a.evidence["event_ids"] for a in alerts} == {"account:6": ids, "account:4": weekend}
    assert all(a.severity == "low" for a in alerts)


def test_every_operator_act_on_governance_raises_an_alert(hub: Hub) -> None:
    ops = add(hub, WEDNESDAY, 2, actor="account:3", role="operator", action="project.suspend")
    console = add(hub, WEDNESDAY, actor="console", role=None, action="account.create", project_id=None)
    add(hub, WEDNESDAY, actor="account:3", role="operator", action="audit.checkpoint", project_id=None)
    add(hub, WEDNESDAY, actor="account:2", role="dpo", action="project.resume")
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["operator_governance"] * 3
    assert sorted(a.evidence["event_ids"][0] for a in alerts) == sorted([*ops, *console])
    assert all(a.severity == "high" for a in alerts)


def test_a_witness_refusal_and_the_letter_cap_raise_an_alert_at_once(hub: Hub) -> None:
    """A forked or rolled-back log (a witness refuses) and a mass letter request (the daily cap) are attacks on the
    platform itself: the DPO hears of the first one, not after a burst."""
    fork = add(hub, WEDNESDAY, actor="system:witnessing", role=None, action="audit.witness.refused",
               outcome="failed", project_id=None, detail={"witness": "w1", "status": 409})  # fmt: skip
    cap = add(hub, WEDNESDAY, actor="anonymous", role=None, action="citizen.letter.cap", outcome="denied",
              project_id=None)  # fmt: skip
    add(hub, WEDNESDAY, actor="system:witnessing", role=None, action="audit.witness.unreachable", outcome="failed",
        project_id=None)  # fmt: skip
    alerts = evaluate(hub, POLICY)
    assert rules(alerts) == ["platform_integrity"] * 2
    assert sorted(a.evidence["event_ids"][0] for a in alerts) == sorted([*fork, *cap])
    assert all(a.severity == "high" for a in alerts) and evaluate(hub, POLICY) == []


def test_alerts_are_recorded_and_never_raised_twice(hub: Hub) -> None:
    add(hub, WEDNESDAY, 6, actor="account:8", action="account.list", outcome="denied", project_id=None)
    add(hub, WEDNESDAY, actor="account:3", role="operator", action="token.mint", project_id=None)
    first = evaluate(hub, POLICY)
    assert rules(first) == ["denied", "operator_governance"]
    with hub.session() as session:
        raised = {e.object: e for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "alert.raise"))}
    assert set(raised) == {f"alert:{a.id}" for a in first}
    for alert in first:
        event = raised[f"alert:{alert.id}"]
        assert event.actor == "system" and event.outcome == "ok"
        assert event.detail["event_ids"] == alert.evidence["event_ids"] and event.detail["suspect"] == alert.actor

    assert evaluate(hub, POLICY) == []  # nothing new (the alert.raise events themselves raise nothing)
    # Even with the cursor wound back to the start, the same evidence raises nothing again.
    with hub.session() as session:
        session.execute(update(AuditAlertCursor).values(last_event_id=0))
        session.commit()
    assert evaluate(hub, POLICY) == []
    with hub.session() as session:
        assert session.scalar(select(func.count(AuditAlert.id))) == 2
        assert session.scalar(select(AuditAlertCursor.last_event_id)) == session.scalar(select(func.max(AuditEvent.id)))


def test_evaluation_joins_the_callers_transaction(hub: Hub) -> None:
    add(hub, WEDNESDAY, actor="account:3", role="operator", action="project.close")
    with hub.session() as session:
        assert rules(evaluate(session, POLICY)) == ["operator_governance"]
        session.rollback()  # the caller's act failed: alerts, their record and the cursor go with it
    assert rules(evaluate(hub, POLICY)) == ["operator_governance"]


def test_evaluation_waits_at_a_gap_that_may_still_fill() -> None:
    now = datetime.now(UTC)

    def event(i: int, age: float) -> AuditEvent:
        return AuditEvent(id=i, at=now - timedelta(seconds=age), actor="system", action="x", outcome="ok", detail={})

    events = [event(1, 100), event(2, 100), event(4, 5), event(5, 1)]
    assert [e.id for e in _settled(events, 0, now, timedelta(seconds=60))] == [1, 2]  # 3 may be in flight
    events[2] = event(4, 120)
    assert [e.id for e in _settled(events, 0, now, timedelta(seconds=60))] == [1, 2, 4, 5]  # 3 was rolled back


def test_the_background_thread_raises_alerts(hub: Hub) -> None:
    alerter = start_alerting(hub, interval=0.05, policy=POLICY)
    try:
        record_now(hub.session, actor="account:3", role="operator", action="account.disable", object="account:4")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with hub.session() as session:
                if session.scalar(select(func.count(AuditAlert.id))):
                    break
            time.sleep(0.05)
    finally:
        alerter.stop()
    with hub.session() as session:
        assert session.scalars(select(AuditAlert.rule)).all() == ["operator_governance"]


@pytest.mark.parametrize("threshold", [11, 20])
def test_policy_follows_the_platforms_disclosure_threshold(tmp_path: Any, threshold: int) -> None:
    settings = Settings(data_dir=tmp_path, disclosure_threshold=threshold)
    assert AlertPolicy.from_settings(settings).disclosure_threshold == threshold
    assert AlertPolicy.from_settings(settings, hover_margin=5).hover_margin == 5
