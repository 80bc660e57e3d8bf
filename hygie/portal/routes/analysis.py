# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Analyses of a project's view: submit (aggregate spec or SQL), follow jobs, read and download released outputs;
the airlock where output checkers decide on what the automatic checks could not clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.analysis.service import Analyses
from hygie.analysis.spec import AggregateSpec
from hygie.analysis.worker import workers_for
from hygie.governance.acts import act
from hygie.i18n import Message, message_to_json
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep


def _workers(hub: HubDep) -> None:
    """The hub's worker pool exists before any analysis route answers (the server starts it; an app served without
    its lifespan, in tests, here): creating it marks failed the jobs a dead server process left running or still
    being checked, so no client ever waits on one."""
    workers_for(hub)


router = APIRouter(tags=["analyses"], dependencies=[Depends(_workers)])


class SQLRequest(RequestBody):
    sql: str = Field(max_length=100_000, description="One DuckDB SELECT over the project's view tables.")


class DecisionRequest(RequestBody):
    decision: Literal["approve", "reject"]
    reason: str = Field(max_length=5_000)


class ReleaseState(BaseModel):
    id: int
    status: str
    verdict: str


class JobOut(BaseModel):
    """A job as its project's members see it. Nothing in it depends on the data before its output is released:
    no row count, size, duration, cost or run-time error, and one ``withheld`` state whatever kept the output in."""

    id: int
    project_id: int
    author_id: int
    kind: str
    text: str
    status: str = Field(
        description="running (queued or running, or finished but not yet shown: see analysis_visible_quantum_seconds)"
        "; released (read it at .../release); withheld (no output released: awaiting the output checkers, or "
        "refused, stopped or failed, which is not said: it could depend on the data); refused (before running, "
        "from the text alone, with the reason in error)."
    )
    submitted_at: datetime
    finished_at: datetime | None = Field(
        description="When the job showed as finished: its submission plus a whole number of quanta."
    )
    error: str | None = Field(description="For refused: what is wrong with the text. For withheld: one fixed text.")
    error_message: dict[str, Any] | None = Field(
        default=None,
        description="error's message identifier (msgid, context, params: see hygie/locale/hygie.pot), for a client "
        "that says it in another language; None when error is not a catalogued message.",
    )


class ReleaseOut(BaseModel):
    """A released output, named by its job: release ids are numbered as runs end, so their order and gaps would
    date other jobs' data-dependent ends of run; only the output checkers' airlock uses them."""

    job_id: int
    project_id: int
    status: str
    columns: list[str]
    rows: list[dict[str, Any]]


class AirlockItem(BaseModel):
    release_id: int
    job_id: int
    project_id: int
    kind: str
    text: str
    verdict: str
    findings: list[str]
    findings_messages: list[dict[str, Any] | None] | None = Field(
        default=None,
        description="For each of findings, its message identifier (msgid, context, params: see "
        "hygie/locale/hygie.pot) or None when that finding is not a catalogued message, for a client that says them in "
        "another language; None for releases made before findings kept them.",
    )
    summary: dict[str, Any]
    approvals: int
    created_at: datetime


class DecisionOut(BaseModel):
    checker_id: int
    decision: str
    reason: str
    at: datetime


class AirlockDetail(AirlockItem):
    columns: list[str]
    rows: list[dict[str, Any]]
    decisions: list[DecisionOut]
    status: str


def _job(analyses: Analyses, job: AnalysisJob, release: AnalysisRelease | None) -> JobOut:
    shown = analyses.shown(job, release)
    return JobOut(
        id=job.id, project_id=job.project_id, author_id=job.author_id, kind=job.kind, text=job.text,
        status=shown.status, submitted_at=job.submitted_at, finished_at=shown.finished_at, error=shown.message,
        error_message=message_to_json(shown.message) if isinstance(shown.message, Message) else None,
    )  # fmt: skip


def _item(release: AnalysisRelease, job: AnalysisJob, approvals: int) -> dict[str, Any]:
    return {
        "release_id": release.id, "job_id": job.id, "project_id": release.project_id, "kind": job.kind,
        "text": job.text, "verdict": release.verdict, "findings": release.findings,
        "findings_messages": release.findings_messages, "summary": release.summary,
        "approvals": approvals, "created_at": release.created_at,
    }  # fmt: skip


