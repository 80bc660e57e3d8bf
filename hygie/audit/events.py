# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The one recording call every layer uses.

An event says who (an account reference, never a name), in which role, did what to which object, for which
project and purpose, with which outcome, and when. Events never hold direct identifiers: people appear as
account ids, pseudonyms or vault references only.

:func:`record` adds the event to the caller's transaction, so the act and its record commit together or not at
all; :func:`record_now` commits the event on its own, for acts that are refused (the refusal is recorded even
though nothing else is written). The table refuses UPDATE and DELETE (database triggers, see the migration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.db import Base


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


class AuditEvent(Base):
    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    actor: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    """``account:<id>``, ``system``, ``anonymous`` or ``cli:<user>``."""
    role: Mapped[str | None] = mapped_column(String(40), nullable=True)
    action: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    object: Mapped[str | None] = mapped_column(String(200), nullable=True)
    project_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    purpose: Mapped[str | None] = mapped_column(String(60), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "object": self.object,
            "project_id": self.project_id,
            "purpose": self.purpose,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    outcome: Outcome | str = Outcome.OK,
    role: str | None = None,
    object: str | None = None,
    project_id: int | None = None,
    purpose: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the caller's transaction (flushed, so it has its id); the caller commits."""
    event = AuditEvent(
        at=datetime.now(UTC),
        actor=actor,
        role=role,
        action=action,
        object=object,
        project_id=project_id,
        purpose=purpose,
        outcome=str(outcome),
        detail=dict(detail or {}),
    )
    session.add(event)
    session.flush()
    return event


def record_now(sessions: Callable[[], Session], **fields: Any) -> AuditEvent:
    """Record an event in a transaction of its own, committed before this returns."""
    with sessions() as session:
        event = record(session, **fields)
        session.commit()
        return event
