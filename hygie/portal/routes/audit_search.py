# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Searching the audit record, and reading the log's leaves with their events and salts (the DPO and auditors, with
the audit scope); every search and read is recorded. The public form of the log is GET /audit/entries
(hygie.audit.http), the same for everyone, the operator included."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from hygie.audit import AuditEvent, record
from hygie.audit.http import MAX_ENTRIES
from hygie.audit.http import PublicEntryOut as PublicEntryOut  # re-exported: the citizens' routes extend it
from hygie.audit.log import TransparencyLog
from hygie.audit.search import EventFilter, EventPage, SearchInvalid, search_events
from hygie.audit.storage import AuditLeaf
from hygie.governance.accounts import Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Denied, Invalid
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.deps import ActorDep, HubDep
from hygie.vocabulary import ROLE, word

router = APIRouter(prefix="/audit", tags=["audit"])

SEARCHERS = frozenset({Role.DPO, Role.AUDITOR})


class EventOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="account:<id>, anonymous, system, console or cli:<user>; never a name.")
    role: str | None
    action: str
    object: str | None
    project_id: int | None
    purpose: str | None
    outcome: str
    detail: dict[str, Any]
    leaf_index: int | None = Field(
        None, description="Its entry in the log (GET /audit/entries/full?start=i&end=i+1); null until sequenced."
    )


class EventsOut(BaseModel):
    total: int
    offset: int
    limit: int
    events: list[EventOut]


def event_out(e: AuditEvent, leaf_index: int | None = None) -> EventOut:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    at = e.at if e.at.tzinfo else e.at.replace(tzinfo=UTC)
    return EventOut(id=e.id, at=at, actor=e.actor, role=e.role, action=e.action, object=e.object,
                    project_id=e.project_id, purpose=e.purpose, outcome=e.outcome, detail=e.detail,
                    leaf_index=leaf_index)  # fmt: skip


def leaf_indexes(hub: Hub, events: list[AuditEvent]) -> dict[int, int]:
    """Event id -> leaf index, for the events already in the log."""
    if not events:
        return {}
    with hub.session() as session:
        rows = session.execute(
            select(AuditLeaf.event_id, AuditLeaf.leaf_index).where(AuditLeaf.event_id.in_([e.id for e in events]))
        ).all()
    return {int(e): int(i) for e, i in rows}


def search(hub: Hub, actor: Actor, f: EventFilter, *, offset: int, limit: int) -> EventPage:
    """The search behind both the JSON API and the DPO's page: checked, run and recorded in one act."""
    with act(hub, actor, "audit.search") as session:
        if actor.role not in SEARCHERS:
            raise Denied(N_("a {role} may not search the audit record", role=word(ROLE, actor.role_name or "visitor")))
        if Scope.AUDIT not in actor.scopes:
            raise Denied(N_("this needs the audit scope"))
        page = search_events(session, f, offset=offset, limit=limit)
        record(session, actor=actor.ref, role=actor.role_name, action="audit.search",
               detail={**f.as_detail(), "offset": offset, "count": len(page.events), "total": page.total})  # fmt: skip
        for event in page.events:
            session.expunge(event)  # read after the session closes, never written back
        return page


def _message(exc: Exception) -> str:
    """An exception's message as it was raised: a translatable message stays one (``str(exc)`` would make it plain
    text)."""
    return exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)


def checked_filter(hub: Hub, who: Actor, /, **values: Any) -> EventFilter:
    """The filters, or a recorded refusal (422) naming the filter at fault."""
    try:
        return EventFilter(**values)
    except SearchInvalid as exc:
        with act(hub, who, "audit.search"):
            raise Invalid(_message(exc)) from None


@router.get("/events", summary="Search the audit record, newest first (the DPO and auditors)")
def audit_events(
    hub: HubDep,
    actor: ActorDep,
    actor_ref: str | None = Query(None, alias="actor", max_length=80, description="account:<id>, anonymous…"),
    action: str | None = Query(None, max_length=101, description="An action, or a prefix like project.*"),
    project_id: int | None = Query(None, ge=0),
    outcome: str | None = Query(None, max_length=20, description="ok, denied or failed"),
    since: Annotated[date | None, Query(description="First day included (UTC).")] = None,
    until: Annotated[date | None, Query(description="Last day included (UTC).")] = None,
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> EventsOut:
    f = checked_filter(hub, actor, actor=actor_ref or None, action=action or None, project_id=project_id,
                       outcome=outcome or None, since=since, until=until)  # fmt: skip
    page = search(hub, actor, f, offset=offset, limit=limit)
    leaves = leaf_indexes(hub, page.events)
    return EventsOut(
        total=page.total,
        offset=page.offset,
        limit=limit,
        events=[event_out(e, leaves.get(e.id)) for e in page.events],
    )


class FullEntryOut(PublicEntryOut):
    """A leaf with its event and salt: SHA-256(COMMITMENT_TAG || salt || entry) is the commitment ``c`` of the
    leaf (format 2), or SHA-256(0x00 || entry) the leaf hash (format 1). COMMITMENT_TAG is
    ``hygie-audit-commitment/v2`` followed by a zero byte."""

    event_id: int
    salt: str | None = Field(description="32 random bytes, base64 (null for format 1).")
    entry: str = Field(description="The canonical entry (hygie-audit-entry/v1).")
    event: dict[str, Any]


class FullEntriesOut(BaseModel):
    start: int
    end: int
    entries: list[FullEntryOut]


@router.get("/entries/full", summary="Leaves of the log with their events and salts (the DPO and auditors)")
def full_entries(
    hub: HubDep,
    actor: ActorDep,
    start: int = Query(ge=0),
    end: int = Query(ge=1, description=f"Exclusive; at most {MAX_ENTRIES} entries per request."),
) -> FullEntriesOut:
    with act(hub, actor, "audit.entries.read", object="audit-log") as session:
        if actor.role not in SEARCHERS:
            raise Denied(
                N_(
                    "a {role} may not read the events behind the log; its public form is GET /audit/entries",
                    role=word(ROLE, actor.role_name or "visitor"),
                )
            )
        if Scope.AUDIT not in actor.scopes:
            raise Denied(N_("this needs the audit scope"))
        if end <= start or end - start > MAX_ENTRIES:
            raise Invalid(N_("ask for 1 to {count} entries with start < end", count=MAX_ENTRIES))
        log = TransparencyLog.for_hub(hub)
        size = log.size()
        if end > size:
            raise Invalid(N_("the log holds {size} entries: ask for entries below {size}", size=size))
        found = log.full_entries(start, end)
        record(session, actor=actor.ref, role=actor.role_name, action="audit.entries.read", object="audit-log",
               detail={"start": start, "end": end})  # fmt: skip
    return FullEntriesOut(start=start, end=end, entries=[FullEntryOut.model_validate(e) for e in found])
