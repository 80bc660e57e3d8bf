# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Access alerts: the DPO and auditors read them; the DPO acknowledges or dismisses them, with a note.

Every call is recorded. The note itself stays in the alert, not in the event: it is free text a person types
and could carry an identifier, which the record must never hold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from hygie.audit import record
from hygie.audit.alerts import AlertStatus, AuditAlert
from hygie.governance.accounts import Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, NotFound
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep
from hygie.vocabulary import ALERT_ACTION, ALERT_STATUS, ROLE, word

router = APIRouter(prefix="/alerts", tags=["alerts"])

READERS = frozenset({Role.DPO, Role.AUDITOR})
HANDLERS = frozenset({Role.DPO})


class AlertOut(BaseModel):
    id: int
    rule: str
    severity: str
    actor: str = Field(description="The actor under suspicion, as the record names them (account:<id>, anonymous…).")
    project_id: int | None
    raised_at: datetime
    evidence: dict[str, Any] = Field(description="event_ids, count, first_at, last_at, window and rule counts.")
    status: str
    handled_by: str | None
    handled_at: datetime | None
    note: str | None


class AlertPage(BaseModel):
    total: int
    offset: int
    limit: int
    alerts: list[AlertOut]


class NoteRequest(RequestBody):
    note: str = Field(min_length=1, max_length=5_000)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _out(a: AuditAlert) -> AlertOut:
    raised_at = _aware(a.raised_at)
    assert raised_at is not None
    return AlertOut(
        id=a.id, rule=a.rule, severity=a.severity, actor=a.actor, project_id=a.project_id, raised_at=raised_at,
        evidence=a.evidence, status=a.status, handled_by=a.handled_by, handled_at=_aware(a.handled_at), note=a.note,
    )  # fmt: skip


def _require(actor: Actor, roles: frozenset[Role], doing: Literal["read", "acknowledge", "dismiss"]) -> None:
    if actor.role not in roles:
        role = word(ROLE, actor.role_name or "visitor")
        if doing == "read":
            raise Denied(N_("a {role} may not read access alerts", role=role))
        if doing == "acknowledge":
            raise Denied(N_("a {role} may not acknowledge access alerts", role=role))
        raise Denied(N_("a {role} may not dismiss access alerts", role=role))
    # A DPO's governance-only token does not reach the audit record.
    if Scope.AUDIT not in actor.scopes:
        raise Denied(N_("this needs the audit scope"))


@router.get("", summary="Access alerts, newest first (the DPO and auditors)")
def list_alerts(
    hub: HubDep,
    actor: ActorDep,
    status: AlertStatus | None = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=200),
) -> AlertPage:
    with act(hub, actor, "alert.list") as session:
        _require(actor, READERS, "read")
        query = select(AuditAlert)
        counting = select(func.count(AuditAlert.id))
        if status is not None:
            query = query.where(AuditAlert.status == status.value)
            counting = counting.where(AuditAlert.status == status.value)
        total = session.scalar(counting) or 0
        rows = session.scalars(query.order_by(AuditAlert.id.desc()).offset(offset).limit(limit)).all()
        record(session, actor=actor.ref, role=actor.role_name, action="alert.list",
               detail={"status": status.value if status else None, "offset": offset, "count": len(rows)})  # fmt: skip
        return AlertPage(total=total, offset=offset, limit=limit, alerts=[_out(a) for a in rows])


@router.get("/{alert_id}", summary="One access alert (the DPO and auditors)")
def get_alert(alert_id: int, hub: HubDep, actor: ActorDep) -> AlertOut:
    with act(hub, actor, "alert.read", object=f"alert:{alert_id}") as session:
        _require(actor, READERS, "read")
        alert = session.get(AuditAlert, alert_id)
        if alert is None:
            raise NotFound(N_("no alert {alert}", alert=alert_id))
        record(session, actor=actor.ref, role=actor.role_name, action="alert.read", object=f"alert:{alert_id}",
               project_id=alert.project_id)  # fmt: skip
        return _out(alert)


_FROM: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.OPEN}),
    AlertStatus.DISMISSED: frozenset({AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED}),
}
"""Which states each handling may leave: a dismissed alert stays dismissed (a new one is raised if it recurs)."""


def _handle(hub: Hub, actor: Actor, alert_id: int, verb: Literal["acknowledge", "dismiss"], note: str) -> AlertOut:
    target = AlertStatus.ACKNOWLEDGED if verb == "acknowledge" else AlertStatus.DISMISSED
    action = f"alert.{verb}"
    with act(hub, actor, action, object=f"alert:{alert_id}") as session:
        _require(actor, HANDLERS, verb)
        # FOR UPDATE: two DPOs handling one alert at once see each other's decision, not a lost update.
        alert = session.scalar(select(AuditAlert).where(AuditAlert.id == alert_id).with_for_update())
        if alert is None:
            raise NotFound(N_("no alert {alert}", alert=alert_id))
        if AlertStatus(alert.status) not in _FROM[target]:
            raise Conflict(
                N_(
                    "alert {alert} is {status}; it cannot be {action}",
                    alert=alert_id,
                    status=word(ALERT_STATUS, alert.status),
                    action=word(ALERT_ACTION, target.value),
                )
            )
        previous = alert.status
        alert.status = target.value
        alert.handled_by = actor.ref
        alert.handled_at = datetime.now(UTC)
        alert.note = note
        record(session, actor=actor.ref, role=actor.role_name, action=action, object=f"alert:{alert_id}",
               project_id=alert.project_id,
               detail={"rule": alert.rule, "from": previous, "to": target.value})  # fmt: skip
        return _out(alert)


@router.post("/{alert_id}/acknowledge", summary="Acknowledge an open alert, with a note (the DPO)")
def acknowledge(alert_id: int, body: NoteRequest, hub: HubDep, actor: ActorDep) -> AlertOut:
    return _handle(hub, actor, alert_id, "acknowledge", body.note)


@router.post("/{alert_id}/dismiss", summary="Dismiss an alert, with a note saying why (the DPO)")
def dismiss(alert_id: int, body: NoteRequest, hub: HubDep, actor: ActorDep) -> AlertOut:
    return _handle(hub, actor, alert_id, "dismiss", body.note)
