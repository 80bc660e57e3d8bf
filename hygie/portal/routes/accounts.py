"""Sign-in, sessions, API tokens and account management."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from sqlalchemy import select

from hygie.audit import record
from hygie.governance.accounts import ANONYMOUS, Accounts
from hygie.governance.acts import act
from hygie.governance.errors import Denied
from hygie.governance.models import Account, ApiToken
from hygie.governance.policy import Role
from hygie.portal.deps import ActorDep, HubDep, bearer

router = APIRouter(tags=["accounts"])


class LoginRequest(BaseModel):
    username: str = Field(max_length=80)
    password: str = Field(max_length=200)
    totp: str | None = Field(default=None, max_length=10, description="Second factor; required but for citizens.")


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


class MeOut(AccountOut):
    scopes: list[str]
    via: str


class TokenRequest(BaseModel):
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


class NewAccountRequest(BaseModel):
    username: str = Field(min_length=1, max_length=80)
    role: Role
    password: str = Field(min_length=1, max_length=200)
    organisation: str | None = Field(default=None, max_length=200)


class NewAccountOut(BaseModel):
    account: AccountOut
    totp_uri: str | None = Field(description="otpauth:// URI for the person's authenticator app; shown once.")


def account_out(a: Account) -> AccountOut:
    return AccountOut(
        id=a.id, username=a.username, role=Role(a.role), organisation=a.organisation, disabled=a.disabled,
        created_at=a.created_at,
    )  # fmt: skip


@router.post("/auth/login", summary="Sign in: password, and a TOTP code for every role but citizen")
def login(body: LoginRequest, hub: HubDep) -> SessionOut:
    with act(hub, ANONYMOUS, "auth.login") as session:
        token, auth, account = Accounts(session, hub.custody, hub.settings).login(
            body.username, body.password, body.totp
        )
        return SessionOut(token=token, expires_at=auth.expires_at, account_id=account.id, role=Role(account.role))


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


@router.post("/accounts", summary="Create an account (the DPO: any staff role; an operator: researchers)")
def create_account(body: NewAccountRequest, hub: HubDep, actor: ActorDep) -> NewAccountOut:
    with act(hub, actor, "account.create") as session:
        if body.role == Role.CITIZEN:
            raise Denied("citizens enrol themselves (POST /citizens/enrol)")
        created = Accounts(session, hub.custody, hub.settings).create(
            actor, username=body.username, role=body.role, password=body.password, organisation=body.organisation
        )
        return NewAccountOut(account=account_out(created.account), totp_uri=created.totp_uri)


@router.get("/accounts", summary="Staff accounts (DPO, operators, auditors)")
def list_accounts(hub: HubDep, actor: ActorDep) -> list[AccountOut]:
    with act(hub, actor, "account.list") as session:
        if actor.role not in (Role.DPO, Role.OPERATOR, Role.AUDITOR):
            raise Denied(f"a {actor.role_name} may not list accounts")
        rows = session.scalars(select(Account).where(Account.role != Role.CITIZEN.value).order_by(Account.id))
        out = [account_out(a) for a in rows]
        record(session, actor=actor.ref, role=actor.role_name, action="account.list", detail={"count": len(out)})
        return out


@router.post("/accounts/{account_id}/disable", summary="Disable an account")
def disable_account(account_id: int, hub: HubDep, actor: ActorDep) -> AccountOut:
    with act(hub, actor, "account.disable", object=f"account:{account_id}") as session:
        return account_out(Accounts(session, hub.custody, hub.settings).set_disabled(actor, account_id, True))


@router.post("/accounts/{account_id}/enable", summary="Enable (and unlock) an account")
def enable_account(account_id: int, hub: HubDep, actor: ActorDep) -> AccountOut:
    with act(hub, actor, "account.enable", object=f"account:{account_id}") as session:
        return account_out(Accounts(session, hub.custody, hub.settings).set_disabled(actor, account_id, False))
