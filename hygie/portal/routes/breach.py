# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Breach response: the DPO's incidents, the citizen's notices, and the anonymous "am I in it?" check.

No response and no event carries a value from a leak or from the vault: rows are numbered, people are counted,
columns are named by their header and mapped field, and a row in review is compared with its candidate by which
fields agree and how closely. Two acts need a second person: confirming a leak imported over HTTP (nothing is
matched before), and approving the DPO's request to see a candidate's vault identity (shown once to the asker).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import select
from voprf import ristretto

from hygie.audit import Outcome, record, record_now
from hygie.breach import citizen as breach_citizen
from hygie.breach import mail, oprf, sweep
from hygie.breach.mapping import Field as LeakField
from hygie.breach.models import BreachCheckTag, BreachIncident, BreachReveal, BreachRow
from hygie.breach.ratelimit import RateLimited, RateLimiter, grant_attempt, redeem_attempt
from hygie.breach.reader import UnreadableFile
from hygie.breach.service import CONFIRMING_IMPORT, Incidents, Result, aware, second_person_role
from hygie.config import Settings
from hygie.governance.accounts import ANONYMOUS, Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Denied, Invalid, Unauthenticated
from hygie.governance.models import Account
from hygie.governance.policy import Role
from hygie.governance.throttle import client_address
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep
from hygie.vocabulary import ROLE, word

router = APIRouter(tags=["breach"])

ATTEMPT_SECONDS = 120


def _require_dpo(actor: Actor) -> None:
    if actor.role is not Role.DPO or Scope.GOVERNANCE not in actor.scopes:
        raise Denied(
            N_("a {role} may not handle breach incidents (the DPO does)", role=word(ROLE, actor.role_name or "visitor"))
        )


class RowOut(BaseModel):
    row: int = Field(description="1-based data row of the file")
    status: Literal["matched", "ambiguous", "unmatched", "invalid"]
    confidence: float


class ImportOut(BaseModel):
    incident: str
    rows: int
    matched: int
    ambiguous: int
    unmatched: int
    invalid: int
    results: list[RowOut]


class ColumnOut(BaseModel):
    column: int
    header: str
    field: str
    source: str = Field(description="'header', 'content', 'dpo' or 'none'")


class IncidentOut(BaseModel):
    id: int
    name: str
    status: str = Field(
        description="'staged' (awaiting a second person's confirmation), 'imported', 'notified', 'destroyed'"
    )
    created_at: datetime
    created_by: str = ""
    confirmed_by: str | None = None
    retain_until: datetime
    destroyed_at: datetime | None
    counts: dict[str, int]
    categories: dict[str, int] = Field(description="People matched per category of data exposed")
    mapping: list[ColumnOut]


class MappingRequest(RequestBody):
    columns: dict[int, LeakField] = Field(description="Column number (from 0) → field, for the columns to correct")


class ReviewRow(BaseModel):
    row: int
    confidence: float
    reason: str
    candidates: int
    decision: str | None


class DecisionRequest(RequestBody):
    decision: Literal["confirm", "reject"]


class StagedOut(BaseModel):
    id: int
    incident: str
    status: Literal["staged"]
    rows: int = Field(description="Data rows read from the file; none is matched before a second person confirms")


class FieldOut(BaseModel):
    column: int = Field(description="Column of the file, from 0")
    header: str
    field: str
    agreement: Literal["exact", "close", "differs", "missing"]
    score: float | None = Field(description="Similarity 0-1 when both sides hold a value")
    missing_on: Literal["leak", "vault"] | None


class ComparisonOut(ReviewRow):
    fields: list[FieldOut] = Field(description="Each identifying cell against the candidate; never a value")


class RevealRequest(RequestBody):
    reason: str = Field(max_length=2000, description="Why the law needs this identity (at least the minimum)")


class RevealDecision(RequestBody):
    decision: Literal["approve", "refuse"]
    reason: str = Field(max_length=2000)


class RevealOut(BaseModel):
    id: int
    incident_id: int
    row: int
    status: Literal["requested", "approved", "refused", "shown"]
    reason: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    shown_at: datetime | None
    usable_until: datetime | None = Field(description="An approved identity may be seen once, until then")


class IdentityOut(BaseModel):
    nir: str
    last_name: str
    first_name: str
    birth_date: str
    address: str | None
    postcode: str | None
    commune: str | None
    phone: str | None
    email: str | None


