"""Citizens: enrolment and objection to the use of their data."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hygie.governance.accounts import ANONYMOUS
from hygie.governance.acts import act
from hygie.governance.citizens import Citizens, OptOutState
from hygie.portal.deps import ActorDep, HubDep

router = APIRouter(tags=["citizens"])


class EnrolRequest(BaseModel):
    nir: str = Field(min_length=13, max_length=21, description="Your social security number (sent in the body only)")
    last_name: str = Field(min_length=1, max_length=100)
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


class EnrolOut(BaseModel):
    account_id: int
    username: str


class OptOutOut(BaseModel):
    objecting: bool = Field(description="True while you object to the use of your data in projects.")
    since: datetime | None


def _out(state: OptOutState) -> OptOutOut:
    return OptOutOut(objecting=state.objecting, since=state.since)


@router.post("/citizens/enrol", summary="Create your citizen account (demo identity check against the vault)")
def enrol(body: EnrolRequest, hub: HubDep) -> EnrolOut:
    with act(hub, ANONYMOUS, "citizen.enrol") as session:
        created = Citizens(hub, session).enrol(
            nir=body.nir, last_name=body.last_name, birth_date=body.birth_date, username=body.username,
            password=body.password,
        )  # fmt: skip
        return EnrolOut(account_id=created.account.id, username=created.account.username)


@router.get("/me/opt-out", summary="Whether you object to the use of your data")
def opt_out_state(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out.read") as session:
        return _out(Citizens(hub, session).opt_out_state(actor))


@router.post("/me/opt-out", summary="Object to the use of your data in projects")
def opt_out(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out") as session:
        return _out(Citizens(hub, session).object(actor))


@router.delete("/me/opt-out", summary="Withdraw your objection")
def withdraw_opt_out(hub: HubDep, actor: ActorDep) -> OptOutOut:
    with act(hub, actor, "citizen.opt_out.withdraw") as session:
        return _out(Citizens(hub, session).withdraw(actor))
