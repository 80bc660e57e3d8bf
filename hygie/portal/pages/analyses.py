# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A researcher's analyses: submit an aggregate (a form) or a SQL query, follow the jobs, read and download what
was released; and the project's dummy data.

Each page calls the JSON API's route functions (``hygie.portal.routes.analysis``, ``…dummy``), so it is refused
where the API refuses and recorded the same way. A job may still be queued or running when its page is shown
(runs may be asynchronous): the page then follows the job with ``static/job-follow.js`` (it fetches the page and
swaps its content when the job's state changes, announced in a status region; a button stops it), never an
automatic reload, which WCAG 2.2.1 forbids; without scripts, a link reloads it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.errors import GovernanceError
from hygie.governance.policy import Role
from hygie.i18n import N_, message_from_json
from hygie.portal.pages import analysisform
from hygie.portal.pages.messages import Said, fr, said
from hygie.portal.pages.web import PageRoute, as_list, hub_of, page_actor, posted_by, redirect, render, require_role
from hygie.portal.routes import analysis as api
from hygie.portal.routes import dummy as dummy_api
from hygie.portal.routes import projects as projects_api

router = APIRouter(prefix="/recherche/projets/{project_id}", route_class=PageRoute, include_in_schema=False)

REFRESH_SECONDS = 2
"""How often a job's page reloads itself while the job is queued or running."""
RUNNING = ("queued", "running")
SQL_EXAMPLE = (
    "SELECT b.BEN_SEX_COD AS sexe, count(DISTINCT f.BEN_NIR_PSA) AS personnes\n"
    "FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA)\nGROUP BY 1 ORDER BY 1"
)


SHOWN_STATUS = {
    "running": fr(N_("running")),
    "released": fr(N_("output released")),
    "withheld": fr(N_("no output released")),
    "refused": fr(N_("refused before running")),
}
"""What a job shows its project (``hygie.analysis.service.shown_job``): nothing that depends on the data."""
WITHHELD = fr(
    N_(
        "No output of this analysis is released: it awaits the output checkers, or it was refused, stopped at a"
        " limit or interrupted by an error while reading the data. Which of these is not said here, because it "
        "could depend on the data (the checkers and the DPO see the reason). Try the query on the project's "
        "dummy data; a released output will show here."
    )
)


def _labels() -> dict[str, Any]:
    return {"job_status": SHOWN_STATUS}


@router.get("/analyses", response_class=HTMLResponse)
def jobs_page(request: Request, project_id: int) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    hub = hub_of(request)
    project = projects_api.get_project(project_id, hub, actor)
    jobs = api.list_jobs(project_id, hub, actor)
    return render(request, "recherche/analyses.html", {"project": project, "jobs": jobs, **_labels()}, actor=actor)


def _aggregate_context(project: Any, values: dict[str, Any], errors: dict[str, str], error: Any) -> dict[str, Any]:
    return {
        "project": project,
        "values": values,
        "chosen": set(as_list(values.get("dimension"))),
        "measures_chosen": set(as_list(values.get("mesure"))),
        "errors": errors,
        "error": error,
        "dimensions": analysisform.DIMENSIONS,
        "width_fields": analysisform.WIDTH_FIELDS,
        "measures": analysisform.measure_choices(analysisform.amount_columns(project.scope)),
        "filters": range(1, analysisform.FILTERS + 1),
    }


@router.get("/analyses/agregat", response_class=HTMLResponse)
def aggregate_form(request: Request, project_id: int) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    project = projects_api.get_project(project_id, hub_of(request), actor)
    context = _aggregate_context(project, analysisform.defaults(), {}, None)
    return render(request, "recherche/agregat.html", context, actor=actor)


@router.post("/analyses/agregat", response_class=HTMLResponse)
async def submit_aggregate(request: Request, project_id: int) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    hub = hub_of(request)
    spec, errors = analysisform.spec_from_form(form)
    if spec is None:
        project = await run_in_threadpool(projects_api.get_project, project_id, hub, actor)
        context = _aggregate_context(
            project, form, errors, Said(fr(N_("The form has errors: correct the fields marked.")), "fr")
        )
        return render(request, "recherche/agregat.html", context, actor=actor, status=422)
    try:
        job = await run_in_threadpool(api.submit_aggregate, project_id, spec, hub, actor)
    except GovernanceError as exc:
        # A refusal before anything ran (the project is not active, not yours…): shown above the form.
        project = await run_in_threadpool(projects_api.get_project, project_id, hub, actor)
        context = _aggregate_context(project, form, {}, said(exc.status, exc.message))
        return render(request, "recherche/agregat.html", context, actor=actor, status=exc.status)
    return redirect(f"/recherche/projets/{project_id}/analyses/{job.id}")


@router.get("/analyses/sql", response_class=HTMLResponse)
def sql_form(request: Request, project_id: int) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    project = projects_api.get_project(project_id, hub_of(request), actor)
    context = {"project": project, "sql": "", "example": SQL_EXAMPLE, "error": None, "errors": {}}
    return render(request, "recherche/sql.html", context, actor=actor)


@router.post("/analyses/sql", response_class=HTMLResponse)
async def submit_sql(request: Request, project_id: int) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    hub = hub_of(request)
    sql = str(form.get("sql", "")).strip()
    error: Any = None
    errors: dict[str, str] = {}
    status = 422
    if not sql:
        errors["sql"] = fr(N_("Write a SELECT statement."))
    elif len(sql) > 100_000:
        errors["sql"] = fr(N_("100,000 characters at most."))
    else:
        try:
            job = await run_in_threadpool(api.submit_sql, project_id, api.SQLRequest(sql=sql), hub, actor)
        except GovernanceError as exc:
            error, status = said(exc.status, exc.message), exc.status
        else:
            return redirect(f"/recherche/projets/{project_id}/analyses/{job.id}")
    project = await run_in_threadpool(projects_api.get_project, project_id, hub, actor)
    context = {"project": project, "sql": sql, "example": SQL_EXAMPLE, "errors": errors,
               "error": error or Said(fr(N_("The query is not sent: correct the field marked.")), "fr")}  # fmt: skip
    return render(request, "recherche/sql.html", context, actor=actor, status=status)


@router.get("/analyses/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, project_id: int, job_id: int) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    hub = hub_of(request)
    job = api.read_job(project_id, job_id, hub, actor)
    released = api.read_release(project_id, job_id, hub, actor) if job.status == "released" else None
    error = said(422, _said_again(job)) if job.status == "refused" and job.error else None
    context = {"job": job, "released": released, "project_id": project_id, "running": job.status in RUNNING,
               "refresh": REFRESH_SECONDS, "error": error, "withheld": WITHHELD, **_labels()}  # fmt: skip
    return render(request, "recherche/analyse.html", context, actor=actor)


def _said_again(job: api.JobOut) -> str:
    """The job's refusal as the message it was made from (the API's model keeps its text and its identifier apart),
    so that the page says it in French from the catalogue."""
    if job.error_message is None or job.error is None:
        return job.error or ""
    try:
        return message_from_json(job.error_message)
    except (KeyError, IndexError, ValueError):
        return job.error  # a parameter that no longer fits its template: the English as it was stored


@router.get("/analyses/{job_id}/telechargement")
def download(request: Request, project_id: int, job_id: int, format: Literal["csv", "json"] = Query("csv")) -> Response:
    """The released output as a file, through the page session (the API's own download, the same record)."""
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    return api.download(project_id, job_id, hub_of(request), actor, format)


@router.get("/donnees-fictives")
def dummy_data(request: Request, project_id: int) -> Response:
    """The project's dummy data (ZIP), through the page session: the API's own export, the same record."""
    actor = page_actor(request)
    require_role(actor, Role.RESEARCHER)
    return dummy_api.dummy_data(project_id, hub_of(request), actor)
