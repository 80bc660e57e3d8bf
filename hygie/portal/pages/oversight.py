# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The DPO's and auditors' pages: access alerts (read; the DPO acknowledges or dismisses them with a note) and the
audit search (GET /alerts, POST /alerts/{id}/acknowledge|dismiss and GET /audit/events behind)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from hygie.audit.alerts import AlertStatus
from hygie.governance.accounts import Actor
from hygie.governance.errors import Invalid
from hygie.governance.policy import Role
from hygie.i18n import N_
from hygie.portal.pages.messages import ALERT_STATUS, fr, french
from hygie.portal.pages.web import PageRoute, hub_of, page_actor, posted_by, redirect, render, require_role
from hygie.portal.routes import alerts as alerts_api
from hygie.portal.routes import audit_search

router = APIRouter(prefix="/controle", route_class=PageRoute, include_in_schema=False)

ALERTS_PER_PAGE = 50
EVENTS_PER_PAGE = 50
ALERT_STATUS_LABELS = ALERT_STATUS
HANDLINGS = ("acknowledge", "dismiss")
NOTE_MAX = 5_000


@router.get("/alertes", response_class=HTMLResponse)
def alerts_page(request: Request, statut: str = Query("", max_length=20), page: int = Query(1, ge=1)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO, Role.AUDITOR)
    status = AlertStatus(statut) if statut in {s.value for s in AlertStatus} else None
    found = alerts_api.list_alerts(hub_of(request), actor, status, (page - 1) * ALERTS_PER_PAGE, ALERTS_PER_PAGE)
    pages = max(1, -(-found.total // ALERTS_PER_PAGE))
    context = {"found": found, "status": statut, "labels": ALERT_STATUS_LABELS, "page": page, "pages": pages,
               "base": "/controle/alertes?" + (urlencode({"statut": statut}) + "&" if statut else "")}  # fmt: skip
    return render(request, "controle/alertes.html", context, actor=actor)


@router.get("/alertes/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int, fait: str = Query("", max_length=20)) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO, Role.AUDITOR)
    alert = alerts_api.get_alert(alert_id, hub_of(request), actor)
    return render(request, "controle/alerte.html", _alert_context(actor, alert, fait, {}, ""), actor=actor)


def _alert_context(
    actor: Actor, alert: alerts_api.AlertOut, done: str, errors: dict[str, str], note: str
) -> dict[str, Any]:
    # Only the DPO handles alerts (auditors read them); a dismissed alert stays dismissed.
    may_handle = actor.role == Role.DPO and alert.status != AlertStatus.DISMISSED.value
    return {"alert": alert, "labels": ALERT_STATUS_LABELS, "done": done, "errors": errors, "note": note,
            "may_handle": may_handle, "may_acknowledge": alert.status == AlertStatus.OPEN.value}  # fmt: skip


@router.post("/alertes/{alert_id}/traitement", response_class=HTMLResponse)
async def handle_alert(request: Request, alert_id: int) -> Response:
    form, actor = await posted_by(request, Role.DPO)
    hub = hub_of(request)
    choice = str(form.get("choix", ""))
    note = str(form.get("note", "")).strip()
    errors: dict[str, str] = {}
    if choice not in HANDLINGS:
        errors["choix"] = fr(N_("Choose to acknowledge the alert or to dismiss it."))
    if not note:
        errors["note"] = fr(N_("Write a note: what you checked, what you are doing."))
    elif len(note) > NOTE_MAX:
        errors["note"] = fr(N_("{count} characters at most.", count=NOTE_MAX))
    if errors:
        alert = await run_in_threadpool(alerts_api.get_alert, alert_id, hub, actor)
        context = _alert_context(actor, alert, "", errors, note)
        return render(request, "controle/alerte.html", context, actor=actor, status=422)
    handle = alerts_api.acknowledge if choice == "acknowledge" else alerts_api.dismiss
    await run_in_threadpool(handle, alert_id, alerts_api.NoteRequest(note=note), hub, actor)
    return redirect(f"/controle/alertes/{alert_id}?fait={choice}")


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    acteur: str = Query("", max_length=80),
    action: str = Query("", max_length=101),
    projet: str = Query("", max_length=12),
    resultat: str = Query("", max_length=20),
    du: str = Query("", max_length=10),
    au: str = Query("", max_length=10),
    page: int = Query(1, ge=1),
) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO, Role.AUDITOR)
    values = {"acteur": acteur, "action": action, "projet": projet, "resultat": resultat, "du": du, "au": au}
    errors: dict[str, str] = {}
    project_id = None
    if projet.strip():
        if projet.strip().isdigit():
            project_id = int(projet.strip())
        else:
            errors["projet"] = fr(N_("A project number, in digits."))
    days: dict[str, date | None] = {}
    for key in ("du", "au"):
        try:
            days[key] = date.fromisoformat(values[key]) if values[key] else None
        except ValueError:
            errors[key] = fr(N_("A date in the form YYYY-MM-DD."))
    hub = hub_of(request)
    page_found = None
    if not errors:
        try:
            f = audit_search.checked_filter(hub, actor, actor=acteur.strip() or None, action=action.strip() or None,
                                            project_id=project_id, outcome=resultat or None, since=days["du"],
                                            until=days["au"])  # fmt: skip
        except Invalid as exc:
            errors["formulaire"] = french(exc.status, exc.message)
        else:
            page_found = audit_search.search(hub, actor, f, offset=(page - 1) * EVENTS_PER_PAGE, limit=EVENTS_PER_PAGE)
    pages = max(1, -(-page_found.total // EVENTS_PER_PAGE)) if page_found else 1
    query = urlencode({k: v for k, v in values.items() if v})
    context = {"values": values, "errors": errors, "found": page_found, "page": page, "pages": pages,
               "base": "/controle/audit?" + (query + "&" if query else "")}  # fmt: skip
    return render(request, "controle/audit.html", context, actor=actor, status=422 if errors else 200)
