# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from hygie.audit import AuditEvent, Outcome, record, record_now
from hygie.hub import Hub


def test_record_commits_with_the_act_and_record_now_on_its_own(hub: Hub) -> None:
    with hub.session() as session:
        record(session, actor="account:1", role="reviewer", action="project.approve", object="project:3")
        session.rollback()  # the act failed: its event goes with it
    event = record_now(hub.session, actor="account:2", action="project.approve", outcome=Outcome.DENIED)
    with hub.session() as session:
        events = session.scalars(select(AuditEvent)).all()
    assert [(e.id, e.actor, e.outcome) for e in events] == [(event.id, "account:2", "denied")]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda: update(AuditEvent).values(outcome="ok"),
        lambda: delete(AuditEvent),
    ],
)
def test_events_cannot_be_changed_or_deleted(hub: Hub, tamper) -> None:  # type: ignore[no-untyped-def]
    record_now(hub.session, actor="account:2", action="project.approve", outcome=Outcome.DENIED)
    with hub.session() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(tamper())
        session.commit()
    with hub.session() as session:
        assert session.scalar(select(AuditEvent.outcome)) == "denied"


def test_truncate_is_refused_on_postgresql(hub: Hub) -> None:
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists only on PostgreSQL")
    record_now(hub.session, actor="system", action="hub.init")
    with hub.session() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text("TRUNCATE audit_event"))
        session.commit()
