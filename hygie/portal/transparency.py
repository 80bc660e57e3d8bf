"""The register's account of work done: jobs run and outputs released, per project.

Analysis sits downstream of governance, so what the register says about jobs and releases is put together here,
at the top of the stack, rather than in :mod:`hygie.governance.register`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.governance.models import Account, Project
from hygie.governance.register import PUBLIC_STATUSES


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class JobEntry:
    id: int
    project_id: int
    author: str
    """The researcher's username and organisation: data users are named, data subjects never."""
    kind: str
    status: str
    submitted_at: datetime
    duration_seconds: float | None


@dataclass(frozen=True)
class ReleaseEntry:
    id: int
    project_id: int
    job_id: int
    status: str
    created_at: datetime
    decided_at: datetime | None


def jobs(session: Session, *, offset: int = 0, limit: int = 50) -> tuple[int, list[JobEntry]]:
    public = select(Project.id).where(Project.status.in_(PUBLIC_STATUSES))
    where = AnalysisJob.project_id.in_(public)
    total = int(session.scalar(select(func.count()).select_from(AnalysisJob).where(where)) or 0)
    rows = session.execute(
        select(AnalysisJob, Account.username, Account.organisation)
        .join(Account, Account.id == AnalysisJob.author_id)
        .where(where)
        .order_by(AnalysisJob.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return total, [
        JobEntry(
            j.id,
            j.project_id,
            f"{username} ({organisation})" if organisation else username,
            j.kind,
            j.status,
            _aware(j.submitted_at) or datetime.now(UTC),
            j.duration_seconds,
        )
        for j, username, organisation in rows
    ]


def releases(
    session: Session, *, project_ids: list[int] | None = None, offset: int = 0, limit: int = 50
) -> tuple[int, list[ReleaseEntry]]:
    """Released outputs (their existence and dates; their content belongs to the project), newest first."""
    where = AnalysisRelease.status == "released"
    if project_ids is not None:
        where = where & AnalysisRelease.project_id.in_(project_ids)
    else:
        where = where & AnalysisRelease.project_id.in_(select(Project.id).where(Project.status.in_(PUBLIC_STATUSES)))
    total = int(session.scalar(select(func.count()).select_from(AnalysisRelease).where(where)) or 0)
    rows = session.scalars(
        select(AnalysisRelease).where(where).order_by(AnalysisRelease.id.desc()).offset(offset).limit(limit)
    ).all()
    return total, [
        ReleaseEntry(
            r.id, r.project_id, r.job_id, r.status, _aware(r.created_at) or datetime.now(UTC), _aware(r.decided_at)
        )
        for r in rows
    ]
