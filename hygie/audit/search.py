# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Searching the record: the DPO's and auditors' filters over audit_event (actor, action, project, outcome, dates).

Filters are validated against the shapes the record itself uses (``account:<id>``, ``project.approve``…), so
the search, which is recorded with its filters, can never carry free text a person typed into the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from hygie.audit.events import AuditEvent, Outcome

ACTOR_PATTERN = re.compile(r"^(account:\d{1,12}|anonymous|system|console|cli:[A-Za-z0-9._-]{1,60})$")
ACTION_PATTERN = re.compile(r"^[a-z0-9_.]{1,100}\*?$")
"""An action, or a prefix ending in ``*`` (``project.*``)."""


class SearchInvalid(ValueError):
    """A filter does not have the shape of what the record holds; the message says which and what to send."""


@dataclass(frozen=True)
class EventFilter:
    actor: str | None = None
    action: str | None = None
    project_id: int | None = None
    outcome: str | None = None
    since: date | None = None
    """First day included (UTC)."""
    until: date | None = None
    """Last day included (UTC)."""

    def __post_init__(self) -> None:
        if self.actor is not None and not ACTOR_PATTERN.match(self.actor):
            raise SearchInvalid("actor: account:<id>, anonymous, system, console or cli:<user>, as the record names it")
        if self.action is not None and not ACTION_PATTERN.match(self.action):
            raise SearchInvalid("action: lower-case words joined by dots (project.approve), or a prefix like project.*")
        if self.outcome is not None and self.outcome not in {o.value for o in Outcome}:
            raise SearchInvalid(f"outcome: one of {', '.join(o.value for o in Outcome)}")
        if self.since and self.until and self.until < self.since:
            raise SearchInvalid("the date range ends before it starts")

    def as_detail(self) -> dict[str, Any]:
        """The filters as recorded with the search (all validated shapes, no free text)."""
        return {
            "actor": self.actor,
            "action": self.action,
            "project_id": self.project_id,
            "outcome": self.outcome,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass(frozen=True)
class EventPage:
    total: int
    offset: int
    events: list[AuditEvent] = field(default_factory=list)


def _filtered(query: Select[Any], f: EventFilter) -> Select[Any]:
    if f.actor:
        query = query.where(AuditEvent.actor == f.actor)
    if f.action:
        if f.action.endswith("*"):
            query = query.where(AuditEvent.action.startswith(f.action[:-1], autoescape=True))
        else:
            query = query.where(AuditEvent.action == f.action)
    if f.project_id is not None:
        query = query.where(AuditEvent.project_id == f.project_id)
    if f.outcome:
        query = query.where(AuditEvent.outcome == f.outcome)
    if f.since:
        query = query.where(AuditEvent.at >= datetime.combine(f.since, time.min, UTC))
    if f.until:
        query = query.where(AuditEvent.at < datetime.combine(f.until + timedelta(days=1), time.min, UTC))
    return query


def search_events(session: Session, f: EventFilter, *, offset: int, limit: int) -> EventPage:
    """Matching events, newest first, with the total count. The caller records the search."""
    total = session.scalar(_filtered(select(func.count(AuditEvent.id)), f)) or 0
    rows = session.scalars(_filtered(select(AuditEvent), f).order_by(AuditEvent.id.desc()).offset(offset).limit(limit))
    return EventPage(total=int(total), offset=offset, events=list(rows))
