# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Sign-in, sessions, API tokens and account management."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy import select

from hygie.audit import record
from hygie.governance.accounts import ANONYMOUS, Accounts
from hygie.governance.acts import act
from hygie.governance.errors import Denied
from hygie.governance.models import Account, ApiToken
from hygie.governance.policy import Role
from hygie.governance.throttle import SignInThrottle, client_address
from hygie.i18n import N_
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep, bearer
from hygie.vocabulary import ROLE, word

router = APIRouter(tags=["accounts"])


class LoginRequest(RequestBody):
    username: str = Field(max_length=80)
    password: str = Field(max_length=200)
    totp: str | None = Field(default=None, max_length=10, description="Second factor; required but for citizens.")
    device: str | None = Field(
        default=None, min_length=20, max_length=100,
        description="A citizen's device token (random, kept by the client): a person whose data was in a leak may "
        "need, from a device not seen before, a code we send by post (`step_up_code`); until then the sign-in gets "
        "the same 401 as any refusal.",
    )  # fmt: skip
    step_up_code: str | None = Field(
        default=None, max_length=40, description="The code of the letter sent by post for a new device."
    )


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    account_id: int
    role: Role


class AccountOut(BaseModel):
    id: int
    username: str
    role: Role
    organisation: str | None
    disabled: bool
    created_at: datetime
    status: str = Field(
        description="pending_confirmation (a second person must confirm it), pending_enrolment (its holder has "
        "not yet enrolled from the mailed code) or active."
    )
    created_by: str
    confirmed_by: str | None


class MeOut(AccountOut):
    scopes: list[str]
    via: str


class TokenRequest(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=4)
    days: int = Field(ge=1, le=3650)
    project_id: int | None = None


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="Shown once; only its hash is kept.")
    scopes: list[str]
    project_id: int | None
    expires_at: datetime


class TokenInfo(BaseModel):
    id: int
    name: str
    scopes: list[str]
    project_id: int | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class NewAccountRequest(RequestBody):
    username: str = Field(min_length=1, max_length=80)
    role: Role
    email: str = Field(
        max_length=320, description="The holder's work e-mail address (kept sealed): their enrolment code goes there."
    )
    organisation: str | None = Field(default=None, max_length=200)
    # Accepted only to be refused by name (403, recorded): whoever creates an account never sets its password. Not
    # in the schema; any other unknown field is refused like everywhere (422).
    password: SkipJsonSchema[str | None] = Field(default=None, max_length=200, exclude=True)


class NewAccountOut(BaseModel):
    account: AccountOut
    enrolment_mail: str | None = Field(
        description="'sent' when the one-time enrolment code was mailed to the holder, 'failed' when the mail "
        "server refused it (send it again with POST /accounts/{id}/enrolment-mail), null while the account waits "
        "for a second person's confirmation. Never the code, never a credential."
    )


class ConfirmRequest(RequestBody):
    email: str = Field(
        max_length=320,
        description="The holder's work e-mail address, as the organisation's directory lists it (not as the "
        "creator gave it): it must match the address given at creation.",
    )


class EnrolRequest(RequestBody):
    code: str = Field(max_length=100, description="The one-time code from the enrolment mail.")
    password: str = Field(max_length=200, description="The password the holder chooses.")


class EnrolOut(BaseModel):
    account_id: int
    username: str
    role: Role
    totp_uri: str = Field(description="otpauth:// URI for the holder's authenticator app; shown once, here.")
    totp_secret: str = Field(description="The same secret in base32, to type in by hand; shown once, here.")


def account_out(a: Account) -> AccountOut:
    return AccountOut(
        id=a.id, username=a.username, role=Role(a.role), organisation=a.organisation, disabled=a.disabled,
        created_at=a.created_at, status=a.status, created_by=a.created_by, confirmed_by=a.confirmed_by,
    )  # fmt: skip


