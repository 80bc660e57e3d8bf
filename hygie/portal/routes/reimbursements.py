# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A citizen's own reimbursements (care date, act, amount paid, amount reimbursed)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from hygie.governance.acts import act
from hygie.governance.reimbursements import my_reimbursements
from hygie.portal.deps import ActorDep, HubDep, answer

router = APIRouter(tags=["citizens"])


class ReimbursementOut(BaseModel):
    care_date: date | None = Field(description="Start of care (EXE_SOI_DTD); null where the claim has no date.")
    act_code: int | None = Field(description="PRS_NAT_REF, in the IR_NAT_V code list.")
    act_label: str | None = Field(description="The code list's label, when it knows the code.")
    quantity: Decimal | None = Field(description="PRS_ACT_QTE; negative on a regularisation.")
    amount_paid: Decimal | None = Field(description="PRS_PAI_MNT, euros: the whole expense.")
    amount_reimbursed: Decimal | None = Field(description="BSE_REM_MNT, euros: what the insurer reimbursed.")


class ReimbursementsOut(BaseModel):
    total: int = Field(description="Rows in all; page through them with offset and limit.")
    offset: int
    limit: int
    reimbursements: list[ReimbursementOut]


@router.get(
    "/me/reimbursements", summary="My reimbursements (a citizen), newest care first", response_model=ReimbursementsOut
)
def reimbursements(
    hub: HubDep, actor: ActorDep, offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=200)
) -> Response:
    with act(hub, actor, "citizen.reimbursements") as session:
        page = my_reimbursements(hub, session, actor, offset=offset, limit=limit)
        return answer(
            ReimbursementsOut(
                total=page.total,
                offset=page.offset,
                limit=limit,
                reimbursements=[ReimbursementOut(**r.__dict__) for r in page.rows],
            )
        )
