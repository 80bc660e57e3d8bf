# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens: enrolment (a letter by post), objection to the use of their data, their own audit entries."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from hygie.audit import record
from hygie.governance.accounts import ANONYMOUS
from hygie.governance.acts import act
from hygie.governance.citizens import LETTER_ANSWER, Citizens, OptOutState
from hygie.governance.throttle import client_address
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep
from hygie.portal.routes.audit_search import FullEntryOut, PublicEntryOut
from hygie.portal.transparency import MY_ENTRIES_MAX, my_entries

router = APIRouter(tags=["citizens"])


class LetterRequest(RequestBody):
    nir: str = Field(min_length=13, max_length=21, description="Your social security number (sent in the body only)")
    last_name: str = Field(min_length=1, max_length=100)
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")


class LetterOut(BaseModel):
    detail: str = Field(description="Always the same, whether or not the details match our records.")


class ActivateRequest(RequestBody):
    code: str = Field(min_length=16, max_length=40, description="The code printed on the activation letter")
    nir: str = Field(min_length=13, max_length=21, description="Your social security number (sent in the body only)")
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class EnrolOut(BaseModel):
    account_id: int
    username: str


class OptOutOut(BaseModel):
    objecting: bool = Field(description="True while you object to the use of your data in projects.")
    since: datetime | None
    takes_effect: str = Field(description="When your choice applies to projects' data.")


def _out(state: OptOutState) -> OptOutOut:
    return OptOutOut(objecting=state.objecting, since=state.since, takes_effect=state.effect)


def source_of(request: Request) -> str:
    return client_address(request.client.host if request.client else None)


@router.post(
    "/citizens/enrol",
    summary="Ask for an activation letter by post",
    description="Knowing a NIR, a name and a birth date does not open an account (that data leaks): if the details "
    "match our records, a letter with a one-time activation code goes to the postal address we hold (for a person "
    "named in a data breach, the address held before it). The answer is always the same. Limited per source (and "
    "IPv6 /48) and for all sources together (429, nothing done). Past the limit per NIR the answer is 429 whether "
    "or not the details match, and a letter is still sent if they match and none is on its way. Open the account "
    "with the code at POST /citizens/activate.",
    responses={429: {"description": "Too many requests (from this source, for this NIR, or in all): Retry-After"}},
)
def request_letter(body: LetterRequest, hub: HubDep, request: Request) -> LetterOut:
    with act(hub, ANONYMOUS, "citizen.letter.request") as session:
        citizens = Citizens(hub, session)
        limited = citizens.request_letter(nir=body.nir, last_name=body.last_name, birth_date=body.birth_date,
                                          source=source_of(request))  # fmt: skip
    if limited is not None:  # after the commit: the request was handled all the same
        raise limited
    return LetterOut(detail=LETTER_ANSWER)


@router.post(
    "/citizens/activate",
    summary="Open your citizen account with the code of your activation letter",
    description="The one-time code printed on the letter, with the NIR it was sent for. Every refusal reads the "
    "same. The code is checked first: a right code is never refused by a limit. Wrong codes are counted per source "
    "and per person: past a limit, a wrong code gets 429. A letter then tells the person the account was opened.",
)
def activate(body: ActivateRequest, hub: HubDep, request: Request) -> EnrolOut:
    with act(hub, ANONYMOUS, "citizen.enrol") as session:
        created = Citizens(hub, session).activate(code=body.code, nir=body.nir, username=body.username,
                                                  password=body.password, source=source_of(request))  # fmt: skip
        return EnrolOut(account_id=created.account.id, username=created.account.username)


@router.get("/me/opt-out", summary="Whether you object to the use of your data")
def opt_out_state(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out.read") as session:
        return _out(Citizens(hub, session).opt_out_state(actor))


@router.post(
    "/me/opt-out",
    summary="Object to the use of your data in projects",
    description="Takes effect at once: every new analysis of a running project leaves your data out, as does every "
    "extraction built afterwards. Results already published stay published.",
)
def opt_out(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out") as session:
        return _out(Citizens(hub, session).object(actor))


@router.delete(
    "/me/opt-out",
    summary="Withdraw your objection",
    description="At once where a project's extraction still holds your data; otherwise from its next rebuild.",
)
def withdraw_opt_out(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out.withdraw") as session:
        return _out(Citizens(hub, session).withdraw(actor))


class MyEntryOut(FullEntryOut):
    proof: list[str] = Field(description="Inclusion proof (RFC 9162 audit path, base64) up to the checkpoint.")


class MyDataUseOut(PublicEntryOut):
    proof: list[str] = Field(description="Inclusion proof (RFC 9162 audit path, base64) up to the checkpoint.")


class MyEntriesOut(BaseModel):
    total: int = Field(description="Events your account did, all told (newest first, a page at a time).")
    offset: int
    limit: int
    checkpoint: str = Field(
        description="The signed checkpoint (C2SP note) every proof leads to, with the cosignatures (C2SP "
        "tlog-cosignature) outside witnesses gave it so far."
    )
    size: int = Field(description="Its tree size.")
    entries: list[MyEntryOut] = Field(description="Your own entries, with their events and salts.")
    data_uses: list[MyDataUseOut] = Field(
        description="Public entries of the view builds of projects that used your data (details withheld while "
        "disclosure is delayed are left out)."
    )
    cosigned_checkpoint: str | None = Field(
        default=None,
        description="The newest checkpoint cosigned by the required number of outside witnesses (C2SP note with "
        "their cosignature lines), null if none yet: your entries below its size are in the tree they vouch for.",
    )
    cosigned_consistency: list[str] | None = Field(
        default=None, description="Consistency proof (RFC 9162, base64) from cosigned_checkpoint to checkpoint."
    )


@router.get("/me/audit-entries", summary="Your own entries in the audit log, with salts and inclusion proofs")
def my_audit_entries(
    hub: HubDep, actor: ActorDep, offset: int = Query(0, ge=0), limit: int = Query(20, ge=1, le=MY_ENTRIES_MAX)
) -> MyEntriesOut:
    with act(hub, actor, "citizen.audit_entries") as session:
        found = my_entries(hub, session, actor, offset=offset, limit=limit)
        record(session, actor=actor.ref, role=actor.role_name, action="citizen.audit_entries",
               detail={"entries": len(found.entries), "data_uses": len(found.data_uses)})  # fmt: skip
    return MyEntriesOut(
        total=found.total, offset=offset, limit=limit, checkpoint=found.checkpoint.cosigned_note,
        size=found.checkpoint.size,
        cosigned_checkpoint=None if found.cosigned is None else found.cosigned.cosigned_note,
        cosigned_consistency=found.cosigned_consistency,
        entries=[MyEntryOut.model_validate(e) for e in found.entries],
        data_uses=[MyDataUseOut.model_validate(e) for e in found.data_uses],
    )  # fmt: skip