class PendingImportOut(BaseModel):
    """What a second person needs to confirm an import: never the file's columns or its mapping."""

    id: int
    name: str
    created_at: datetime
    created_by: str
    rows: int


class PendingOut(BaseModel):
    imports: list[PendingImportOut] = Field(description="Imports staged by someone else, awaiting confirmation")
    reveals: list[RevealOut] = Field(description="Requests to see an identity, awaiting a decision")


def _incident_out(i: BreachIncident) -> IncidentOut:
    return IncidentOut(
        id=i.id, name=i.name, status=i.status, created_at=aware(i.created_at), created_by=i.created_by,
        confirmed_by=i.confirmed_by, retain_until=aware(i.retain_until),
        destroyed_at=aware(i.destroyed_at) if i.destroyed_at else None, counts=i.counts, categories=i.categories,
        mapping=[ColumnOut(**m) for m in i.mapping],
    )  # fmt: skip


def _import_out(result: Result) -> ImportOut:
    return ImportOut(**result.as_json())


@router.post(
    "/breach/incidents",
    summary="Import a leaked file (CSV, TSV, XLSX, JSON), sealed and staged until a second person confirms (the DPO)",
)
async def import_incident(
    hub: HubDep,
    actor: ActorDep,
    file: Annotated[UploadFile | None, File(description="The leaked file")] = None,
    incident: Annotated[str | None, Form(description="A name for the incident")] = None,
) -> StagedOut:
    blob = await file.read(upload_limit(hub.settings) + 1) if file is not None else None
    return import_blob(hub, actor, incident, file.filename if file is not None else None, blob)[1]


def upload_limit(settings: Settings) -> int:
    return settings.breach_upload_max_mib * 2**20


def import_blob(
    hub: Hub, actor: Actor, incident: str | None, file_name: str | None, blob: bytes | None
) -> tuple[int, StagedOut]:
    """The import behind ``POST /breach/incidents`` and the DPO's page: the file sealed and its columns mapped,
    nothing matched (staged) until a second person confirms it (``POST /breach/incidents/{id}/confirm``)."""
    with act(hub, actor, "breach.import") as session:
        _require_dpo(actor)
        if blob is None or not incident:
            raise Invalid(N_("send the leaked file as multipart field 'file' and its name as field 'incident'"))
        if len(blob) > upload_limit(hub.settings):
            raise Invalid(
                N_(
                    "the file is larger than {size} MiB: import it with `hygie breach import`",
                    size=hub.settings.breach_upload_max_mib,
                )
            )
        try:
            result = Incidents(hub, session).import_file(actor.ref, incident, file_name or "leak", blob, staged=True)
        except UnreadableFile as exc:  # its message names the format tried, never the file's content
            raise Invalid(exc.message) from None
        i = result.incident
        return i.id, StagedOut(id=i.id, incident=i.name, status="staged", rows=i.counts.get("rows", 0))


@router.post(
    "/breach/incidents/{incident_id}/confirm",
    summary="Confirm a staged import: only now is the file matched (a second person, not the importer)",
)
def confirm_import(incident_id: int, hub: HubDep, actor: ActorDep) -> ImportOut:
    with act(hub, actor, "breach.import.confirm", object=f"breach:{incident_id}") as session:
        # Whoever may never confirm is refused before the incident is looked up: the same answer whatever the id.
        second_person_role(actor, hub.settings.breach_import_confirmer_roles, CONFIRMING_IMPORT)
        incidents = Incidents(hub, session)
        return _import_out(incidents.confirm(actor, incidents.get(incident_id)))


def _second_person_roles(hub: Hub) -> set[str]:
    s = hub.settings
    return {*s.breach_import_confirmer_roles, *s.breach_reveal_approver_roles, Role.DPO.value}


def _reveal_out(r: BreachReveal, window_minutes: int) -> RevealOut:
    until = aware(r.decided_at) + timedelta(minutes=window_minutes) if r.status == "approved" and r.decided_at else None
    return RevealOut(
        id=r.id, incident_id=r.incident_id, row=r.row, status=r.status, reason=r.reason,  # type: ignore[arg-type]
        requested_by=r.requested_by, requested_at=aware(r.requested_at), decided_by=r.decided_by,
        decided_at=aware(r.decided_at) if r.decided_at else None,
        shown_at=aware(r.shown_at) if r.shown_at else None, usable_until=until,
    )  # fmt: skip