@router.post(
    "/auth/login",
    summary="Sign in: password, and a TOTP code for every role but citizen",
    description="Every refusal is the same 401 (unknown username, disabled account, wrong password, wrong, missing "
    "or already used code, and a new device of a person whose data was in a leak: a code then goes by post to them, "
    "to send as `step_up_code` with the same `device`). Failures slow their source down: past a few, it gets 429 "
    "with Retry-After.",
    responses={401: {"description": "Refused (always the same answer)"},
               429: {"description": "Too many failures from this client address: wait Retry-After seconds"}},
)  # fmt: skip
def login(body: LoginRequest, hub: HubDep, request: Request) -> SessionOut:
    throttle: SignInThrottle = request.app.state.signin_throttle

    source = client_address(request.client.host if request.client else None)

    def attempt() -> SessionOut:
        from hygie.governance.citizens import sign_in

        token, auth, account = sign_in(hub, username=body.username, password=body.password, totp=body.totp,
                                       device=body.device, source=source, step_up_code=body.step_up_code)  # fmt: skip
        return SessionOut(token=token, expires_at=auth.expires_at, account_id=account.id, role=Role(account.role))

    return throttle.guarded(hub, source, body.username, attempt)


@router.post("/auth/logout", summary="Close the current session")
def logout(
    hub: HubDep, actor: ActorDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> dict[str, str]:
    with act(hub, actor, "auth.logout") as session:
        assert credentials is not None
        Accounts(session, hub.custody, hub.settings).logout(credentials.credentials)
    return {"status": "signed out"}


@router.get("/me", summary="Who am I: account, role and the scopes of this session or token")
def me(hub: HubDep, actor: ActorDep) -> MeOut:
    with act(hub, actor, "account.me") as session:
        assert actor.account_id is not None
        account = Accounts(session, hub.custody, hub.settings).get(actor.account_id)
        record(session, actor=actor.ref, role=actor.role_name, action="account.me")
        return MeOut(**account_out(account).model_dump(), scopes=sorted(actor.scopes), via=actor.via)


@router.post("/me/tokens", summary="Mint a scoped API token that expires (from a signed-in session)")
def mint_token(body: TokenRequest, hub: HubDep, actor: ActorDep) -> TokenOut:
    with act(hub, actor, "token.mint", project_id=body.project_id) as session:
        token, row = Accounts(session, hub.custody, hub.settings).mint_token(
            actor, name=body.name, scopes=body.scopes, days=body.days, project_id=body.project_id
        )
        return TokenOut(id=row.id, token=token, scopes=row.scopes, project_id=row.project_id, expires_at=row.expires_at)


@router.get("/me/tokens", summary="My API tokens (never their values)")
def my_tokens(hub: HubDep, actor: ActorDep) -> list[TokenInfo]:
    with act(hub, actor, "token.list") as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.account_id == actor.account_id).order_by(ApiToken.id))
        out = [
            TokenInfo(id=r.id, name=r.name, scopes=r.scopes, project_id=r.project_id, created_at=r.created_at,
                      expires_at=r.expires_at, revoked_at=r.revoked_at)
            for r in rows
        ]  # fmt: skip
        record(session, actor=actor.ref, role=actor.role_name, action="token.list")
        return out


@router.delete("/me/tokens/{token_id}", summary="Revoke one of my API tokens")
def revoke_token(token_id: int, hub: HubDep, actor: ActorDep) -> dict[str, str]:
    with act(hub, actor, "token.revoke", object=f"token:{token_id}") as session:
        Accounts(session, hub.custody, hub.settings).revoke_token(actor, token_id)
    return {"status": "revoked"}


