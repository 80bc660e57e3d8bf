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
from hygie.i18n import N_
from hygie.portal.pages import catalogue
from hygie.portal.pages.messages import fr
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


DPO_OVERSEES = N_(
    "the DPO oversees projects and does not review them here (policy setting dpo_may_review); reviewers decide, and "
    "the DPO may suspend or close a project"
)
SAME_LINEAGE = N_(
    "refused: your account and account {account}, which requested or belongs to project {project}, were created by "
    "the same person (or one created the other); an approval must come from someone independent",
    account=0,
    project=0,
)
CHANGED = N_(
    "project {project} changed since you read it (it is now version {version}); read it again before deciding",
    project=0,
    version=0,
)
DECISION_REFUSALS: dict[str, str] = {
    DPO_OVERSEES.msgid: fr(N_(
        "The DPO oversees projects and does not review them (setting dpo_may_review): reviewers decide; the DPO may "
        "suspend or close a project."
    )),
    SAME_LINEAGE.msgid: fr(N_(
        "Refused: your account and the requester's or a project member's were created by the same person, or one "
        "created the other. The approval must come from an independent person."
    )),
    CHANGED.msgid: fr(N_(
        "The request changed since you read it: your decision is not recorded. Read the version below before "
        "deciding."
    )),
}  # fmt: skip
"""The decision's own refusals (separation of duties, a changed request), by the service message's identifier,
said the way this page needs them: the form is shown again below them."""


def _refusal_fr(message: str) -> str | None:
    """French for the decision's own refusals, None for others (shown on the error page like any refusal)."""
    return DECISION_REFUSALS.get(getattr(message, "msgid", ""))


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
        errors["decision"] = fr(N_("Choose to approve or to reject."))
    if len(reason) < 10:
        errors["motif"] = fr(N_("Give the reason for your decision in at least {count} characters.", count=10))
    if len(judged) != 64 or any(c not in "0123456789abcdef" for c in judged):
        errors["empreinte"] = fr(N_("The form does not say which version you read: reload the page."))
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
