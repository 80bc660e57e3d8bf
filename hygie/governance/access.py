"""The one gate to project data. Nobody passes it but a researcher who is a member of an active, unexpired,
reviewed project, acting with the data scope (and, with a token, a token bound to that project)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.config import Settings
from hygie.governance.accounts import Actor, Scope
from hygie.governance.errors import Denied, NotFound
from hygie.governance.models import Project, ProjectMember
from hygie.governance.policy import Role


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def require_member(session: Session, actor: Actor, project_id: int, *, requester_counts: bool = False) -> Project:
    """The project, if ``actor`` is one of its members (or, with ``requester_counts``, its requester) and any token
    they act with is bound to it; otherwise :class:`Denied` or :class:`NotFound`. Says nothing of its status."""
    if actor.project_id is not None and actor.project_id != project_id:
        raise Denied(f"this token is bound to project {actor.project_id}, not project {project_id}")
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"no project {project_id}")
    member = session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project_id, ProjectMember.account_id == actor.account_id
        )
    )
    if member is None and not (requester_counts and project.requester_id == actor.account_id):
        raise Denied(f"you are not a member of project {project_id}")
    return project


def require_view_access(session: Session, settings: Settings, actor: Actor, project_id: int) -> Project:
    """The project, if ``actor`` may reach its view now; otherwise :class:`Denied` saying why."""
    if actor.role != Role.RESEARCHER:
        raise Denied(f"a {actor.role_name or 'visitor'} never reaches project data; only a project's researchers do")
    if Scope.DATA not in actor.scopes:
        raise Denied("this needs the data scope")
    project = require_member(session, actor, project_id)
    if project.status != "active":
        raise Denied(f"project {project_id} is {project.status}: its data is not reachable")
    now = datetime.now(UTC)
    if project.expires_at is None or _aware(project.expires_at) <= now:
        raise Denied(f"project {project_id} has expired")
    if project.review_due_at is not None and _aware(project.review_due_at) <= now:
        raise Denied(f"project {project_id}'s annual review is overdue: access resumes once a reviewer records it")
    return project
