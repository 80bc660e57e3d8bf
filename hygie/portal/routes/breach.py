"""Breach response: the DPO's incidents, the citizen's notices, and the anonymous "am I in it?" check.

No response and no event carries a value from a leak: rows are numbered, people are counted, columns are
named by their header and mapped field.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import select
from voprf import ristretto

from hygie.audit import Outcome, record, record_now
from hygie.breach import citizen as breach_citizen
from hygie.breach import mail, oprf, sweep
from hygie.breach.mapping import Field as LeakField
from hygie.breach.models import BreachCheckTag, BreachIncident, BreachRow
from hygie.breach.ratelimit import RateLimited, RateLimiter
from hygie.breach.reader import UnreadableFile
from hygie.breach.service import Incidents, Result, aware
from hygie.config import Settings
from hygie.governance.accounts import ANONYMOUS, Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Denied, Invalid, Unauthenticated
from hygie.governance.models import Account
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.identity.vault import Identity
from hygie.portal.deps import ActorDep, HubDep

router = APIRouter(tags=["breach"])

ATTEMPT_SECONDS = 120


def _require_dpo(actor: Actor) -> None:
    if actor.role is not Role.DPO or Scope.GOVERNANCE not in actor.scopes:
        raise Denied(f"a {actor.role_name or 'visitor'} may not handle breach incidents (the DPO does)")


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
    status: str
    created_at: datetime
    retain_until: datetime
    destroyed_at: datetime | None
    counts: dict[str, int]
    categories: dict[str, int] = Field(description="People matched per category of data exposed")
    mapping: list[ColumnOut]


class MappingRequest(BaseModel):
    columns: dict[int, LeakField] = Field(description="Column number (from 0) → field, for the columns to correct")


class ReviewRow(BaseModel):
    row: int
    confidence: float
    reason: str
    candidates: int
    decision: str | None


class DecisionRequest(BaseModel):
    decision: Literal["confirm", "reject"]


def _incident_out(i: BreachIncident) -> IncidentOut:
    return IncidentOut(
        id=i.id, name=i.name, status=i.status, created_at=aware(i.created_at), retain_until=aware(i.retain_until),
        destroyed_at=aware(i.destroyed_at) if i.destroyed_at else None, counts=i.counts, categories=i.categories,
        mapping=[ColumnOut(**m) for m in i.mapping],
    )  # fmt: skip


def _import_out(result: Result) -> ImportOut:
    return ImportOut(**result.as_json())


@router.post("/breach/incidents", summary="Import a leaked file (CSV, TSV, XLSX, JSON) and match it (the DPO)")
async def import_incident(
    hub: HubDep,
    actor: ActorDep,
    file: Annotated[UploadFile | None, File(description="The leaked file")] = None,
    incident: Annotated[str | None, Form(description="A name for the incident")] = None,
) -> ImportOut:
    blob = await file.read(upload_limit(hub.settings) + 1) if file is not None else None
    return import_blob(hub, actor, incident, file.filename if file is not None else None, blob)[1]


def upload_limit(settings: Settings) -> int:
    return settings.breach_upload_max_mib * 2**20


def import_blob(
    hub: Hub, actor: Actor, incident: str | None, file_name: str | None, blob: bytes | None
) -> tuple[int, ImportOut]:
    """The import behind ``POST /breach/incidents`` and the DPO's page: the new incident's id and the summary."""
    with act(hub, actor, "breach.import") as session:
        _require_dpo(actor)
        if blob is None or not incident:
            raise Invalid("send the leaked file as multipart field 'file' and its name as field 'incident'")
        if len(blob) > upload_limit(hub.settings):
            raise Invalid(
                f"the file is larger than {hub.settings.breach_upload_max_mib} MiB: import it with "
                "`hygie breach import`"
            )
        try:
            result = Incidents(hub, session).import_file(actor.ref, incident, file_name or "leak", blob)
        except UnreadableFile as exc:  # its message names the format tried, never the file's content
            raise Invalid(str(exc)) from None
        return result.incident.id, _import_out(result)


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


def inspect_row(
    incident_id: int, row: int, hub: Hub, actor: Actor
) -> tuple[ReviewRow, list[tuple[ColumnOut, str]], Identity | None]:
    """For the DPO's page only (no endpoint: the values must stay out of programs' logs and caches): a row in
    review, its cells from the kept file and its candidate's vault identity, recorded as ``breach.review.inspect``
    with the row number only."""
    with act(hub, actor, "breach.review.inspect", object=f"breach:{incident_id}") as session:
        _require_dpo(actor)
        incidents = Incidents(hub, session)
        r, cells = incidents.leaked_row(incidents.get(incident_id), row)
        identity = hub.vault(session).identities_of([r.person_index]).get(r.person_index) if r.person_index else None
        record(session, actor=actor.ref, role=actor.role_name, action="breach.review.inspect",
               object=f"breach:{incident_id}", detail={"row": row})  # fmt: skip
        out = ReviewRow(row=r.row, confidence=r.confidence, reason=r.reason, candidates=r.candidates,
                        decision=r.decision)  # fmt: skip
        return out, [(ColumnOut(**c.as_json()), value) for c, value in cells], identity


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


class ContactDetails(BaseModel):
    email: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    address: str | None = Field(default=None, max_length=300)


def _person_index(session: Any, actor: Actor) -> bytes:
    if actor.role is not Role.CITIZEN or actor.account_id is None:
        raise Denied("only a citizen signed in to their own account has breach notices")
    account = session.get(Account, actor.account_id)
    if account is None or account.person_index is None:
        raise Denied("this account is not linked to an insured person")
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
            what_to_do=breach_citizen.WHAT_TO_DO if found else [],
            stronger_check_until=breach_citizen.stronger_check_until(session, person_index),
        )


@router.post("/me/contact-details", summary="Change your contact details (refused while a stronger check is due)")
def change_contact_details(body: ContactDetails, hub: HubDep, actor: ActorDep) -> dict[str, Any]:
    with act(hub, actor, "citizen.contact_details") as session:
        person_index = _person_index(session, actor)
        until = breach_citizen.stronger_check_until(session, person_index)
        if until is not None:
            # The stronger check (docs/breach.md): FranceConnect+ (eIDAS substantial) or a one-time code sent by
            # post to the address on file before the breach. Neither exists here yet, so the change is refused.
            raise Denied(
                f"stronger identity check required until {until.date().isoformat()}: your data was in a "
                "leak, so this change needs a check this portal cannot do yet; contact your insurance fund"
            )
        record(session, actor=actor.ref, role=actor.role_name, action="citizen.contact_details",
               detail={"fields": sorted(k for k, v in body.model_dump().items() if v), "stored": False})  # fmt: skip
        return {"changed": False, "detail": "contact details are kept by your insurance fund's registry; this portal "
                "records the request but does not change them yet"}  # fmt: skip


# The anonymous check.


class KeyOut(BaseModel):
    suite: str
    public_key: str = Field(description="base64 of the server's OPRF public key (proofs are checked against it)")
    prefix_bits: int


class EvaluateRequest(BaseModel):
    blinded: str = Field(max_length=100, description="base64 of the blinded element (RFC 9497 BlindedElement)")


class EvaluateOut(BaseModel):
    evaluated: str = Field(
        description="base64 of the DLEQ proof (c then s, 32 bytes each) followed by the evaluated element (32 bytes)"
    )
    attempt: str = Field(description="Good for one lookup, for a short while")


class LookupRequest(BaseModel):
    attempt: str = Field(max_length=100)
    prefix: int = Field(ge=0, description="The first prefix_bits bits of the client's tag")


class LookupOut(BaseModel):
    tags: list[str] = Field(description="base64 tags of the bucket; the client looks for its own")


def _state(request: Request, hub: Hub) -> tuple[RateLimiter, dict[str, float]]:
    app_state = request.app.state
    if not hasattr(app_state, "breach_limiter"):
        s = hub.settings
        app_state.breach_limiter = RateLimiter(
            s.breach_check_per_ip_per_hour, 3600, s.breach_check_global_per_minute, 60
        )
        app_state.breach_attempts = {}
    return app_state.breach_limiter, app_state.breach_attempts


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
    limiter, attempts = _state(request, hub)
    try:
        limiter.hit(request.client.host if request.client else "unknown")
    except RateLimited as exc:
        # The record says that a check was refused, not who asked: no address, nothing from the body.
        record_now(hub.session, actor=ANONYMOUS.ref, action="breach.check.evaluate", outcome=Outcome.DENIED,
                   detail={"reason": "rate limit", "retry_after": exc.retry_after})  # fmt: skip
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    with act(hub, ANONYMOUS, "breach.check.evaluate") as session:
        try:
            blinded = ristretto.BlindedInput.deserialize(base64.b64decode(body.blinded, validate=True))
        except (ValueError, binascii.Error):
            raise Invalid("'blinded' must be the base64 of a ristretto255 element") from None
        evaluated = oprf.evaluator(session, hub.custody).evaluate(blinded).serialize()
        now = time.monotonic()
        for token, expiry in list(attempts.items()):
            if expiry < now:
                del attempts[token]
        attempt = secrets.token_urlsafe(24)
        attempts[attempt] = now + ATTEMPT_SECONDS
        record(session, actor=ANONYMOUS.ref, action="breach.check.evaluate")
        return EvaluateOut(evaluated=base64.b64encode(evaluated).decode(), attempt=attempt)


@router.post("/breach-check/lookup", summary="The tags of one bucket, for one evaluated attempt (public)")
def check_lookup(body: LookupRequest, request: Request, hub: HubDep) -> LookupOut:
    _, attempts = _state(request, hub)
    with act(hub, ANONYMOUS, "breach.check.lookup") as session:
        expiry = attempts.pop(body.attempt, None)
        if expiry is None or expiry < time.monotonic():
            raise Unauthenticated("evaluate first (POST /breach-check/evaluate): each attempt allows one lookup")
        if body.prefix >= 2**hub.settings.breach_check_prefix_bits:
            raise Invalid(f"'prefix' has {hub.settings.breach_check_prefix_bits} bits")
        tags = session.scalars(select(BreachCheckTag.tag).where(BreachCheckTag.prefix == body.prefix)).all()
        # The prefix itself is not recorded: few bits, keyed, but derived from a NIR all the same.
        record(session, actor=ANONYMOUS.ref, action="breach.check.lookup")
        return LookupOut(tags=sorted(base64.b64encode(t).decode() for t in tags))
