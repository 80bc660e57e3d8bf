# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The DPO's breach-response pages: the incidents and the import of a leaked file, one incident (counts,
categories exposed, the column mapping and its correction, the review queue, the notification), the report for
the CNIL, the outbox and the sweep of leaked files past their retention date.

The pages call the JSON API's route functions (``hygie.portal.routes.breach``), so each act is checked, done and
recorded exactly as through ``/breach/…``. Like the API, nothing here shows a value from the leak or the vault:
rows are numbered, people counted, columns named by their header and mapped field, and a row in review is
compared with its candidate field by field (identical, close, different, absent). The one exception is the
two-person reveal: an identity the DPO asked for with a reason and a second person approved, shown once.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from hygie.breach.mapping import Field
from hygie.governance.accounts import Actor
from hygie.governance.errors import GovernanceError
from hygie.governance.policy import Role
from hygie.governance.projects import MIN_REASON
from hygie.i18n import N_, term, translate
from hygie.portal.pages.citizen import EXPOSED
from hygie.portal.pages.messages import INCIDENT_STATUS, Said, fr, said
from hygie.portal.pages.web import (
    PageRoute,
    checked_form,
    extend_nav,
    hub_of,
    page_actor,
    posted_by,
    redirect,
    render,
    require_role,
)
from hygie.portal.routes import breach as api
from hygie.vocabulary import BREACH_MATCH_REASON, labels

router = APIRouter(prefix="/controle/violations", route_class=PageRoute, include_in_schema=False)
extend_nav(Role.DPO, "/controle/violations", fr(N_("Data breaches")))

NAME_MAX = 200
FIELD_LABELS: dict[str, str] = {
    Field.NIR: fr(N_("NIR (social security number)")),
    Field.LAST_NAME: fr(N_("family name")),
    Field.FIRST_NAME: fr(N_("first name")),
    Field.FULL_NAME: fr(N_("full name (family and first name)")),
    Field.BIRTH_DATE: fr(N_("date of birth")),
    Field.POSTCODE: fr(N_("postcode")),
    Field.EMAIL: fr(N_("e-mail address")),
    Field.PHONE: fr(N_("telephone")),
    Field.ADDRESS: fr(N_("address")),
    Field.COMMUNE: fr(N_("commune")),
    Field.SEX: fr(N_("sex")),
    Field.BLOOD_GROUP: fr(N_("blood group (health)")),
    Field.DOCTOR: fr(N_("doctor")),
    Field.INSURER: fr(N_("insurer")),
    Field.DIAGNOSIS: fr(N_("diagnosis, result (health)")),
    Field.TREATMENT: fr(N_("treatment (health)")),
    Field.COMMENT: fr(N_("comment (free text)")),
    Field.OTHER: fr(N_("other data")),
    Field.IGNORE: fr(N_("to ignore (exposes nothing of a person)")),
}
"""Every field a column can be mapped to (``hygie.breach.mapping.Field``), in French."""
SOURCE_LABELS: dict[str, str] = {
    "header": fr(term("breach mapping source", "header")),
    "content": fr(term("breach mapping source", "content")),
    "dpo": fr(term("breach mapping source", "dpo")),
    "none": fr(term("breach mapping source", "none")),
}
REASONS: dict[str, str] = labels(BREACH_MATCH_REASON, "fr")
"""The matcher's reasons for a row's outcome, in French (``hygie.vocabulary``); an unknown one is shown as it is."""


def report_text(text: str) -> Said:
    """One sentence of the report (``Incidents.report``, each a catalogued message) in French, else as it is,
    marked English."""
    french = translate(text, "fr")
    return Said(french, "fr", str(text)) if french is not None else Said(text, "en")


DECISIONS = {
    "confirmed": fr(term("breach row decision", "confirmed")),
    "rejected": fr(term("breach row decision", "rejected")),
}
COUNTS: list[tuple[str, str]] = [
    ("rows", fr(N_("rows of the file"))),
    ("matched", fr(N_("found"))),
    ("ambiguous", fr(N_("in review"))),
    ("unmatched", fr(N_("not found"))),
    ("invalid", fr(N_("without an identifier"))),
    ("people", fr(N_("people found"))),
]
DONE = {"import", "correspondance", "confirm", "reject", "notification", "envoi", "purge"}


def _labels() -> dict[str, Any]:
    return {"incident_status": INCIDENT_STATUS, "exposed": EXPOSED, "field_labels": FIELD_LABELS,
            "source_labels": SOURCE_LABELS, "reasons": REASONS, "decisions": DECISIONS, "counts": COUNTS,
            "report_text": report_text}  # fmt: skip


