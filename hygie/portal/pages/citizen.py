"""A citizen's pages: my reimbursements, who used my data, objecting to research use (and withdrawing)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.governance.acts import act
from hygie.governance.citizens import Citizens, OptOutState
from hygie.governance.errors import Invalid
from hygie.governance.policy import Role
from hygie.governance.register import data_uses
from hygie.governance.reimbursements import my_reimbursements
from hygie.portal.pages.web import PageRoute, checked_form, hub_of, page_actor, redirect, render, require_role

router = APIRouter(prefix="/citoyen", route_class=PageRoute, include_in_schema=False)

REIMBURSEMENTS_PER_PAGE = 25
USES_PER_PAGE = 20


@router.get("/remboursements", response_class=HTMLResponse)
def reimbursements_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.reimbursements") as session:
        found = my_reimbursements(hub, session, actor, offset=(page - 1) * REIMBURSEMENTS_PER_PAGE,
                                  limit=REIMBURSEMENTS_PER_PAGE)  # fmt: skip
    pages = max(1, -(-found.total // REIMBURSEMENTS_PER_PAGE))
    return render(request, "citoyen/remboursements.html",
                  {"rows": found.rows, "total": found.total, "page": page, "pages": pages}, actor=actor)  # fmt: skip


@router.get("/utilisations", response_class=HTMLResponse)
def data_uses_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.data_uses") as session:
        total, uses = data_uses(hub, session, actor, offset=(page - 1) * USES_PER_PAGE, limit=USES_PER_PAGE)
    pages = max(1, -(-total // USES_PER_PAGE))
    return render(request, "citoyen/utilisations.html",
                  {"uses": uses, "total": total, "page": page, "pages": pages}, actor=actor)  # fmt: skip


@router.get("/opposition", response_class=HTMLResponse)
def opt_out_page(request: Request, fait: str = Query("", max_length=20)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.opt_out.read") as session:
        state = Citizens(hub, session).opt_out_state(actor)
    return render(request, "citoyen/opposition.html", {"state": state, "done": fait}, actor=actor)


@router.post("/opposition", response_class=HTMLResponse)
async def opt_out(request: Request) -> Response:
    form = await checked_form(request)
    choice = form.get("choix")
    actor = await run_in_threadpool(page_actor, request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)

    def change() -> OptOutState:
        action = {"opposer": "citizen.opt_out", "retirer": "citizen.opt_out.withdraw"}.get(str(choice))
        with act(hub, actor, action or "citizen.opt_out") as session:
            citizens = Citizens(hub, session)
            if choice == "opposer":
                return citizens.object(actor)
            if choice == "retirer":
                return citizens.withdraw(actor)
            raise Invalid("choose to object (opposer) or to withdraw the objection (retirer)")

    state = await run_in_threadpool(change)
    return redirect("/citoyen/opposition?fait=" + ("opposition" if state.objecting else "retrait"))
