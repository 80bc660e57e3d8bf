# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The public register (no login) and each citizen's "who used my data"."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from hygie.governance.acts import act
from hygie.governance.register import data_uses, delay_disclosure, register
from hygie.portal import transparency
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep, answer

router = APIRouter(tags=["register"])


class RegisterEntryOut(BaseModel):
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
    last_access: datetime | None
    release_mode: str = Field(description="'sdc' (suppression and rounding) or 'dp' (differential privacy).")
    privacy_budget: float | None = Field(description="A DP project's approved privacy budget.")
    privacy_spent: float | None = Field(description="What its releases spent (3 decimals, rounded up).")
    privacy_left: float | None = Field(
        description="What it may still spend (3 decimals, rounded down; running jobs' reservations are not left)."
    )
    population_left: float | None = Field(
        description="What is left of the budget shared by every DP project over the same population and purpose "
        "(3 decimals, rounded down); null until one is activated."
    )


class JobOut(BaseModel):
    id: int
    project_id: int
    author: str
    kind: str
    status: str = Field(
        description="running, released, withheld or refused, as the project sees it (no duration, "
        "no count: they depend on the data)."
    )
    submitted_at: datetime


class ReleaseOut(BaseModel):
    """Named by its job: release ids follow the data-dependent ends of runs."""

    project_id: int
    job_id: int
    status: str
    created_at: datetime
    decided_at: datetime | None


class RegisterOut(BaseModel):
    total: int
    offset: int
    projects: list[RegisterEntryOut]
    jobs_total: int
    jobs: list[JobOut] = Field(description="The latest jobs run on public projects (who, when, which project).")
    releases_total: int
    releases: list[ReleaseOut] = Field(
        description="The latest outputs released (their content stays with the project)."
    )


class DataUseOut(BaseModel):
    project_id: int | None = Field(description="Null while disclosure is delayed.")
    title: str | None
    organisation: str | None
    purpose: str | None
    purpose_label: str | None
    public_summary: str | None
    status: str | None
    activated_at: datetime | None
    ended_at: datetime | None
    delayed_until: datetime | None = Field(description="Set while an authorised investigation withholds details.")


class DataUsesOut(BaseModel):
    total: int
    offset: int
    uses: list[DataUseOut]
    releases: list[ReleaseOut] = Field(description="Outputs released by the projects shown, newest job first.")


class DelayRequest(RequestBody):
    until: datetime
    reason: str = Field(max_length=5_000)


@router.get("/register", summary="The public register of projects (no login)", openapi_extra={
    "x-hygie-audit": "not recorded: public information, readable by anyone; recording it would let anyone grow the log"
})  # fmt: skip
def public_register(hub: HubDep, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200)) -> RegisterOut:
    with hub.session() as session:
        total, entries = register(session, offset=offset, limit=limit)
        jobs_total, job_entries = transparency.jobs(
            session, limit=limit, quantum=hub.settings.analysis_visible_quantum_seconds
        )
        releases_total, release_entries = transparency.releases(
            session, limit=limit, quantum=hub.settings.analysis_visible_quantum_seconds
        )
    return RegisterOut(
        total=total,
        offset=offset,
        projects=[RegisterEntryOut(**e.__dict__) for e in entries],
        jobs_total=jobs_total,
        jobs=[JobOut(**j.__dict__) for j in job_entries],
        releases_total=releases_total,
        releases=[ReleaseOut(**r.__dict__) for r in release_entries],
    )


@router.get(
    "/me/data-uses", summary="Which projects used my data (a citizen), newest first", response_model=DataUsesOut
)
def my_data_uses(
    hub: HubDep, actor: ActorDep, offset: int = Query(0, ge=0), limit: int = Query(20, ge=1, le=100)
) -> Response:
    with act(hub, actor, "citizen.data_uses") as session:
        total, uses = data_uses(hub, session, actor, offset=offset, limit=limit)
        shown = [u.project_id for u in uses if u.project_id is not None]
        release_entries = transparency.project_releases(
            session, shown, limit=100, quantum=hub.settings.analysis_visible_quantum_seconds
        )
        return answer(
            DataUsesOut(
                total=total,
                offset=offset,
                uses=[DataUseOut(**u.__dict__) for u in uses],
                releases=[ReleaseOut(**r.__dict__) for r in release_entries],
            )
        )


@router.post(
    "/projects/{project_id}/disclosure-delay",
    tags=["projects"],
    summary="The DPO withholds a project's details from citizens until a date, with its legal ground",
)
def disclosure_delay(project_id: int, body: DelayRequest, hub: HubDep, actor: ActorDep) -> dict[str, str]:
    with act(hub, actor, "project.disclosure_delay", object=f"project:{project_id}", project_id=project_id) as s:
        project = delay_disclosure(hub, s, actor, project_id, body.until, body.reason)
        until = project.disclosure_delayed_until
        return {"status": "delayed", "until": until.isoformat() if until else ""}