def _list_context(
    request: Request, actor: Actor, done: str, results: dict[str, int], errors: dict[str, str], name: str
) -> dict[str, Any]:
    incidents = api.list_incidents(hub_of(request), actor)
    return {"incidents": list(reversed(incidents)), "done": done, "results": results, "errors": errors,
            "name": name, "max_mib": hub_of(request).settings.breach_upload_max_mib, **_labels()}  # fmt: skip


@router.get("", response_class=HTMLResponse)
def incidents_page(
    request: Request,
    fait: str = Query("", max_length=20),
    envoyes: int = Query(0, ge=0),
    courriers: int = Query(0, ge=0),
    echecs: int = Query(0, ge=0),
    detruits: int = Query(0, ge=0),
) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO)
    results = {"sent": envoyes, "letter": courriers, "failed": echecs, "destroyed": detruits}
    context = _list_context(request, actor, fait if fait in DONE else "", results, {}, "")
    return render(request, "controle/violations.html", context, actor=actor)


@router.post("/import", response_class=HTMLResponse)
async def import_page(request: Request) -> Response:
    form, actor = await posted_by(request, Role.DPO)
    name = str(form.get("nom", "")).strip()
    upload = (await request.form()).get("fichier")  # the form is parsed once; this is the same one
    errors: dict[str, str] = {}
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["fichier"] = fr(N_("Choose the leaked file (CSV, TSV, XLSX or JSON)."))
    if not name:
        errors["nom"] = fr(N_("Name the incident (for example, the contractor and the date of the leak)."))
    elif len(name) > NAME_MAX:
        errors["nom"] = fr(N_("{count} characters at most.", count=NAME_MAX))
    hub = hub_of(request)
    if not errors:
        assert isinstance(upload, UploadFile)
        blob = await upload.read(api.upload_limit(hub.settings) + 1)
        try:
            incident_id, _ = await run_in_threadpool(api.import_blob, hub, actor, name, upload.filename, blob)
        except GovernanceError as exc:  # recorded by the service; shown above the form, the name kept
            errors["formulaire"] = said(exc.status, exc.message).text
            status = exc.status
        else:
            return redirect(f"/controle/violations/{incident_id}?fait=import")
    else:
        status = 422
    context = await run_in_threadpool(_list_context, request, actor, "", {}, errors, name)
    return render(request, "controle/violations.html", context, actor=actor, status=status)


@router.post("/envoi", response_class=HTMLResponse)
async def send_page(request: Request) -> Response:
    _, actor = await posted_by(request, Role.DPO)
    counts = await run_in_threadpool(api.send_outbox, hub_of(request), actor)
    return redirect(f"/controle/violations?fait=envoi&envoyes={counts['sent']}&courriers={counts['letter']}"
                    f"&echecs={counts['failed']}")  # fmt: skip


@router.post("/purge", response_class=HTMLResponse)
async def sweep_page(request: Request) -> Response:
    _, actor = await posted_by(request, Role.DPO)
    done = await run_in_threadpool(api.sweep_files, hub_of(request), actor)
    return redirect(f"/controle/violations?fait=purge&detruits={len(done['destroyed'])}")


SECOND_PERSON_NAV = "/controle/violations/a-confirmer"
for _role in (Role.DPO, Role.OPERATOR, Role.AUDITOR):
    extend_nav(_role, SECOND_PERSON_NAV, fr(N_("Breaches: to confirm")))


def _second_person(request: Request) -> Actor:
    actor = page_actor(request)
    s = hub_of(request).settings
    roles = {*s.breach_import_confirmer_roles, *s.breach_reveal_approver_roles, Role.DPO.value}
    require_role(actor, *(r for r in Role if r.value in roles))
    return actor


def _pending_context(request: Request, actor: Actor, done: str, errors: dict[str, str]) -> dict[str, Any]:
    pending = api.pending(hub_of(request), actor)
    return {"imports": pending.imports, "reveals": pending.reveals, "done": done, "errors": errors,
            "min_reason": MIN_REASON, **_labels()}  # fmt: skip


@router.get("/a-confirmer", response_class=HTMLResponse)
def pending_page(request: Request, fait: str = Query("", max_length=20)) -> HTMLResponse:
    """What awaits a second person: leaks imported by someone else (nothing matched until confirmed), and the
    DPO's requests to see an identity. Shows no value of a leak or of the vault."""
    actor = _second_person(request)
    done = fait if fait in {"import", "approve", "refuse"} else ""
    return render(request, "controle/violations-a-confirmer.html", _pending_context(request, actor, done, {}),
                  actor=actor)  # fmt: skip


