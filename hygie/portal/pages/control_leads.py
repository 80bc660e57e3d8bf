# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The leads page of a control project: leads found by rules, by rule, each with its evidence (claims by their
project claim keys, the numbers that fired the rule), people by pseudonym only; and the button that runs the rules.

Both go through :mod:`hygie.control.leads`, which checks the data gate and the project's purpose and records the
run or the read before answering. Leads are never shown beside the estimated improper-payment rate.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.control import leads, lifting
from hygie.control.rules import RULE_LABELS, RULES
from hygie.governance.errors import Invalid
from hygie.governance.policy import Role
from hygie.portal.pages.messages import French
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

router = APIRouter(prefix="/recherche/projets", route_class=PageRoute, include_in_schema=False)
approvals = APIRouter(prefix="/controle/levees", route_class=PageRoute, include_in_schema=False)
for _role in (Role.REVIEWER, Role.DPO):
    extend_nav(_role, "/controle/levees", "Levées de pseudonyme")
DONE = {
    "analyse": "Les règles ont tourné ; l'analyse est inscrite au journal d'audit.",
    "levee": "Votre demande de levée est enregistrée ; une seconde personne habilitée doit l'approuver.",
}
STATUSES = {"requested": "en attente", "approved": "approuvée", "refused": "refusée", "shown": "consultée"}

SUBJECTS = {"beneficiary": "Bénéficiaire", "provider": "Professionnel"}
NUMBERS = {
    "death": "décès (mois)", "death_precision": "précision du décès", "lines_after": "lignes après le décès",
    "first_after": "première après", "last_after": "dernière après", "days_after": "jours après",
    "day": "jour", "specialty": "spécialité", "acts": "actes", "cap": "plafond", "nature": "nature de prestation",
    "amount": "montant (€)", "times_billed": "fois facturé", "peers": "pairs", "peer_region": "région des pairs",
    "metrics": "indicateurs", "shared_contact": "coordonnée partagée", "people_sharing_it": "personnes la partageant",
    "providers": "professionnels", "lines": "lignes", "dispensing_or_biology": "délivrances ou biologie",
}  # fmt: skip
METRICS = {"amount_per_act": "montant par acte", "acts_per_patient": "actes par patient",
           "patients_per_day": "patients par jour"}  # fmt: skip


def _number(key: str, value: Any) -> str:
    if key == "metrics" and isinstance(value, dict):
        return " ; ".join(
            f"{METRICS.get(m, m)} {v['value']} (médiane {v['median']}, z robuste {v['robust_z']})"
            for m, v in value.items()
        )
    if key == "shared_contact":
        return {"phone": "téléphone", "address": "adresse"}.get(str(value), str(value))
    return "—" if value is None else str(value)


@router.get("/{pid}/pistes", response_class=HTMLResponse)
def leads_page(request: Request, pid: int, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    found = leads.leads(hub_of(request), actor, pid)
    groups = []
    for rule in RULES:
        rows = []
        for lead in found.by_rule.get(rule, []):
            numbers = [(NUMBERS.get(k, k), _number(k, v)) for k, v in lead.evidence.get("numbers", {}).items()]
            rows.append({"lead": lead, "subject": SUBJECTS.get(lead.subject_kind, lead.subject_kind),
                         "numbers": numbers, "claims": lead.evidence.get("claims", []),
                         "claims_total": lead.evidence.get("claims_total", 0)})  # fmt: skip
        groups.append({"rule": rule, "label": RULE_LABELS[rule], "rows": rows})
    asked = lifting.mine(hub_of(request), actor, pid)
    context = {"project": found.project, "run": found.run, "groups": groups, "done": DONE.get(fait[:20], ""),
               "is_researcher": actor.role == Role.RESEARCHER, "lifts": asked, "statuses": STATUSES}  # fmt: skip
    return render(request, "pistes/pistes.html", context, actor=actor)


@router.post("/{pid}/pistes/analyse", response_class=HTMLResponse)
async def run_page(request: Request, pid: int) -> Response:
    _form, actor = await posted_by(request, Role.RESEARCHER)
    await run_in_threadpool(leads.run, hub_of(request), actor, pid)
    return redirect(f"/recherche/projets/{pid}/pistes?fait=analyse")


@router.post("/{pid}/pistes/{lead_id}/levee", response_class=HTMLResponse)
async def lift_request_page(request: Request, pid: int, lead_id: int) -> Response:
    form, actor = await posted_by(request, Role.RESEARCHER)
    reason = str(form.get("motif", ""))[:2000]
    provider = str(form.get("sujet", "")) == "professionnel"
    await run_in_threadpool(lambda: lifting.request(hub_of(request), actor, lead_id, reason, provider=provider))
    return redirect(f"/recherche/projets/{pid}/pistes?fait=levee")


@router.post("/{pid}/levees/{lift_id}/voir", response_class=HTMLResponse)
async def lift_show_page(request: Request, pid: int, lift_id: int) -> Response:
    _form, actor = await posted_by(request, Role.RESEARCHER)
    lifted = await run_in_threadpool(lifting.show, hub_of(request), actor, lift_id)
    context = {"pid": pid, "lift_id": lift_id, "lifted": lifted}
    return render(request, "pistes/identite.html", context, actor=actor, headers={"Cache-Control": "no-store"})


@approvals.get("", response_class=HTMLResponse)
def approvals_page(request: Request, fait: str = "") -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.REVIEWER, Role.DPO)
    waiting = lifting.pending(hub_of(request), actor)
    context = {"waiting": waiting, "labels": RULE_LABELS, "subjects": SUBJECTS, "done": fait == "decision"}
    return render(request, "pistes/levees.html", context, actor=actor)


@approvals.post("/{lift_id}", response_class=HTMLResponse)
async def approval_decision_page(request: Request, lift_id: int) -> Response:
    form, actor = await posted_by(request, Role.REVIEWER, Role.DPO)
    choice = str(form.get("decision", ""))
    if choice not in ("approuver", "refuser"):
        raise Invalid(French("choisissez « approuver » ou « refuser »"))
    reason = str(form.get("motif", ""))[:2000]
    await run_in_threadpool(lifting.decide, hub_of(request), actor, lift_id, choice == "approuver", reason)
    return redirect("/controle/levees?fait=decision")