@router.post(
    "/projects/{project_id}/analyses/aggregate",
    summary="Queue an aggregate request on the project's view; poll the job until it is released, withheld or refused",
)
def submit_aggregate(project_id: int, body: AggregateSpec, hub: HubDep, actor: ActorDep) -> JobOut:
    with act(hub, actor, "analysis.submit", object=f"project:{project_id}", project_id=project_id) as session:
        analyses = Analyses(hub, session, background=True)
        job = analyses.submit_aggregate(actor, project_id, body)
        return _job(analyses, job, analyses._release_of(job.id))


@router.post(
    "/projects/{project_id}/analyses/sql",
    summary="Queue a SQL query on the project's view (its output goes to the airlock); poll the job",
)
def submit_sql(project_id: int, body: SQLRequest, hub: HubDep, actor: ActorDep) -> JobOut:
    with act(hub, actor, "analysis.submit", object=f"project:{project_id}", project_id=project_id) as session:
        analyses = Analyses(hub, session, background=True)
        job = analyses.submit_sql(actor, project_id, body.sql)
        return _job(analyses, job, analyses._release_of(job.id))


@router.get("/projects/{project_id}/analyses", summary="The project's analyses, newest first")
def list_jobs(project_id: int, hub: HubDep, actor: ActorDep) -> list[JobOut]:
    with act(hub, actor, "analysis.jobs.list", object=f"project:{project_id}", project_id=project_id) as session:
        analyses = Analyses(hub, session)
        return [_job(analyses, j, r) for j, r in analyses.jobs(actor, project_id)]


@router.get("/projects/{project_id}/analyses/{job_id}", summary="One analysis: its status as the project sees it")
def read_job(project_id: int, job_id: int, hub: HubDep, actor: ActorDep) -> JobOut:
    with act(hub, actor, "analysis.jobs.read", object=f"analysis:{job_id}", project_id=project_id) as session:
        analyses = Analyses(hub, session)
        return _job(analyses, *analyses.job(actor, project_id, job_id))


@router.get("/projects/{project_id}/analyses/{job_id}/release", summary="A released output (only once released)")
def read_release(project_id: int, job_id: int, hub: HubDep, actor: ActorDep) -> ReleaseOut:
    with act(hub, actor, "analysis.release.read", object=f"analysis:{job_id}", project_id=project_id) as session:
        analyses = Analyses(hub, session)
        r = analyses.release(actor, project_id, job_id)
        return ReleaseOut(job_id=r.job_id, project_id=r.project_id, status=r.status, columns=r.columns,
                          rows=analyses.rows_of(r))  # fmt: skip


@router.get("/projects/{project_id}/analyses/{job_id}/download", summary="Download a released output (CSV, JSON)")
def download(
    project_id: int,
    job_id: int,
    hub: HubDep,
    actor: ActorDep,
    format: Literal["csv", "json"] = Query(default="csv"),
) -> Response:
    with act(hub, actor, "analysis.download", object=f"analysis:{job_id}", project_id=project_id) as session:
        d = Analyses(hub, session).download(actor, project_id, job_id, format)
    return Response(d.content, media_type=d.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{d.filename}"'})  # fmt: skip


@router.get("/airlock", summary="Outputs awaiting output checkers (reviewers and the DPO)")
def airlock(hub: HubDep, actor: ActorDep) -> list[AirlockItem]:
    with act(hub, actor, "analysis.airlock.list", object="airlock") as session:
        return [AirlockItem(**_item(*entry)) for entry in Analyses(hub, session).airlock(actor)]


@router.get(
    "/airlock/{release_id}",
    summary="An output awaiting checkers, in full, with the checks' findings (404 once released or rejected)",
)
def airlock_release(release_id: int, hub: HubDep, actor: ActorDep) -> AirlockDetail:
    with act(hub, actor, "analysis.airlock.read", object=f"release:{release_id}") as session:
        analyses = Analyses(hub, session)
        release, job, decisions = analyses.inspect(actor, release_id)
        return AirlockDetail(
            **_item(release, job, analyses._approvals(release)), columns=release.columns,
            rows=analyses.rows_of(release), status=release.status,
            decisions=[DecisionOut(checker_id=d.checker_id, decision=d.decision, reason=d.reason, at=d.at)
                       for d in decisions],
        )  # fmt: skip


@router.post("/airlock/{release_id}/decisions", summary="Approve or reject a release (independent checkers)")
def decide(release_id: int, body: DecisionRequest, hub: HubDep, actor: ActorDep) -> ReleaseState:
    with act(hub, actor, "analysis.airlock.decide", object=f"release:{release_id}") as session:
        r = Analyses(hub, session).decide(actor, release_id, body.decision, body.reason)
        return ReleaseState(id=r.id, status=r.status, verdict=r.verdict)
