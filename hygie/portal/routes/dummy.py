# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Dummy data: a project's synthetic dataset, with its view's schema, for its researchers at any stage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from hygie.analysis.dummy import DummyCodeRefused, DummyDataError, DummyRun, export_dummy, run_on_dummy
from hygie.analysis.spec import AggregateSpec
from hygie.audit import record
from hygie.governance.access import require_member
from hygie.governance.accounts import Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, Invalid
from hygie.governance.models import Project
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep
from hygie.vocabulary import ROLE, word

router = APIRouter(prefix="/projects", tags=["dummy data"])


def _message(exc: Exception) -> str:
    """An exception's message as it was raised: a translatable message stays one (``str(exc)`` would make it plain
    text)."""
    return exc.args[0] if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)


def _require_member(session: Session, actor: Actor, project_id: int) -> Project:
    """A researcher who requested or joined the project, whatever its status: dummy data holds no one's data,
    but the scope it reveals (tables, columns, population) is the project's own business."""
    if actor.role != Role.RESEARCHER:
        raise Denied(
            N_(
                "dummy data is for a project's researchers, not for a {role}",
                role=word(ROLE, actor.role_name or "visitor"),
            )
        )
    if Scope.GOVERNANCE not in actor.scopes and Scope.DATA not in actor.scopes:
        raise Denied(N_("this needs the governance or data scope"))
    return require_member(session, actor, project_id, requester_counts=True)


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
            raise Conflict(_message(exc)) from None
        record(session, actor=actor.ref, role=actor.role_name, action=action, object=f"project:{project_id}",
               project_id=project_id, purpose=project.purpose,
               detail={"generation": export.generation, "people": export.people, "rows": export.rows,
                       "sha256": export.sha256, "synthetic": True})  # fmt: skip
    headers = {"Content-Disposition": f'attachment; filename="{export.filename}"'}
    return Response(export.content, media_type="application/zip", headers=headers)


class DummySQL(RequestBody):
    sql: str = Field(max_length=100_000, description="One DuckDB SELECT over the project's view tables.")


class DummyRunOut(BaseModel):
    synthetic: bool = Field(default=True, description="Always true: computed on dummy data, meaning nothing.")
    kind: str
    columns: list[str]
    rows: list[dict[str, Any]]
    total_rows: int = Field(description="Rows the query gave; at most analysis_max_output_rows are shown.")
    seconds: float
    verdict: str | None = Field(description="Aggregates: what disclosure control decides on such an output.")
    suppressed: int | None = Field(description="Aggregates: cells disclosure control suppresses.")


def _try(
    hub: Hub, actor: Actor, project_id: int, kind: str, spec: AggregateSpec | None, sql: str | None
) -> DummyRunOut:
    action = "project.dummy_data.run"
    with act(hub, actor, action, object=f"project:{project_id}", project_id=project_id) as session:
        project = _require_member(session, actor, project_id)
        try:
            run: DummyRun = run_on_dummy(hub.settings, project, spec=spec, sql=sql)
        except DummyCodeRefused as exc:
            raise Invalid(_message(exc)) from None
        except DummyDataError as exc:
            raise Conflict(_message(exc)) from None
        record(session, actor=actor.ref, role=actor.role_name, action=action, object=f"project:{project_id}",
               project_id=project_id, purpose=project.purpose,
               detail={"kind": kind, "rows": run.total_rows, "seconds": run.seconds, "synthetic": True})  # fmt: skip
        return DummyRunOut(kind=run.kind, columns=run.columns, rows=run.rows, total_rows=run.total_rows,
                           seconds=run.seconds, verdict=run.verdict, suppressed=run.suppressed)  # fmt: skip


@router.post(
    "/{project_id}/dummy-data/aggregate",
    summary="Try an aggregate spec on the project's dummy data, inside the platform (any status)",
)
def try_aggregate(project_id: int, spec: AggregateSpec, hub: HubDep, actor: ActorDep) -> DummyRunOut:
    return _try(hub, actor, project_id, "aggregate", spec, None)


@router.post(
    "/{project_id}/dummy-data/sql",
    summary="Try a DuckDB SELECT on the project's dummy data, inside the platform (any status)",
)
def try_sql(project_id: int, body: DummySQL, hub: HubDep, actor: ActorDep) -> DummyRunOut:
    return _try(hub, actor, project_id, "sql", None, body.sql)
