"""What the public and each citizen may know: the project register, and who used a citizen's data.

The register lists every project that reached review (drafts are the requester's own), with its public summary,
purpose, organisation, dates and status, and every access its view gave (builds and refreshes). It never holds a
person: only projects and counts of acts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.governance.accounts import Actor
from hygie.governance.errors import Conflict, Denied, Invalid
from hygie.governance.freetext import check_free_text
from hygie.governance.models import Account, Project, ProjectView
from hygie.governance.policy import PURPOSE_LABELS, Role
from hygie.governance.projects import MIN_REASON, Projects, aware
from hygie.governance.views import projects_including
from hygie.hub import Hub

PUBLIC_STATUSES = ("submitted", "active", "suspended", "expired", "closed")


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


def data_uses(
    hub: Hub, session: Session, actor: Actor, *, offset: int = 0, limit: int = 20
) -> tuple[int, list[DataUse]]:
    """The projects whose views included the signed-in citizen, newest first (with the total count)."""
    if actor.role != Role.CITIZEN or actor.account_id is None:
        raise Denied("only a signed-in citizen sees who used their data, for themselves")
    account = session.get(Account, actor.account_id)
    if account is None or account.person_index is None:
        raise Denied("this account is not tied to an insured person")
    pseudonyms = hub.vault(session).pseudonyms_of([account.person_index])
    if account.person_index not in pseudonyms:
        raise Conflict("your record could not be found in the identity vault; contact your insurance fund")
    ids = projects_including(hub, session, pseudonyms[account.person_index])
    projects = session.scalars(select(Project).where(Project.id.in_(ids)).order_by(Project.id.desc())).all()
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
    record(session, actor=actor.ref, role=actor.role_name, action="citizen.data_uses",
           detail={"projects": len(uses), "delayed": sum(1 for u in uses if u.delayed_until)})  # fmt: skip
    return len(uses), uses[offset : offset + limit]


def delay_disclosure(
    hub: Hub, session: Session, actor: Actor, project_id: int, until: datetime, reason: str
) -> Project:
    """The DPO withholds a project's details from the citizens it concerns until a date (an authorised
    investigation). Citizens still see that a project used their data, and until when details are withheld."""
    if actor.role != Role.DPO:
        raise Denied("only the DPO may delay disclosure to citizens")
    if len(reason.strip()) < MIN_REASON:
        raise Invalid(f"a delay needs its legal ground, in at least {MIN_REASON} characters")
    check_free_text("reason", reason)
    until = until if until.tzinfo else until.replace(tzinfo=UTC)
    if until <= datetime.now(UTC):
        raise Invalid("the end date of a delay must be in the future")
    if until > datetime.now(UTC).replace(year=datetime.now(UTC).year + 3):
        raise Invalid("a delay longer than three years needs a new decision before it runs out")
    project = Projects(hub, session).get(project_id)
    project.disclosure_delayed_until = until
    project.disclosure_delay_reason = reason.strip()
    record(session, actor=actor.ref, role=actor.role_name, action="project.disclosure_delay",
           object=f"project:{project.id}", project_id=project.id, purpose=project.purpose,
           detail={"until": until.isoformat()})  # fmt: skip
    return project
