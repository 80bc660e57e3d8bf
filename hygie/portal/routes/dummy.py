"""Dummy data: a project's synthetic dataset, with its view's schema, for its researchers at any stage."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.analysis.dummy import DummyDataError, export_dummy
from hygie.audit import record
from hygie.governance.accounts import Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, NotFound
from hygie.governance.models import Project, ProjectMember
from hygie.governance.policy import Role
from hygie.portal.deps import ActorDep, HubDep

router = APIRouter(prefix="/projects", tags=["dummy data"])


def _require_member(session: Session, actor: Actor, project_id: int) -> Project:
    """A researcher who requested or joined the project, whatever its status: dummy data holds no one's data,
    but the scope it reveals (tables, columns, population) is the project's own business."""
    if actor.role != Role.RESEARCHER:
        raise Denied(f"dummy data is for a project's researchers, not for a {actor.role_name or 'visitor'}")
    if Scope.GOVERNANCE not in actor.scopes and Scope.DATA not in actor.scopes:
        raise Denied("this needs the governance or data scope")
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
    if member is None and project.requester_id != actor.account_id:
        raise Denied(f"you are not a member of project {project_id}")
    return project


@router.get(
    "/{project_id}/dummy-data",
    summary="Download the project's dummy data: synthetic, with its view's schema (ZIP of Parquet and CSV)",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "ZIP: README.txt, parquet/, csv/"}},
)
def dummy_data(project_id: int, hub: HubDep, actor: ActorDep) -> Response:
    action = "project.dummy_data"
    with act(hub, actor, action, object=f"project:{project_id}", project_id=project_id) as session:
        project = _require_member(session, actor, project_id)
        try:
            export = export_dummy(hub.settings, project)
        except DummyDataError as exc:
            raise Conflict(str(exc)) from None
        record(session, actor=actor.ref, role=actor.role_name, action=action, object=f"project:{project_id}",
               project_id=project_id, purpose=project.purpose,
               detail={"generation": export.generation, "people": export.people, "rows": export.rows,
                       "sha256": export.sha256, "synthetic": True})  # fmt: skip
    headers = {"Content-Disposition": f'attachment; filename="{export.filename}"'}
    return Response(export.content, media_type="application/zip", headers=headers)