@router.post(
    "/accounts",
    summary="Create a staff account (the DPO: any staff role; an operator: researchers). It needs a second "
    "person's confirmation, then its holder enrols from a code mailed to them; the creator never gets a credential",
)
def create_account(body: NewAccountRequest, hub: HubDep, actor: ActorDep) -> NewAccountOut:
    with act(hub, actor, "account.create") as session:
        if body.role == Role.CITIZEN:
            raise Denied(N_("citizens enrol themselves (POST /citizens/enrol)"))
        created = Accounts(session, hub.custody, hub.settings).create(
            actor,
            username=body.username,
            role=body.role,
            # Passed on only to be refused by the service, which is where the rule lives.
            password=body.password,
            email=body.email,
            organisation=body.organisation,
        )
        return NewAccountOut(account=account_out(created.account), enrolment_mail=created.enrolment_mail)


@router.post(
    "/accounts/enrol",
    summary="Enrol as the holder of a new staff account: the one-time code from the mail, a password of your "
    "choosing; returns your second factor, once",
)
def enrol_account(body: EnrolRequest, hub: HubDep) -> EnrolOut:
    with act(hub, ANONYMOUS, "account.enrol") as session:
        done = Accounts(session, hub.custody, hub.settings).enrol(body.code, body.password)
        return EnrolOut(account_id=done.account.id, username=done.account.username, role=Role(done.account.role),
                        totp_uri=done.totp_uri, totp_secret=done.totp_secret)  # fmt: skip


@router.post(
    "/accounts/{account_id}/confirm",
    summary="Confirm, as a second person, the creation of a staff account (re-typing the holder's work e-mail "
    "address from their organisation's directory); the enrolment code is then mailed to the holder",
)
def confirm_account(account_id: int, body: ConfirmRequest, hub: HubDep, actor: ActorDep) -> NewAccountOut:
    with act(hub, actor, "account.confirm", object=f"account:{account_id}") as session:
        done = Accounts(session, hub.custody, hub.settings).confirm(actor, account_id, email=body.email)
        return NewAccountOut(account=account_out(done.account), enrolment_mail=done.enrolment_mail)


@router.post(
    "/accounts/{account_id}/enrolment-mail",
    summary="Mail a new enrolment code to the holder of an account waiting for enrolment (the old code stops working)",
)
def resend_enrolment(account_id: int, hub: HubDep, actor: ActorDep) -> NewAccountOut:
    with act(hub, actor, "account.enrolment_mail", object=f"account:{account_id}") as session:
        done = Accounts(session, hub.custody, hub.settings).resend_enrolment(actor, account_id)
        return NewAccountOut(account=account_out(done.account), enrolment_mail=done.enrolment_mail)


@router.get("/accounts", summary="Staff accounts and their status (DPO, operators, auditors); never a credential")
def list_accounts(hub: HubDep, actor: ActorDep) -> list[AccountOut]:
    with act(hub, actor, "account.list") as session:
        if actor.role not in (Role.DPO, Role.OPERATOR, Role.AUDITOR):
            raise Denied(N_("a {role} may not list accounts", role=word(ROLE, str(actor.role_name))))
        rows = session.scalars(select(Account).where(Account.role != Role.CITIZEN.value).order_by(Account.id))
        out = [account_out(a) for a in rows]
        record(session, actor=actor.ref, role=actor.role_name, action="account.list", detail={"count": len(out)})
        return out


@router.post("/accounts/{account_id}/disable", summary="Disable an account")
def disable_account(account_id: int, hub: HubDep, actor: ActorDep) -> AccountOut:
    with act(hub, actor, "account.disable", object=f"account:{account_id}") as session:
        return account_out(Accounts(session, hub.custody, hub.settings).set_disabled(actor, account_id, True))


@router.post(
    "/accounts/{account_id}/enable",
    summary="Enable a disabled account (one still waiting for its holder's enrolment needs a new code: "
    "POST /accounts/{id}/enrolment-mail)",
)
def enable_account(account_id: int, hub: HubDep, actor: ActorDep) -> AccountOut:
    with act(hub, actor, "account.enable", object=f"account:{account_id}") as session:
        return account_out(Accounts(session, hub.custody, hub.settings).set_disabled(actor, account_id, False))