@router.get("/breach/pending", summary="What awaits a second person: staged imports, requests to see an identity")
def pending(hub: HubDep, actor: ActorDep) -> PendingOut:
    with act(hub, actor, "breach.pending.read") as session:
        if actor.account_id is None or actor.role_name not in _second_person_roles(hub):
            raise Denied(N_("a {role} has no breach decisions to take", role=word(ROLE, actor.role_name or "visitor")))
        incidents = Incidents(hub, session)
        imports = [i for i in incidents.staged() if i.created_by != actor.ref]
        # Requests to see an identity (and their reasons) only to those who may decide them: an operator who
        # confirms imports runs the platform and does not read why the DPO wants an identity.
        approver = actor.role_name in hub.settings.breach_reveal_approver_roles
        asked = incidents.reveals(statuses=("requested",)) if approver else []
        reveals = [r for r in asked if r.requested_by != actor.ref]
        record(session, actor=actor.ref, role=actor.role_name, action="breach.pending.read",
               detail={"imports": len(imports), "reveals": len(reveals)})  # fmt: skip
        window = hub.settings.breach_reveal_window_minutes
        return PendingOut(imports=[PendingImportOut(id=i.id, name=i.name, created_at=aware(i.created_at),
                                                    created_by=i.created_by, rows=i.counts.get("rows", 0))
                                   for i in imports],
                          reveals=[_reveal_out(r, window) for r in reveals])  # fmt: skip


@router.get("/breach/incidents", summary="Breach incidents (the DPO)")
def list_incidents(hub: HubDep, actor: ActorDep) -> list[IncidentOut]:
    with act(hub, actor, "breach.list") as session:
        _require_dpo(actor)
        rows = session.scalars(select(BreachIncident).order_by(BreachIncident.id)).all()
        record(session, actor=actor.ref, role=actor.role_name, action="breach.list", detail={"count": len(rows)})
        return [_incident_out(i) for i in rows]


