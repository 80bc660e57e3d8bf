"""A citizen's pages: my reimbursements, who used my data, objecting to research use (and withdrawing), the
breach notices that concern me."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.audit import record
from hygie.governance.acts import act
from hygie.governance.citizens import Citizens, OptOutState
from hygie.governance.errors import Invalid
from hygie.governance.policy import Role
from hygie.governance.register import data_uses
from hygie.governance.reimbursements import my_reimbursements
from hygie.portal.pages.web import (
    PageRoute,
    extend_nav,
    hub_of,
    page_actor,
    posted_by,
    redirect,
    render,
    require_role,
)
from hygie.portal.routes import breach as breach_api
from hygie.portal.transparency import my_entries

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


LOG_ENTRIES_PER_PAGE = 20
extend_nav(Role.CITIZEN, "/citoyen/journal", "Mes traces dans le journal d'audit")


@router.get("/journal", response_class=HTMLResponse)
def my_log_page(request: Request, page: int = Query(1, ge=1, le=1_000_000)) -> HTMLResponse:
    """The citizen's own entries of the audit log, with what it takes to check them (GET /me/audit-entries)."""
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    hub = hub_of(request)
    with act(hub, actor, "citizen.audit_entries") as session:
        found = my_entries(hub, session, actor, offset=(page - 1) * LOG_ENTRIES_PER_PAGE, limit=LOG_ENTRIES_PER_PAGE)
        record(session, actor=actor.ref, role=actor.role_name, action="citizen.audit_entries",
               detail={"entries": len(found.entries), "data_uses": len(found.data_uses)})  # fmt: skip
    pages = max(1, -(-found.total // LOG_ENTRIES_PER_PAGE))
    return render(request, "citoyen/journal.html", {"found": found, "page": page, "pages": pages}, actor=actor)


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
    form, actor = await posted_by(request, Role.CITIZEN)
    choice = form.get("choix")
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


EXPOSED: dict[str, str] = {
    "social security number": "numéro de sécurité sociale",
    "name": "nom et prénom",
    "birth date": "date de naissance",
    "postal address": "adresse postale",
    "e-mail address": "adresse électronique",
    "phone number": "numéro de téléphone",
    "sex": "sexe",
    "health data (blood group)": "donnée de santé (groupe sanguin)",
    "doctor": "médecin",
    "insurer": "organisme d'assurance",
    "health data (diagnoses, results)": "données de santé (diagnostics, résultats)",
    "health data (treatments)": "données de santé (traitements)",
    "free text (may hold health data)": "texte libre (peut contenir des données de santé)",
    "other data": "autres données",
}
"""The breach categories (``hygie.breach.mapping.CATEGORY``) in French; an unknown one is shown as it is."""
WHAT_TO_DO_FR = [
    "Méfiez-vous des appels, SMS et courriels qui disent venir de votre caisse : elle ne demande jamais de mot de "
    "passe ni de code.",
    "Vérifiez vos remboursements et vos coordonnées bancaires dans votre compte.",
    "Si votre numéro de sécurité sociale a été exposé, surveillez les remboursements que vous n'avez pas demandés "
    "et signalez-les.",
    "Pendant quelque temps, changer de coordonnées bancaires, d'adresse ou de contact demande une vérification "
    "d'identité renforcée.",
]
"""``hygie.breach.citizen.WHAT_TO_DO`` in French, item for item (a test holds them to the same length)."""


@router.get("/violations", response_class=HTMLResponse)
def breach_notices_page(request: Request) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.CITIZEN)
    found = breach_api.my_notices(hub_of(request), actor)
    what_to_do = WHAT_TO_DO_FR if found.what_to_do else []
    context = {"found": found, "exposed": EXPOSED, "what_to_do": what_to_do}
    return render(request, "citoyen/violations.html", context, actor=actor)
