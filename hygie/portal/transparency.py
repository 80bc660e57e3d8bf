# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The register's account of work done: jobs run and outputs released, per project; and a citizen's own entries
in the audit log (with their salts and inclusion proofs).

Analysis sits downstream of governance, so what the register says about jobs and releases is put together here,
at the top of the stack, rather than in :mod:`hygie.governance.register`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.audit import AuditEvent
from hygie.audit.log import SignedCheckpoint, TransparencyLog, b64
from hygie.audit.witnessing import witnessed
from hygie.governance.accounts import Actor, Scope
from hygie.governance.citizen_index import for_person
from hygie.governance.errors import Denied
from hygie.governance.models import Account, Project
from hygie.governance.policy import Role
from hygie.governance.register import PUBLIC_STATUSES
from hygie.governance.views import projects_including
from hygie.hub import Hub
from hygie.i18n import N_


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
    """As the project sees it (``hygie.analysis.service.shown_job``): never a count, duration or run-time failure."""
    submitted_at: datetime


@dataclass(frozen=True)
class ReleaseEntry:
    """A released output, named by its job (no release id: those are numbered as runs end, a data-dependent order)."""

    project_id: int
    job_id: int
    status: str
    created_at: datetime
    decided_at: datetime | None


def jobs(session: Session, *, offset: int = 0, limit: int = 50, quantum: float = 0.0) -> tuple[int, list[JobEntry]]:
    from hygie.analysis.service import shown_job

    public = select(Project.id).where(Project.status.in_(PUBLIC_STATUSES))
    where = AnalysisJob.project_id.in_(public)
    total = int(session.scalar(select(func.count()).select_from(AnalysisJob).where(where)) or 0)
    rows = session.execute(
        select(AnalysisJob, Account.username, Account.organisation, AnalysisRelease)
        .join(Account, Account.id == AnalysisJob.author_id)
        .outerjoin(AnalysisRelease, AnalysisRelease.job_id == AnalysisJob.id)
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
            shown_job(j, release, quantum).status,
            _aware(j.submitted_at) or datetime.now(UTC),
        )
        for j, username, organisation, release in rows
    ]


@dataclass(frozen=True)
class _ReleaseQueries:
    recent: Any
    count: Any
    page: Any


@cache
def _release_queries(for_projects: bool) -> _ReleaseQueries:
    """The statements of :func:`releases`, built once (bind parameters ``projects``, ``since``, ``offset``,
    ``limit``): building them cost more than running them on a citizen's read."""
    where = AnalysisRelease.status == "released"
    if for_projects:
        where = where & AnalysisRelease.project_id.in_(bindparam("projects", expanding=True))
    else:
        where = where & AnalysisRelease.project_id.in_(select(Project.id).where(Project.status.in_(PUBLIC_STATUSES)))
    joined = select(AnalysisRelease, AnalysisJob).join(AnalysisJob, AnalysisJob.id == AnalysisRelease.job_id)
    return _ReleaseQueries(
        recent=joined.where(where, AnalysisRelease.created_at >= bindparam("since")),
        count=select(func.count()).select_from(AnalysisRelease).where(where),
        page=joined.where(where)
        .order_by(AnalysisJob.id.desc())  # by submission: the order of release rows is that of ends of run
        .offset(bindparam("offset"))
        .limit(bindparam("limit")),
    )


def releases(
    session: Session,
    *,
    project_ids: list[int] | None = None,
    offset: int = 0,
    limit: int = 50,
    quantum: float = 0.0,
) -> tuple[int, list[ReleaseEntry]]:
    """Released outputs (their existence and dates; their content belongs to the project), newest job first. An output
    is listed once its job shows as released to its project (``shown_job``, at the quantum), with that time as its
    creation: its exact end of run would tell a data-dependent duration."""
    from hygie.analysis.service import shown_job

    if project_ids is not None and not project_ids:
        return 0, []  # no project: nothing to list (and no query)
    queries = _release_queries(project_ids is not None)
    params: dict[str, Any] = {} if project_ids is None else {"projects": list(project_ids)}
    unseen: list[int] = []
    if quantum > 0:  # only outputs of the last quantum can still be unseen by their project
        since = datetime.now(UTC) - timedelta(seconds=quantum)
        recent = session.execute(queries.recent, params | {"since": since}).all()
        unseen = [r.id for r, j in recent if shown_job(j, r, quantum).status != "released"]
    count, page = queries.count, queries.page
    if unseen:  # rare (an output of the last quantum): these statements are built for the occasion
        count = count.where(AnalysisRelease.id.not_in(unseen))
        page = page.where(AnalysisRelease.id.not_in(unseen))
    total = int(session.scalar(count, params) or 0)
    rows = session.execute(page, params | {"offset": offset, "limit": limit}).all()
    return total, _entries(rows, quantum)


def _entries(rows: Sequence[Any], quantum: float) -> list[ReleaseEntry]:
    from hygie.analysis.service import shown_job

    now = datetime.now(UTC)
    return [_entry(r.project_id, r.job_id, r.status, shown_job(j, r, quantum).finished_at, r.created_at, r.decided_at,
                   now) for r, j in rows]  # fmt: skip


def _entry(project_id: int, job_id: int, status: str, visible: datetime | None, created_at: datetime | None,
           decided_at: datetime | None, now: datetime) -> ReleaseEntry:  # fmt: skip
    """A release as listed: created when its job shows as ended to its project (else when recorded), decided no
    earlier than that."""
    at = visible or _aware(created_at) or now
    decided = _aware(decided_at)
    return ReleaseEntry(project_id, job_id, status, at, max(decided, at) if decided else None)


