# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Control of spending over the API: a control project's runs (lead counts per rule, as any count leaving a
project) and its released improper-payment estimates. Two routes, never merged: leads found by rules are not an
estimate of improper payments.

Both answer a project's researchers and the roles that oversee it; the operator receives no project's outputs
(:func:`hygie.control.review.released`, :func:`hygie.control.leads.run_counts`). The leads themselves, the samples
and the reviews are the portal's pages, behind the project's data gate.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hygie.control.leads import run_counts
from hygie.control.review import headline, released
from hygie.portal.deps import ActorDep, HubDep

router = APIRouter(prefix="/projects/{project_id}/control", tags=["control"])


class RunOut(BaseModel):
    run: int
    at: datetime
    view_generation: int
    leads: dict[str, int | None] = Field(
        description="Leads per rule: rounded to the disclosure base, null when fewer than the project's threshold."
    )


class EstimateOut(BaseModel):
    sample_id: int
    at: datetime
    statement: str = Field(description="'estimated improper payments: X % (95 % CI a–b), from n reviewed claims'")
    rate: float = Field(description="Estimated share of the paid amount that was improper (0 to 1).")
    low: float
    high: float
    reviewed: int
    drawn: int
    claims: int = Field(description="Paid claims in the sampling frame.")
    improper_amount: float
    amount_low: float
    amount_high: float


@router.get("/runs", summary="The project's control runs, newest first: lead counts per rule, never the leads")
def list_runs(project_id: int, hub: HubDep, actor: ActorDep) -> list[RunOut]:
    return [RunOut(run=r.id, at=r.run_at, view_generation=r.view_generation, leads=r.leads)
            for r in run_counts(hub, actor, project_id)]  # fmt: skip


@router.get("/estimates", summary="Improper-payment estimates released from the project's samples, newest first")
def list_estimates(project_id: int, hub: HubDep, actor: ActorDep) -> list[EstimateOut]:
    return [
        EstimateOut(
            sample_id=e.sample_id,
            at=e.computed_at,
            statement=headline(e),
            rate=e.rate,
            low=e.low,
            high=e.high,
            reviewed=e.reviewed,
            drawn=e.drawn,
            claims=e.claims,
            improper_amount=e.improper_amount,
            amount_low=e.amount_low,
            amount_high=e.amount_high,
        )
        for e in released(hub, actor, project_id)
    ]
