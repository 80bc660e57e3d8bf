# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
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
from hygie.i18n import N_, Message
from hygie.vocabulary import PROJECT_STATUS, ROLE, word


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


OVERSIGHT_ROLES = frozenset({Role.REVIEWER, Role.DPO, Role.OPERATOR, Role.AUDITOR})
"""Roles that see every project request (never its data): reviewing, protecting, running and checking need it."""


class NotVisible(Denied):
    """A project the caller may not see: the very answer of a missing one (404, ``no project N``), so nobody learns
    which projects exist by asking; on the record it is a denial (the ``scope`` alert counts it)."""

    status = 404


def no_project(project_id: int) -> Message:
    return N_("no project {project}", project=project_id)


def _bound(actor: Actor, project_id: int) -> None:
    # Said before the project is looked up: the same answer whether project_id exists or not.
    if actor.project_id is not None and actor.project_id != project_id:
        raise Denied(
            N_(
                "this token is bound to project {bound}, not project {project}",
                bound=actor.project_id,
                project=project_id,
            )
        )


def _is_member(session: Session, actor: Actor, project: Project) -> bool:
    member = session.scalar(
        select(ProjectMember.id).where(
            ProjectMember.project_id == project.id, ProjectMember.account_id == actor.account_id
        )
    )
    return member is not None


def require_visible(session: Session, actor: Actor, project_id: int) -> Project:
    """The project, if ``actor`` may see its request: any project for the oversight roles, their own (requested or
    joined) for researchers, none for anyone else. Otherwise the same 404 as a missing project (:class:`NotVisible`,
    :class:`NotFound`), whatever the route: a non-member cannot tell a foreign project from a missing one."""
    _bound(actor, project_id)
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(no_project(project_id))
    if actor.role in OVERSIGHT_ROLES:
        return project
    mine = project.requester_id == actor.account_id or _is_member(session, actor, project)
    if actor.role == Role.RESEARCHER and mine:
        return project
    raise NotVisible(no_project(project_id))


def require_member(session: Session, actor: Actor, project_id: int, *, requester_counts: bool = False) -> Project:
    """The project, if ``actor`` is one of its members (or, with ``requester_counts``, its requester) and any token
    they act with is bound to it; otherwise :class:`Denied` (a token bound elsewhere) or the 404 of a missing project
    (:class:`NotVisible`, :class:`NotFound`). Says nothing of its status."""
    _bound(actor, project_id)
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(no_project(project_id))
    if not _is_member(session, actor, project) and not (requester_counts and project.requester_id == actor.account_id):
        raise NotVisible(no_project(project_id))
    return project


def require_view_access(session: Session, settings: Settings, actor: Actor, project_id: int) -> Project:
    """The project, if ``actor`` may reach its view now; otherwise :class:`Denied` saying why."""
    if actor.role != Role.RESEARCHER:
        raise Denied(
            N_(
                "a {role} never reaches project data; only a project's researchers do",
                role=word(ROLE, actor.role_name or "visitor"),
            )
        )
    if Scope.DATA not in actor.scopes:
        raise Denied(N_("this needs the data scope"))
    project = require_member(session, actor, project_id)
    if project.status != "active":
        raise Denied(
            N_(
                "project {project} is {status}: its data is not reachable",
                project=project_id,
                status=word(PROJECT_STATUS, project.status),
            )
        )
    now = datetime.now(UTC)
    if project.expires_at is None or _aware(project.expires_at) <= now:
        raise Denied(N_("project {project} has expired", project=project_id))
    if project.review_due_at is not None and _aware(project.review_due_at) <= now:
        raise Denied(
            N_(
                "project {project}'s annual review is overdue: access resumes once a reviewer records it",
                project=project_id,
            )
        )
    return project