@router.post("/a-confirmer/import/{incident_id}", response_class=HTMLResponse)
async def confirm_page(request: Request, incident_id: int) -> Response:
    await checked_form(request)
    actor = await run_in_threadpool(_second_person, request)
    try:
        await run_in_threadpool(api.confirm_import, incident_id, hub_of(request), actor)
    except GovernanceError as exc:  # recorded by the service
        context = await run_in_threadpool(_pending_context, request, actor, "", {
            f"import-{incident_id}": said(exc.status, exc.message).text})  # fmt: skip
        return render(request, "controle/violations-a-confirmer.html", context, actor=actor, status=exc.status)
    return redirect(f"{SECOND_PERSON_NAV}?fait=import")


@router.post("/a-confirmer/levee/{reveal_id}", response_class=HTMLResponse)
async def reveal_decision_page(request: Request, reveal_id: int) -> Response:
    form = await checked_form(request)
    actor = await run_in_threadpool(_second_person, request)
    decision = str(form.get("decision", ""))
    reason = str(form.get("motif", "")).strip()
    key = f"levee-{reveal_id}"
    error = ""
    if decision not in ("approve", "refuse"):
        error = fr(N_("Choose to approve or to refuse the request."))
    elif len(reason) < MIN_REASON:
        error = fr(N_("Say why, in at least {count} characters.", count=MIN_REASON))
    else:
        body = api.RevealDecision(decision=cast(Literal["approve", "refuse"], decision), reason=reason[:2000])
        try:
            await run_in_threadpool(api.decide_reveal, reveal_id, body, hub_of(request), actor)
        except GovernanceError as exc:  # recorded by the service
            error = said(exc.status, exc.message).text
        else:
            return redirect(f"{SECOND_PERSON_NAV}?fait={decision}")
    context = await run_in_threadpool(_pending_context, request, actor, "", {key: error})
    return render(request, "controle/violations-a-confirmer.html", context, actor=actor, status=422)


def _incident_context(
    request: Request, actor: Actor, incident_id: int, done: str, people: int, errors: dict[str, str]
) -> dict[str, Any]:
    hub = hub_of(request)
    incident = api.get_incident(incident_id, hub, actor)
    queue = api.review_queue(incident_id, hub, actor)
    open_ = incident.status == "imported"
    return {"incident": incident, "queue": queue, "done": done, "people": people, "errors": errors,
            "may_remap": open_ and incident.destroyed_at is None, "may_inspect": incident.destroyed_at is None,
            "may_decide": open_, "may_notify": open_,
            "undecided": sum(1 for r in queue if r.decision is None),
            "confirmed": sum(1 for r in queue if r.decision == "confirmed"),
            "fields": list(FIELD_LABELS), **_labels()}  # fmt: skip


@router.get("/{incident_id}", response_class=HTMLResponse)
def incident_page(
    request: Request, incident_id: int, fait: str = Query("", max_length=20), personnes: int = Query(0, ge=0)
) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO)
    context = _incident_context(request, actor, incident_id, fait if fait in DONE else "", personnes, {})
    return render(request, "controle/violation.html", context, actor=actor)


@router.post("/{incident_id}/correspondance", response_class=HTMLResponse)
async def mapping_page(request: Request, incident_id: int) -> Response:
    form, actor = await posted_by(request, Role.DPO)
    hub = hub_of(request)
    incident = await run_in_threadpool(api.get_incident, incident_id, hub, actor)
    corrections: dict[int, Field] = {}
    errors: dict[str, str] = {}
    for column in incident.mapping:
        key = f"colonne-{column.column}"
        chosen = str(form.get(key, column.field))
        if chosen not in FIELD_LABELS:
            errors[key] = fr(N_("Choose a field from the list."))
        elif chosen != column.field:
            corrections[column.column] = Field(chosen)
    if errors:
        context = await run_in_threadpool(_incident_context, request, actor, incident_id, "", 0, errors)
        return render(request, "controle/violation.html", context, actor=actor, status=422)
    # No correction still matches the file again (against the vault as it is now), as the API does.
    await run_in_threadpool(api.set_mapping, incident_id, api.MappingRequest(columns=corrections), hub, actor)
    return redirect(f"/controle/violations/{incident_id}?fait=correspondance")


@router.post("/{incident_id}/revue/{row}", response_class=HTMLResponse)
async def decide_page(request: Request, incident_id: int, row: int) -> Response:
    form, actor = await posted_by(request, Role.DPO)
    decision = str(form.get("decision", ""))
    if decision not in ("confirm", "reject"):
        context = await run_in_threadpool(_incident_context, request, actor, incident_id, "", 0,
                                          {"revue": fr(N_("Choose to confirm or to reject the row."))})  # fmt: skip
        return render(request, "controle/violation.html", context, actor=actor, status=422)
    body = api.DecisionRequest(decision=cast(Literal["confirm", "reject"], decision))
    await run_in_threadpool(api.decide, incident_id, row, body, hub_of(request), actor)
    return redirect(f"/controle/violations/{incident_id}?fait={decision}#revue")