@router.get("/breach/incidents/{incident_id}", summary="One incident: counts, categories, column mapping (the DPO)")
def get_incident(incident_id: int, hub: HubDep, actor: ActorDep) -> IncidentOut:
    with act(hub, actor, "breach.read", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incident = Incidents(hub, session).get(incident_id)
        record(session, actor=actor.ref, role=actor.role_name, action="breach.read", object=f"breach:{incident_id}")
        return _incident_out(incident)


@router.put("/breach/incidents/{incident_id}/mapping", summary="Correct the column mapping and match again (the DPO)")
def set_mapping(incident_id: int, body: MappingRequest, hub: HubDep, actor: ActorDep) -> ImportOut:
    with act(hub, actor, "breach.remap", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        return _import_out(incidents.remap(actor.ref, incidents.get(incident_id), dict(body.columns)))


@router.get("/breach/incidents/{incident_id}/review", summary="Rows in review: conflicts and ambiguous matches")
def review_queue(incident_id: int, hub: HubDep, actor: ActorDep) -> list[ReviewRow]:
    with act(hub, actor, "breach.review.read", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        rows = incidents.review_queue(incidents.get(incident_id))
        record(session, actor=actor.ref, role=actor.role_name, action="breach.review.read",
               object=f"breach:{incident_id}", detail={"count": len(rows)})  # fmt: skip
        return [ReviewRow(row=r.row, confidence=r.confidence, reason=r.reason, candidates=r.candidates,
                          decision=r.decision) for r in rows]  # fmt: skip


def compare_row(incident_id: int, row: int, hub: Hub, actor: Actor) -> ComparisonOut:
    """A row in review against its candidate, field by field (agreement and similarity, never a value of the
    leak or of the vault), recorded as ``breach.review.inspect`` with the row number."""
    with act(hub, actor, "breach.review.inspect", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        r, fields = incidents.compare(incidents.get(incident_id), row)
        record(session, actor=actor.ref, role=actor.role_name, action="breach.review.inspect",
               object=f"breach:{incident_id}", detail={"row": row})  # fmt: skip
        return ComparisonOut(
            row=r.row, confidence=r.confidence, reason=r.reason, candidates=r.candidates, decision=r.decision,
            fields=[FieldOut(column=f.column, header=f.header, field=f.field, agreement=f.agreement.value,
                             score=f.score, missing_on=f.missing_on) for f in fields],  # type: ignore[arg-type]
        )  # fmt: skip


@router.get(
    "/breach/incidents/{incident_id}/review/{row}",
    summary="A row in review against its candidate: which fields agree and how closely, never a value",
)
def review_row(incident_id: int, row: int, hub: HubDep, actor: ActorDep, response: Response) -> ComparisonOut:
    response.headers["Cache-Control"] = "no-store"
    return compare_row(incident_id, row, hub, actor)


@router.post(
    "/breach/incidents/{incident_id}/review/{row}/reveal",
    summary="Ask to see a row's candidate's vault identity, with a reason (the DPO; a second person decides)",
)
def request_reveal(incident_id: int, row: int, body: RevealRequest, hub: HubDep, actor: ActorDep) -> RevealOut:
    with act(hub, actor, "breach.reveal.request", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        reveal = incidents.request_reveal(actor, incidents.get(incident_id), row, body.reason)
        return _reveal_out(reveal, hub.settings.breach_reveal_window_minutes)


@router.get(
    "/breach/reveals",
    summary="Requests to see an identity: all of them to those who may decide them (breach_reveal_approver_roles), "
    "their own to the DPO who asked; never to an operator",
)
def list_reveals(hub: HubDep, actor: ActorDep, incident_id: int | None = None) -> list[RevealOut]:
    with act(hub, actor, "breach.reveal.list") as session:
        approver = actor.role_name in hub.settings.breach_reveal_approver_roles
        if actor.account_id is None or not (approver or actor.role is Role.DPO):
            raise Denied(
                N_("a {role} may not read requests to see an identity", role=word(ROLE, actor.role_name or "visitor"))
            )
        found = Incidents(hub, session).reveals(incident_id=incident_id)
        if not approver:  # the DPO, where the policy does not make them an approver: the requests they made
            found = [r for r in found if r.requested_by == actor.ref]
        record(session, actor=actor.ref, role=actor.role_name, action="breach.reveal.list",
               detail={"count": len(found)})  # fmt: skip
        return [_reveal_out(r, hub.settings.breach_reveal_window_minutes) for r in found]


@router.post(
    "/breach/reveals/{reveal_id}/decision",
    summary="Approve or refuse a request to see an identity (a second person, never the asker)",
)
def decide_reveal(reveal_id: int, body: RevealDecision, hub: HubDep, actor: ActorDep) -> RevealOut:
    with act(hub, actor, f"breach.reveal.{body.decision}", object=f"breach-reveal:{reveal_id}") as session:
        reveal = Incidents(hub, session).decide_reveal(actor, reveal_id, body.decision == "approve", body.reason)
        return _reveal_out(reveal, hub.settings.breach_reveal_window_minutes)


def show_identity(reveal_id: int, hub: Hub, actor: Actor) -> tuple[RevealOut, IdentityOut]:
    """The approved identity, once, to the asker; recorded (and alerted) before it is returned."""
    with act(hub, actor, "breach.reveal.show", object=f"breach-reveal:{reveal_id}") as session:
        _require_dpo(actor)
        reveal, i = Incidents(hub, session).show_reveal(actor, reveal_id)
        identity = IdentityOut(nir=i.nir, last_name=i.last_name, first_name=i.first_name, birth_date=i.birth_date,
                               address=i.address, postcode=i.postcode, commune=i.commune, phone=i.phone,
                               email=i.email)  # fmt: skip
        return _reveal_out(reveal, hub.settings.breach_reveal_window_minutes), identity


@router.post(
    "/breach/reveals/{reveal_id}/identity",
    summary="See an approved identity, once, within the window (the DPO who asked; not cached)",
)
def reveal_identity(reveal_id: int, hub: HubDep, actor: ActorDep, response: Response) -> IdentityOut:
    response.headers["Cache-Control"] = "no-store"
    return show_identity(reveal_id, hub, actor)[1]


@router.post("/breach/incidents/{incident_id}/review/{row}", summary="Confirm or reject a row in review")
def decide(incident_id: int, row: int, body: DecisionRequest, hub: HubDep, actor: ActorDep) -> ReviewRow:
    with act(hub, actor, "breach.review", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        r: BreachRow = incidents.decide(actor.ref, incidents.get(incident_id), row, body.decision == "confirm")
        return ReviewRow(row=r.row, confidence=r.confidence, reason=r.reason, candidates=r.candidates,
                         decision=r.decision)  # fmt: skip


@router.post("/breach/incidents/{incident_id}/notify", summary="Notify every matched person (the DPO)")
def notify(incident_id: int, hub: HubDep, actor: ActorDep) -> dict[str, int]:
    with act(hub, actor, "breach.notify", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        return {"people": incidents.notify(actor.ref, incidents.get(incident_id))}


@router.get("/breach/incidents/{incident_id}/report", summary="What a notification to the CNIL (GDPR art. 33) needs")
def report(incident_id: int, hub: HubDep, actor: ActorDep) -> dict[str, Any]:
    with act(hub, actor, "breach.report", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        out = incidents.report(incidents.get(incident_id))
        record(session, actor=actor.ref, role=actor.role_name, action="breach.report", object=f"breach:{incident_id}")
        return out


@router.post("/breach/outbox/send", summary="Send pending breach notices by e-mail (the DPO)")
def send_outbox(hub: HubDep, actor: ActorDep) -> dict[str, int]:
    with act(hub, actor, "breach.send") as session:
        _require_dpo(actor)
        return mail.send_pending(hub, session, actor.ref)


@router.post("/breach/sweep", summary="Destroy leaked files past their retention date (the DPO)")
def sweep_files(hub: HubDep, actor: ActorDep) -> dict[str, list[int]]:
    with act(hub, actor, "breach.sweep") as session:
        _require_dpo(actor)
        return {"destroyed": sweep.sweep(hub, session, actor.ref)}


# The citizen's side.


class NoticeOut(BaseModel):
    incident: str
    notified_at: datetime
    exposed: list[str]


class NoticesOut(BaseModel):
    notices: list[NoticeOut]
    what_to_do: list[str]
    stronger_check_until: datetime | None = Field(
        description="Until then, changing bank details, address or contact details needs a stronger identity check"
    )


class ContactDetails(RequestBody):
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)
    code: str | None = Field(default=None, max_length=40, description="The code of the letter sent by post")


def _person_index(session: Any, actor: Actor) -> bytes:
    if actor.role is not Role.CITIZEN or actor.account_id is None:
        raise Denied(N_("only a citizen signed in to their own account has breach notices"))
    account = session.get(Account, actor.account_id)
    if account is None or account.person_index is None:
        raise Denied(N_("this account is not linked to an insured person"))
    index: bytes = account.person_index
    return index


@router.get("/me/breach-notices", summary="Breaches you were found in: what was exposed, when, what to do")
def my_notices(hub: HubDep, actor: ActorDep) -> NoticesOut:
    with act(hub, actor, "breach.notices.read") as session:
        person_index = _person_index(session, actor)
        found = breach_citizen.notices(session, person_index)
        record(session, actor=actor.ref, role=actor.role_name, action="breach.notices.read",
               detail={"count": len(found)})  # fmt: skip
        return NoticesOut(
            notices=[NoticeOut(incident=n.incident, notified_at=n.notified_at, exposed=n.exposed) for n in found],
            what_to_do=[str(item) for item in breach_citizen.WHAT_TO_DO] if found else [],
            stronger_check_until=breach_citizen.stronger_check_until(session, person_index),
        )


@router.post(
    "/me/contact-details",
    summary="Change the e-mail and phone your notices go to (a postal code first, while a stronger check is due)",
    description="Stored sealed. A person named in a breach confirms with the code of a letter sent by post to the "
    "address held before the breach: without `code`, that letter is queued and nothing changes yet "
    "(`changed: false, letter: true`). The postal address itself is kept by your insurance fund's registry.",
)
def change_contact_details(body: ContactDetails, hub: HubDep, actor: ActorDep, request: Request) -> dict[str, Any]:
    from hygie.governance.citizens import Citizens

    source = client_address(request.client.host if request.client else None)
    with act(hub, actor, "citizen.contact_details") as session:
        _person_index(session, actor)
        if body.address:
            raise Invalid(N_("the postal address is kept by your insurance fund's registry: change it there"))
        done = Citizens(hub, session).change_contact(actor, email=body.email, phone=body.phone, code=body.code,
                                                     source=source)  # fmt: skip
        return {"changed": done.changed, "letter": done.letter}


# The anonymous check.


class KeyOut(BaseModel):
    suite: str
    public_key: str = Field(description="base64 of the server's OPRF public key (proofs are checked against it)")
    prefix_bits: int


class EvaluateRequest(RequestBody):
    blinded: str = Field(max_length=100, description="base64 of the blinded element (RFC 9497 BlindedElement)")


class EvaluateOut(BaseModel):
    evaluated: str = Field(
        description="base64 of the DLEQ proof (c then s, 32 bytes each) followed by the evaluated element (32 bytes)"
    )
    attempt: str = Field(description="Good for one lookup, for a short while")


class LookupRequest(RequestBody):
    attempt: str = Field(max_length=100)
    prefix: int = Field(ge=0, description="The first prefix_bits bits of the client's tag")


class LookupOut(BaseModel):
    tags: list[str] = Field(description="base64 tags of the bucket; the client looks for its own")


def _limiter(request: Request, hub: Hub) -> RateLimiter:
    """The check's limits (counted in the hub's database, whichever process answers)."""
    app_state = request.app.state
    if not hasattr(app_state, "breach_limiter"):
        s = hub.settings
        app_state.breach_limiter = RateLimiter(
            s.breach_check_per_ip_per_hour, 3600, s.breach_check_global_per_minute, 60
        )
    limiter: RateLimiter = app_state.breach_limiter
    return limiter


@router.get(
    "/breach-check/key",
    summary="The anonymous check's OPRF suite and public key (public)",
    openapi_extra={"x-hygie-audit": "not recorded: a public key, the same for everyone"},
)
def check_key(hub: HubDep) -> KeyOut:
    with hub.session() as session:
        evaluator = oprf.evaluator(session, hub.custody)
        session.commit()
    return KeyOut(suite=oprf.SUITE, public_key=base64.b64encode(evaluator.public_key.serialize()).decode(),
                  prefix_bits=hub.settings.breach_check_prefix_bits)  # fmt: skip


@router.post("/breach-check/evaluate", summary="Evaluate a blinded NIR (public, rate-limited)")
def check_evaluate(body: EvaluateRequest, request: Request, hub: HubDep) -> EvaluateOut:
    limiter = _limiter(request, hub)
    try:
        limiter.hit(hub, client_address(request.client.host if request.client else None))
    except RateLimited as exc:
        # The record says that a check was refused, not who asked: no address, nothing from the body.
        record_now(hub.session, actor=ANONYMOUS.ref, action="breach.check.evaluate", outcome=Outcome.DENIED,
                   detail={"reason": "rate limit", "retry_after": exc.retry_after})  # fmt: skip
        raise HTTPException(429, exc.message, headers={"Retry-After": str(exc.retry_after)}) from None
    with act(hub, ANONYMOUS, "breach.check.evaluate") as session:
        try:
            blinded = ristretto.BlindedInput.deserialize(base64.b64decode(body.blinded, validate=True))
        except (ValueError, binascii.Error):
            raise Invalid(N_("'blinded' must be the base64 of a ristretto255 element")) from None
        evaluated = oprf.evaluator(session, hub.custody).evaluate(blinded).serialize()
        record(session, actor=ANONYMOUS.ref, action="breach.check.evaluate")
    # Granted once the act is committed (its own transaction: on SQLite the act's would block it), for any process.
    attempt = secrets.token_urlsafe(24)
    grant_attempt(hub, attempt, ATTEMPT_SECONDS)
    return EvaluateOut(evaluated=base64.b64encode(evaluated).decode(), attempt=attempt)


@router.post("/breach-check/lookup", summary="The tags of one bucket, for one evaluated attempt (public)")
def check_lookup(body: LookupRequest, request: Request, hub: HubDep) -> LookupOut:
    with act(hub, ANONYMOUS, "breach.check.lookup") as session:
        if not redeem_attempt(hub, body.attempt):  # its own transaction, before this one writes: one use, anywhere
            raise Unauthenticated(N_("evaluate first (POST /breach-check/evaluate): each attempt allows one lookup"))
        if body.prefix >= 2**hub.settings.breach_check_prefix_bits:
            raise Invalid(N_("'prefix' has {bits} bits", bits=hub.settings.breach_check_prefix_bits))
        tags = session.scalars(select(BreachCheckTag.tag).where(BreachCheckTag.prefix == body.prefix)).all()
        # The prefix itself is not recorded: few bits, keyed, but derived from a NIR all the same.
        record(session, actor=ANONYMOUS.ref, action="breach.check.lookup")
        return LookupOut(tags=sorted(base64.b64encode(t).decode() for t in tags))
