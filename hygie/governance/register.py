# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What the public and each citizen may know: the project register, and who used a citizen's data.

The register lists every project that reached review (drafts are the requester's own), with its public summary,
purpose, organisation, dates and status, and every access its view gave (builds and refreshes). It never holds a
person: only projects and counts of acts. A project releasing with differential privacy also shows its privacy
budget, what it spent and what is left, and what is left of the budget of the population it shares with other
projects (:mod:`hygie.governance.privacy`): numbers chosen by the requester and the reviewers and costs computed
from requests, never from the data, rounded to three decimals never in the project's favour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.governance.accounts import Actor
from hygie.governance.citizen_index import for_person, person_index_of
from hygie.governance.errors import Conflict, Denied, Invalid
from hygie.governance.freetext import check_free_text
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import PURPOSE_LABELS, Role
from hygie.governance.privacy import DP, PrivacyBudget, population_key
from hygie.governance.projects import MIN_REASON, Projects, aware
from hygie.governance.views import projects_including
from hygie.hub import Hub
from hygie.i18n import N_

PUBLIC_STATUSES = ("submitted", "active", "suspended", "expired", "closed")
BUDGET_DECIMALS = 3
"""Decimals of the privacy budgets the register shows: spent rounded up, left rounded down."""


def rounded_up(value: float) -> float:
    scale = 10.0**BUDGET_DECIMALS
    return math.ceil(value * scale - 1e-6) / scale  # the 1e-6: 0.3 * 1000 is 300.00000000000006, not 301 units


def rounded_down(value: float) -> float:
    scale = 10.0**BUDGET_DECIMALS
    return max(0.0, math.floor(value * scale + 1e-6) / scale)


@dataclass(frozen=True)
class RegisterEntry:
    id: int
    title: str
    organisation: str
    purpose: str
    purpose_label: str
    public_summary: str
    status: str
    submitted_at: datetime | None
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    view_builds: int
    """How many times its view was built or refreshed from the warehouse."""
    last_access: datetime | None
    release_mode: str = "sdc"
    """'sdc' (suppression and rounding) or 'dp' (differential privacy with a counted budget)."""
    privacy_budget: float | None = None
    """A DP project's approved budget."""
    privacy_spent: float | None = None
    """What its releases spent (rounded up)."""
    privacy_left: float | None = None
    """What it may still spend (rounded down; what running jobs hold is not left)."""
    population_left: float | None = None
    """What is left of the budget of its population and purpose, shared with other projects (rounded down);
    None until the first project over that population is activated."""


def register(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[int, list[RegisterEntry]]:
    """Projects newest first, with the total count. Delayed disclosure does not hide a project from the register:
    the register says what exists, not whom it concerns."""
    where = Project.status.in_(PUBLIC_STATUSES)
    total = int(session.scalar(select(func.count()).select_from(Project).where(where)) or 0)
    builds = (
        select(ProjectView.project_id, func.count().label("n"), func.max(ProjectView.built_at).label("last"))
        .group_by(ProjectView.project_id)
        .subquery()
    )
    rows = session.execute(
        select(Project, builds.c.n, builds.c.last)
        .outerjoin(builds, builds.c.project_id == Project.id)
        .where(where)
        .order_by(Project.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    dp = [p for p, _, _ in rows if p.release_mode == DP and p.privacy_budget is not None]
    budgets = {b.name: b for b in session.scalars(select(PrivacyBudget))} if dp else {}

    def privacy(p: Project) -> dict[str, object]:
        if p.release_mode != DP or p.privacy_budget is None:
            return {}
        own = budgets.get(f"project:{p.id}")
        population = budgets.get(f"population:{population_key(p.purpose, p.scope)}")
        total = own.total if own is not None else p.privacy_budget
        spent = own.spent if own is not None else 0.0
        held = own.reserved if own is not None else 0.0
        return {
            "release_mode": DP,
            "privacy_budget": total,
            "privacy_spent": rounded_up(spent),
            "privacy_left": rounded_down(total - spent - held),
            "population_left": (
                rounded_down(population.total - population.spent - population.reserved)
                if population is not None
                else None
            ),
        }

    return total, [
        RegisterEntry(
            id=p.id,
            title=p.title,
            organisation=p.organisation,
            purpose=p.purpose,
            purpose_label=PURPOSE_LABELS.get(p.purpose, p.purpose),
            public_summary=p.public_summary,
            status=p.status,
            submitted_at=aware(p.submitted_at),
            activated_at=aware(p.activated_at),
            expires_at=aware(p.expires_at),
            ended_at=aware(p.ended_at),
            view_builds=int(n or 0),
            last_access=aware(last),
            **privacy(p),  # type: ignore[arg-type]
        )
        for p, n, last in rows
    ]


@dataclass(frozen=True)
class DataUse:
    project_id: int | None
    """None while disclosure is delayed: the use is shown, its details are not."""
    title: str | None
    organisation: str | None
    purpose: str | None
    purpose_label: str | None
    public_summary: str | None
    status: str | None
    activated_at: datetime | None
    ended_at: datetime | None
    delayed_until: datetime | None


_USED_BY = (
    select(
        Project.id,
        Project.title,
        Project.organisation,
        Project.purpose,
        Project.public_summary,
        Project.status,
        Project.activated_at,
        Project.ended_at,
        Project.disclosure_delayed_until,
    )
    .where(Project.id.in_(bindparam("ids", expanding=True)))
    .order_by(Project.id.desc())
)


def data_uses(
    hub: Hub, session: Session, actor: Actor, *, offset: int = 0, limit: int = 20
) -> tuple[int, list[DataUse]]:
    """The projects whose views included the signed-in citizen, newest first (with the total count)."""
    if actor.role != Role.CITIZEN or actor.account_id is None:
        raise Denied(N_("only a signed-in citizen sees who used their data, for themselves"))
    person_index = person_index_of(session, actor.account_id)
    if person_index is None:
        raise Denied(N_("this account is not tied to an insured person"))
    ids = for_person(hub, session, person_index, lambda p: projects_including(hub, session, p))
    if ids is None:
        raise Conflict(N_("your record could not be found in the identity vault; contact your insurance fund"))
    # The columns shown, not the rows: loading a project would also decrypt its sealed justification, which a
    # citizen is never shown.
    projects = session.connection().execute(_USED_BY, {"ids": ids}).all() if ids else []
    now = datetime.now(UTC)
    uses = []
    for p in projects:
        delayed = aware(p.disclosure_delayed_until)
        if delayed is not None and delayed > now:
            uses.append(DataUse(None, None, None, None, None, None, None, None, None, delayed))
            continue
        uses.append(
            DataUse(
                p.id,
                p.title,
                p.organisation,
                p.purpose,
                PURPOSE_LABELS.get(p.purpose),
                p.public_summary,
                p.status,
                aware(p.activated_at),
                aware(p.ended_at),
                None,
            )
        )
    # Committed (group commit with concurrent reads) before the answer is returned.
    hub.record_read(actor=actor.ref, role=actor.role_name, action="citizen.data_uses",
                    detail={"projects": len(uses), "delayed": sum(1 for u in uses if u.delayed_until)})  # fmt: skip
    return len(uses), uses[offset : offset + limit]


def delay_disclosure(
    hub: Hub, session: Session, actor: Actor, project_id: int, until: datetime, reason: str
) -> Project:
    """The DPO withholds a project's details from the citizens it concerns until a date (an authorised
    investigation). Citizens still see that a project used their data, and until when details are withheld."""
    if actor.role != Role.DPO:
        raise Denied(N_("only the DPO may delay disclosure to citizens"))
    if len(reason.strip()) < MIN_REASON:
        raise Invalid(N_("a delay needs its legal ground, in at least {count} characters", count=MIN_REASON))
    check_free_text("reason", reason)
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= datetime.now(UTC):
        raise Invalid(N_("the end date of a delay must be in the future"))
    if until > datetime.now(UTC).replace(year=datetime.now(UTC).year + 3):
        raise Invalid(N_("a delay longer than three years needs a new decision before it runs out"))
    project = Projects(hub, session).get(project_id)
    project.disclosure_delayed_until = until
    project.disclosure_delay_reason = reason.strip()
    record(session, actor=actor.ref, role=actor.role_name, action="project.disclosure_delay",
           object=f"project:{project.id}", project_id=project.id, purpose=project.purpose,
           detail={"until": until.isoformat()})  # fmt: skip
    return project
