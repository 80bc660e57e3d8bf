"""Reviewers' (and the DPO's, operators') pages: the projects awaiting review, one request, the decision."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.policy import Role
from hygie.portal.pages import catalogue
from hygie.portal.pages.web import PageRoute, hub_of, page_actor, posted_by, redirect, render, require_role
from hygie.portal.routes import projects as api

router = APIRouter(prefix="/relecture", route_class=PageRoute, include_in_schema=False)

READERS = (Role.REVIEWER, Role.DPO, Role.OPERATOR)
DECIDERS = (Role.REVIEWER, Role.DPO)


@router.get("", response_class=HTMLResponse)
def to_review(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *READERS)
    hub = hub_of(request)
    waiting = api.list_projects(hub, actor, "submitted")
    active = api.list_projects(hub, actor, "active")
    context = {"waiting": waiting, "active": active, "purposes": catalogue.purposes(),
               "may_decide": actor.role in DECIDERS}  # fmt: skip
    return render(request, "relecture/liste.html", context, actor=actor)


@router.get("/projets/{project_id}", response_class=HTMLResponse)
def review_page(request: Request, project_id: int, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *READERS)
    project = api.get_project(project_id, hub_of(request), actor)
    mine = [
        d for d in project.decisions if d.reviewer_id == actor.account_id and d.scope_version == project.scope_version
    ]
    context = {"project": project, "purposes": catalogue.purposes(), "table_labels": catalogue.TABLE_LABELS,
               "may_decide": actor.role in DECIDERS and project.status == "submitted" and not mine
                             and project.requester_id != actor.account_id,
               "done": fait[:20], "errors": {}, "reason": ""}  # fmt: skip
    return render(request, "relecture/projet.html", context, actor=actor)


@router.post("/projets/{project_id}/decision", response_class=HTMLResponse)
async def decide(request: Request, project_id: int) -> Response:
    form, actor = await posted_by(request, *DECIDERS)
    decision = str(form.get("decision", ""))
    reason = str(form.get("motif", "")).strip()
    errors = {}
    if decision not in ("approve", "reject"):
        errors["decision"] = "Choisissez d'approuver ou de refuser."
    if len(reason) < 10:
        errors["motif"] = "Motivez votre décision en au moins 10 caractères."
    hub = hub_of(request)
    if errors:
        project = await run_in_threadpool(api.get_project, project_id, hub, actor)
        context = {"project": project, "purposes": catalogue.purposes(), "table_labels": catalogue.TABLE_LABELS,
                   "may_decide": True, "done": "", "errors": errors, "reason": reason}  # fmt: skip
        return render(request, "relecture/projet.html", context, actor=actor, status=422)
    body = api.DecisionRequest(decision=decision, reason=reason)  # type: ignore[arg-type]
    await run_in_threadpool(api.decide, project_id, body, hub, actor)
    return redirect(f"/relecture/projets/{project_id}?fait={decision}")
