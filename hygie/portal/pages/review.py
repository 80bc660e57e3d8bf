# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Reviewers' (and the DPO's, operators') pages: the projects awaiting review, one request, the decision.

A reviewer sees which version of the request they judge and its hash, and the decisions a change voided; the
form carries that hash, so a request changed between reading and deciding is refused, not decided unseen.
The DPO reads and decides only if the policy lets the DPO review (setting ``dpo_may_review``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.accounts import Actor
from hygie.governance.errors import Conflict, Denied
from hygie.governance.policy import Role, reviewing_roles
from hygie.hub import Hub
from hygie.portal.pages import catalogue
from hygie.portal.pages.web import PageRoute, hub_of, page_actor, posted_by, redirect, render, require_role
from hygie.portal.routes import projects as api

router = APIRouter(prefix="/relecture", route_class=PageRoute, include_in_schema=False)

READERS = (Role.REVIEWER, Role.DPO, Role.OPERATOR)


def may_decide(hub: Hub, actor: Actor) -> bool:
    return actor.role in reviewing_roles(hub.settings.dpo_may_review)


def _context(project: api.ProjectOut, **more: object) -> dict[str, object]:
    current = [d for d in project.decisions if d.voided_at is None and d.scope_version == project.scope_version]
    voided = [d for d in project.decisions if d.voided_at is not None]
    return {"project": project, "purposes": catalogue.purposes(), "table_labels": catalogue.TABLE_LABELS,
            "current_decisions": current, "voided_decisions": voided, **more}  # fmt: skip


def _refusal_fr(message: str) -> str | None:
    """French for the decision's own refusals (separation of duties, a changed request), None for others."""
    if "oversees projects" in message:
        return ("Le DPO veille sur les projets et ne les relit pas (réglage dpo_may_review) : les relecteurs "
                "décident ; le DPO peut suspendre ou clore un projet.")  # fmt: skip
    if "created by the same person" in message:
        return ("Refusé : votre compte et celui du demandeur ou d'un membre du projet ont été créés par la même "
                "personne, ou l'un a créé l'autre. L'approbation doit venir d'une personne indépendante.")  # fmt: skip
    if "changed since you read it" in message:
        return ("La demande a changé depuis que vous l'avez lue : votre décision n'est pas enregistrée. Relisez la "
                "version ci-dessous avant de décider.")  # fmt: skip
    return None


def _decidable(hub: Hub, actor: Actor, project: api.ProjectOut) -> bool:
    mine = [
        d for d in project.decisions if d.reviewer_id == actor.account_id and d.scope_version == project.scope_version
    ]
    return (may_decide(hub, actor) and project.status == "submitted" and not mine
            and project.requester_id != actor.account_id and actor.account_id not in project.members)  # fmt: skip


@router.get("", response_class=HTMLResponse)
def to_review(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *READERS)
    hub = hub_of(request)
    waiting = api.list_projects(hub, actor, "submitted")
    active = api.list_projects(hub, actor, "active")
    context = {"waiting": waiting, "active": active, "purposes": catalogue.purposes(),
               "may_decide": may_decide(hub, actor)}  # fmt: skip
    return render(request, "relecture/liste.html", context, actor=actor)


@router.get("/projets/{project_id}", response_class=HTMLResponse)
def review_page(request: Request, project_id: int, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, *READERS)
    hub = hub_of(request)
    project = api.get_project(project_id, hub, actor)
    context = _context(project, may_decide=_decidable(hub, actor, project), done=fait[:20], errors={}, reason="")
    return render(request, "relecture/projet.html", context, actor=actor)


@router.post("/projets/{project_id}/decision", response_class=HTMLResponse)
async def decide(request: Request, project_id: int) -> Response:
    hub = hub_of(request)
    # The DPO passes here whatever the policy: the service refuses (and records) a DPO who may not review.
    form, actor = await posted_by(request, Role.REVIEWER, Role.DPO)
    decision = str(form.get("decision", ""))
    reason = str(form.get("motif", "")).strip()
    judged = str(form.get("empreinte", ""))
    errors = {}
    if decision not in ("approve", "reject"):
        errors["decision"] = "Choisissez d'approuver ou de refuser."
    if len(reason) < 10:
        errors["motif"] = "Motivez votre décision en au moins 10 caractères."
    if len(judged) != 64 or any(c not in "0123456789abcdef" for c in judged):
        errors["empreinte"] = "Le formulaire ne dit pas quelle version vous avez relue : rechargez la page."
    if errors:
        project = await run_in_threadpool(api.get_project, project_id, hub, actor)
        context = _context(project, may_decide=True, done="", errors=errors, reason=reason)
        return render(request, "relecture/projet.html", context, actor=actor, status=422)
    body = api.DecisionRequest(decision=decision, reason=reason, scope_hash=judged)  # type: ignore[arg-type]
    try:
        await run_in_threadpool(api.decide, project_id, body, hub, actor)
    except (Denied, Conflict) as exc:  # already recorded by the API; said in French with the page as it is now
        french = _refusal_fr(exc.message)
        if french is None:
            raise
        project = await run_in_threadpool(api.get_project, project_id, hub, actor)
        context = _context(project, may_decide=_decidable(hub, actor, project), done="", errors={"refus": french},
                           reason=reason)  # fmt: skip
        return render(request, "relecture/projet.html", context, actor=actor, status=exc.status)
    return redirect(f"/relecture/projets/{project_id}?fait={decision}")