@router.post("/{incident_id}/notification", response_class=HTMLResponse)
async def notify_page(request: Request, incident_id: int) -> Response:
    _, actor = await posted_by(request, Role.DPO)
    done = await run_in_threadpool(api.notify, incident_id, hub_of(request), actor)
    return redirect(f"/controle/violations/{incident_id}?fait=notification&personnes={done['people']}")


@router.get("/{incident_id}/rapport", response_class=HTMLResponse)
def report_page(request: Request, incident_id: int) -> HTMLResponse:
    actor = page_actor(request)
    require_role(actor, Role.DPO)
    hub = hub_of(request)
    report = api.report(incident_id, hub, actor)
    return render(request, "controle/violation-rapport.html",
                  {"incident_id": incident_id, "report": report, **_labels()}, actor=actor)  # fmt: skip


AGREEMENTS: dict[str, str] = {
    "exact": fr(term("breach field agreement", "exact")),
    "close": fr(term("breach field agreement", "close")),
    "differs": fr(term("breach field agreement", "differs")),
    "missing": fr(term("breach field agreement", "missing")),
}
MISSING_ON = {"leak": fr(N_("empty in the file")), "vault": fr(N_("absent from the vault"))}
REVEAL_STATUS = {
    "requested": fr(term("breach reveal status", "requested")),
    "approved": fr(term("breach reveal status", "approved")),
    "refused": fr(term("breach reveal status", "refused")),
    "shown": fr(term("breach reveal status", "shown")),
}


def _row_context(request: Request, actor: Actor, incident_id: int, row: int, errors: dict[str, str],
                 reason: str, done: str) -> dict[str, Any]:  # fmt: skip
    hub = hub_of(request)
    incident = api.get_incident(incident_id, hub, actor)
    review = api.compare_row(incident_id, row, hub, actor)
    mine = [r for r in api.list_reveals(hub, actor, incident_id) if r.row == row and r.requested_by == actor.ref]
    return {"incident": incident, "review": review, "has_candidate": bool(review.fields), "reveals": mine,
            "may_decide": incident.status == "imported", "errors": errors, "reason": reason, "done": done,
            "agreements": AGREEMENTS, "missing_on": MISSING_ON, "reveal_status": REVEAL_STATUS,
            "min_reason": MIN_REASON, **_labels()}  # fmt: skip


@router.get("/{incident_id}/revue/{row}", response_class=HTMLResponse)
def inspect_page(request: Request, incident_id: int, row: int, fait: str = Query("", max_length=20)) -> HTMLResponse:
    """One row in review against its candidate: which identifying fields agree and how closely, never a value of
    the leak or of the vault. Recorded (row number only); a full view of the identity is a two-person act."""
    actor = page_actor(request)
    require_role(actor, Role.DPO)
    context = _row_context(request, actor, incident_id, row, {}, "", fait if fait == "levee" else "")
    return render(request, "controle/violation-ligne.html", context, actor=actor, headers={"Cache-Control": "no-store"})


@router.post("/{incident_id}/revue/{row}/levee", response_class=HTMLResponse)
async def reveal_request_page(request: Request, incident_id: int, row: int) -> Response:
    """The DPO asks to see the candidate's identity, with a reason; a second person decides."""
    form, actor = await posted_by(request, Role.DPO)
    reason = str(form.get("motif", "")).strip()
    hub = hub_of(request)
    error = ""
    if len(reason) < MIN_REASON:
        error = fr(N_("Say why the law requires this identity, in at least {count} characters.", count=MIN_REASON))
    else:
        try:
            await run_in_threadpool(api.request_reveal, incident_id, row, api.RevealRequest(reason=reason[:2000]),
                                    hub, actor)  # fmt: skip
        except GovernanceError as exc:  # recorded by the service; shown above the form, the reason kept
            error = said(exc.status, exc.message).text
        else:
            return redirect(f"/controle/violations/{incident_id}/revue/{row}?fait=levee")
    context = await run_in_threadpool(_row_context, request, actor, incident_id, row, {"motif": error}, reason, "")
    return render(request, "controle/violation-ligne.html", context, actor=actor, status=422,
                  headers={"Cache-Control": "no-store"})  # fmt: skip


@router.post("/{incident_id}/levees/{reveal_id}", response_class=HTMLResponse)
async def reveal_show_page(request: Request, incident_id: int, reveal_id: int) -> Response:
    """The approved identity, once, to the DPO who asked; recorded and alerted before the page is returned."""
    _, actor = await posted_by(request, Role.DPO)
    reveal, identity = await run_in_threadpool(api.show_identity, reveal_id, hub_of(request), actor)
    return render(request, "controle/violation-identite.html",
                  {"incident_id": reveal.incident_id, "reveal": reveal, "identity": identity},
                  actor=actor, headers={"Cache-Control": "no-store"})  # fmt: skip
