# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Destroy leaked files past their retention date (the incident's counts, rows and notices stay)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.breach import store
from hygie.breach.models import BreachIncident
from hygie.hub import Hub


def sweep(hub: Hub, session: Session, actor: str, at: datetime | None = None) -> list[int]:
    """Erase every leaked file whose retention date has passed; returns the incident ids. Recorded per file."""
    at = at or datetime.now(UTC)
    done = []
    for incident in session.scalars(select(BreachIncident).where(BreachIncident.file_key.is_not(None))):
        until = incident.retain_until if incident.retain_until.tzinfo else incident.retain_until.replace(tzinfo=UTC)
        if until > at:
            continue
        store.erase(hub.settings.data_dir, incident.file_name)
        incident.file_key = None
        incident.destroyed_at = at
        incident.status = "destroyed" if incident.status in ("imported", "staged") else incident.status
        record(session, actor=actor, action="breach.destroy_file", object=f"breach:{incident.id}",
               detail={"retain_until": until.isoformat()})  # fmt: skip
        done.append(incident.id)
    record(session, actor=actor, action="breach.sweep", detail={"destroyed": len(done)})
    return done