_PROJECT_RELEASES = (
    select(
        AnalysisRelease.project_id,
        AnalysisRelease.job_id,
        AnalysisRelease.status,
        AnalysisRelease.created_at,
        AnalysisRelease.decided_at,
        AnalysisJob.status,
        AnalysisJob.started_at,
        AnalysisJob.submitted_at,
        AnalysisJob.finished_at,
    )
    .join(AnalysisJob, AnalysisJob.id == AnalysisRelease.job_id)
    .where(AnalysisRelease.status == "released", AnalysisRelease.project_id.in_(bindparam("projects", expanding=True)))
    .order_by(AnalysisJob.id.desc())  # as in releases(): by submission
    .limit(bindparam("limit"))
)
"""The page of :func:`releases` for some projects as the columns its entries are made from, run on the session's
connection: loading the releases and jobs through the ORM cost more than the rest of a citizen's read."""


def project_releases(session: Session, project_ids: list[int], *, limit: int, quantum: float) -> list[ReleaseEntry]:
    """The first ``limit`` entries of :func:`releases` for these projects, without their total: in one statement
    where none of them is still unseen by its project (the usual case), else through :func:`releases`.

    The same entries either way: the outputs :func:`releases` leaves out are unseen ones, so where the first
    ``limit`` rows hold none, leaving the others out changes nothing in them.
    """
    from hygie.analysis.service import SHOWN_RELEASED, shown_state

    if not project_ids:
        return []
    rows = session.connection().execute(_PROJECT_RELEASES, {"projects": list(project_ids), "limit": limit}).all()
    now = datetime.now(UTC)
    entries = []
    for project_id, job_id, status, created_at, decided_at, j_status, started, submitted, finished in rows:
        shown, visible = shown_state(j_status, started, submitted, finished, status, quantum, now)
        if quantum > 0 and shown != SHOWN_RELEASED:
            return releases(session, project_ids=project_ids, limit=limit, quantum=quantum)[1]
        entries.append(_entry(project_id, job_id, status, visible, created_at, decided_at, now))
    return entries


# -- the audit log, as a citizen sees it: their own entries, with salts and inclusion proofs ------------------------

MY_ENTRIES_MAX = 100
"""Entries of one page of a citizen's log (each carries an inclusion proof)."""


@dataclass(frozen=True)
class MyEntries:
    total: int
    """How many events the citizen's account did (newest first; only those already in the log are listed)."""
    checkpoint: SignedCheckpoint
    """Every proof leads to this checkpoint's root."""
    entries: list[dict[str, Any]]
    """Full entries (``hygie.audit.log.full_entry``) of events the citizen did, each with its ``proof``."""
    data_uses: list[dict[str, Any]]
    """Public entries (``hygie.audit.log.public_entry``) of the view builds of projects that used the citizen's
    data (not those whose disclosure is delayed), each with its ``proof``: who ran a build and its counts are not
    the citizen's to read, that it is on the log is."""
    cosigned: SignedCheckpoint | None = None
    """The newest checkpoint cosigned by the configured quorum of outside witnesses (``hygie.audit.witnessing``),
    None if none yet: entries below its size are in the tree the witnesses vouch for."""
    cosigned_consistency: list[str] | None = None
    """Consistency proof (RFC 9162, base64) from ``cosigned`` to ``checkpoint``."""


def my_entries(hub: Hub, session: Session, actor: Actor, *, offset: int = 0, limit: int = 20) -> MyEntries:
    """The signed-in citizen's entries in the audit log. The caller records the read (in ``session``)."""
    if actor.role != Role.CITIZEN or actor.account_id is None or Scope.CITIZEN not in actor.scopes:
        raise Denied(N_("only a signed-in citizen sees their own entries of the audit log"))
    limit = max(1, min(limit, MY_ENTRIES_MAX))
    mine = AuditEvent.actor == actor.ref
    total = int(session.scalar(select(func.count()).select_from(AuditEvent).where(mine)) or 0)
    ids = list(session.scalars(select(AuditEvent.id).where(mine).order_by(AuditEvent.id.desc()).offset(offset)
                               .limit(limit)))  # fmt: skip
    log = TransparencyLog.for_hub(hub)
    checkpoint = log.checkpoint()  # sequences what is committed, signs if the log grew
    entries = [e for e in log.entries_of_events(ids) if e["index"] < checkpoint.size]
    entries.sort(key=lambda e: -e["index"])
    uses = [
        e for e in log.public_entries_of_events(_data_use_events(hub, session, actor)) if e["index"] < checkpoint.size
    ]
    for entry in [*entries, *uses]:
        entry["proof"] = [b64(p) for p in log.inclusion_proof(entry["index"], checkpoint.size).proof]
    found = witnessed(log, hub.settings)
    if found is None or found[0].size > checkpoint.size:
        return MyEntries(total, checkpoint, entries, uses)
    consistency = [b64(p) for p in log.consistency_proof(found[0].size, checkpoint.size).proof]
    return MyEntries(total, checkpoint, entries, uses, found[0], consistency)


def _data_use_events(hub: Hub, session: Session, actor: Actor) -> list[int]:
    """Ids of the view-build events of projects whose views included the citizen (disclosed ones only)."""
    account = session.get(Account, actor.account_id)
    if account is None or account.person_index is None:
        return []
    ids = for_person(hub, session, account.person_index, lambda p: projects_including(hub, session, p))
    if not ids:
        return []
    now = datetime.now(UTC)
    disclosed = [
        p.id
        for p in session.scalars(select(Project).where(Project.id.in_(ids)))
        if (delayed := _aware(p.disclosure_delayed_until)) is None or delayed <= now
    ]
    if not disclosed:
        return []
    return list(
        session.scalars(
            select(AuditEvent.id).where(
                AuditEvent.action == "project.view.build",
                AuditEvent.outcome == "ok",
                AuditEvent.project_id.in_(disclosed),
            )
        )
    )
