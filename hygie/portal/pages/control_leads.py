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
from hygie.i18n import N_, term
from hygie.portal.pages.messages import French, fr
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
    extend_nav(_role, "/controle/levees", fr(N_("Pseudonym liftings")))
DONE = {
    "analyse": fr(N_("The rules ran; the run is recorded in the audit log.")),
    "levee": fr(N_("Your request to lift the pseudonym is recorded; a second authorised person must approve it.")),
}
STATUSES = {
    "requested": fr(term("lift request status", "requested")),
    "approved": fr(term("lift request status", "approved")),
    "refused": fr(term("lift request status", "refused")),
    "shown": fr(term("lift request status", "shown")),
}
"""A lift request's stored status, as its requester reads it."""
RULE_LABELS_FR = {rule: fr(label) for rule, label in RULE_LABELS.items()}

SUBJECTS = {
    "beneficiary": fr(term("lead subject", "beneficiary")),
    "provider": fr(term("lead subject", "provider")),
}
"""Whose pseudonym a lead names (its stored subject kind)."""
NUMBERS = {
    "death": fr(N_("death (month)")), "death_precision": fr(N_("precision of the death date")),
    "lines_after": fr(N_("lines after the death")), "first_after": fr(N_("first after")),
    "last_after": fr(N_("last after")), "days_after": fr(N_("days after")),
    "day": fr(term("lead evidence", "day")), "specialty": fr(term("lead evidence", "specialty")),
    "acts": fr(term("lead evidence", "acts")), "cap": fr(term("lead evidence", "cap")),
    "nature": fr(N_("nature of the service")), "amount": fr(N_("amount (EUR)")),
    "times_billed": fr(N_("times billed")), "peers": fr(term("lead evidence", "peers")),
    "peer_region": fr(N_("region of the peers")), "metrics": fr(term("lead evidence", "metrics")),
    "shared_contact": fr(N_("shared contact")), "people_sharing_it": fr(N_("people sharing it")),
    "providers": fr(term("lead evidence", "providers")), "lines": fr(term("lead evidence", "lines")),
    "dispensing_or_biology": fr(N_("dispensing or laboratory tests")),
}  # fmt: skip
"""The column labels of a lead's numbers (the keys of its stored evidence)."""
METRICS = {"amount_per_act": fr(N_("amount per act")), "acts_per_patient": fr(N_("acts per patient")),
           "patients_per_day": fr(N_("patients per day"))}  # fmt: skip
CONTACTS = {"phone": fr(term("shared contact", "phone")), "address": fr(term("shared contact", "address"))}


def _number(key: str, value: Any) -> str:
    if key == "metrics" and isinstance(value, dict):
        return " ; ".join(
            fr(N_("{metric} {value} (median {median}, robust z {robust_z})", metric=METRICS.get(m, m),
                  value=v["value"], median=v["median"], robust_z=v["robust_z"]))
            for m, v in value.items()
        )  # fmt: skip
    if key == "shared_contact":
        return CONTACTS.get(str(value), str(value))
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
        groups.append({"rule": rule, "label": RULE_LABELS_FR[rule], "rows": rows})
    asked = lifting.mine(hub_of(request), actor, pid)
    context = {"project": found.project, "run": found.run, "groups": groups, "done": DONE.get(fait[:20], ""),
               "is_researcher": actor.role == Role.RESEARCHER, "lifts": asked, "statuses": STATUSES,
               "subjects": SUBJECTS}  # fmt: skip
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
    context = {"waiting": waiting, "labels": RULE_LABELS_FR, "subjects": SUBJECTS, "done": fait == "decision"}
    return render(request, "pistes/levees.html", context, actor=actor)


@approvals.post("/{lift_id}", response_class=HTMLResponse)
async def approval_decision_page(request: Request, lift_id: int) -> Response:
    form, actor = await posted_by(request, Role.REVIEWER, Role.DPO)
    choice = str(form.get("decision", ""))
    if choice not in ("approuver", "refuser"):
        raise Invalid(French(fr(N_('choose "approve" or "refuse"'))))
    reason = str(form.get("motif", ""))[:2000]
    await run_in_threadpool(lifting.decide, hub_of(request), actor, lift_id, choice == "approuver", reason)
    return redirect("/controle/levees?fait=decision")
