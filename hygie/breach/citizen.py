# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What a citizen sees of breaches: their notices, and whether sensitive changes need a stronger check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.breach.models import BreachFlag, BreachIncident, BreachNotice
from hygie.i18n import N_, Message

WHAT_TO_DO: list[Message] = [
    N_("Be wary of calls, texts and e-mails claiming to come from your insurer: it never asks for passwords or codes."),
    N_("Check your reimbursements and bank details in your account."),
    N_("If your social security number was exposed, watch for claims you did not make and report them."),
    N_("Changes of bank details, address or contact details need a stronger identity check for a while."),
]


@dataclass(frozen=True)
class Notice:
    incident: str
    notified_at: datetime
    exposed: list[str]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def notices(session: Session, person_index: bytes) -> list[Notice]:
    rows = session.execute(
        select(BreachNotice, BreachIncident.name)
        .join(BreachIncident, BreachIncident.id == BreachNotice.incident_id)
        .where(BreachNotice.person_index == person_index)
        .order_by(BreachNotice.id)
    ).all()
    return [Notice(name, _aware(n.created_at), list(n.categories)) for n, name in rows]


def stronger_check_until(session: Session, person_index: bytes, at: datetime | None = None) -> datetime | None:
    """Until when this person's sensitive changes need a stronger identity check, or None."""
    at = at or datetime.now(UTC)
    until = session.scalar(select(func.max(BreachFlag.until)).where(BreachFlag.person_index == person_index))
    if until is None or _aware(until) <= at:
        return None
    return _aware(until)
