# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Control of spending over the API: every act of the control pages, and the two listings that leave a project.

Leads found by rules (run them, read a run's leads with their evidence), lifting a lead's pseudonym (ask with a
reason, the second person's list and decision, the requester's one showing), and the improper-payment rate (draw a
sample, designate trained reviewers, the review queue, one sampled claim, a reviewer's decision, release an
estimate). Leads and estimates are never merged: leads found by rules are not an estimate of improper payments.

Each route calls the service function its page calls (:mod:`hygie.control.leads`, :mod:`~hygie.control.lifting`,
:mod:`~hygie.control.sample`, :mod:`~hygie.control.review`): the data gate, the two-person checks, the disclosure
rules and the record live there; the routes only translate HTTP. The listings of runs and estimates answer a
project's researchers and the roles that oversee it; everything that reads the view answers its members only; the
operator receives no project's outputs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from hygie.control import leads as leads_service
from hygie.control import lifting, review, sample
from hygie.control.leads import CLAIMS_SHOWN, run_counts
from hygie.control.review import headline, released
from hygie.control.rules import RULES
from hygie.control.sample import RateEstimate
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep

router = APIRouter(tags=["control"])
PROJECT = "/projects/{project_id}/control"
SAMPLE = PROJECT + "/samples/{sample_id}"

RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,40}$")]


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


def _estimate(e: RateEstimate) -> EstimateOut:
    return EstimateOut(
        sample_id=e.sample_id, at=e.computed_at, statement=headline(e), rate=e.rate, low=e.low, high=e.high,
        reviewed=e.reviewed, drawn=e.drawn, claims=e.claims, improper_amount=e.improper_amount,
        amount_low=e.amount_low, amount_high=e.amount_high,
    )  # fmt: skip


@router.get(
    PROJECT + "/runs", summary="The project's control runs, newest first: lead counts per rule, never the leads"
)
def list_runs(project_id: int, hub: HubDep, actor: ActorDep) -> list[RunOut]:
    return [RunOut(run=r.id, at=r.run_at, view_generation=r.view_generation, leads=r.leads)
            for r in run_counts(hub, actor, project_id)]  # fmt: skip


@router.get(
    PROJECT + "/estimates", summary="Improper-payment estimates released from the project's samples, newest first"
)
def list_estimates(project_id: int, hub: HubDep, actor: ActorDep) -> list[EstimateOut]:
    return [_estimate(e) for e in released(hub, actor, project_id)]


# -- leads found by rules ---------------------------------------------------------------------------------------


class RunRequest(RequestBody):
    rules: list[RuleName] | None = Field(
        default=None,
        max_length=20,
        description=f"Rules to run ({', '.join(RULES)}); the default ones when omitted. An unknown name is refused "
        "(422) with the list of rules.",
    )


class RunDone(BaseModel):
    run: int
    at: datetime
    view_generation: int
    rules: list[str]
    leads: dict[str, int] = Field(
        description="Leads found per rule. The runner is a member who reads the leads themselves (GET .../leads)."
    )


class LiftOut(BaseModel):
    """A request to lift a lead's pseudonym as its requester sees it: its state, never an identity."""

    id: int
    lead_id: int
    subject_kind: str = Field(description="Whose pseudonym: 'beneficiary' or 'provider'.")
    status: str = Field(description="requested, approved (see it: POST .../lifts/{id}/identity), refused or shown.")
    requested_at: datetime


class LeadOut(BaseModel):
    id: int
    rule: str
    subject_kind: str = Field(description="'beneficiary' or 'provider'.")
    subject: str = Field(description="The subject's project pseudonym (never an identifier).")
    provider: str | None = Field(description="The provider's project pseudonym, where the lead names one.")
    numbers: dict[str, Any] = Field(description="The numbers that fired the rule.")
    claims: list[int] = Field(description=f"Claims in cause, by project claim key: the first {CLAIMS_SHOWN}.")
    claims_total: int = Field(description="How many claims are in cause.")


class LeadsOut(BaseModel):
    project_id: int
    run: int | None = Field(description="The run read (the newest by default); null when none has run yet.")
    at: datetime | None
    view_generation: int | None
    leads: list[LeadOut] = Field(description="By rule, strongest first within a rule.")
    lifts: list[LiftOut] = Field(description="The caller's own requests to lift a pseudonym in this project.")


class LiftRequestBody(RequestBody):
    reason: str = Field(max_length=2_000, description="Why the investigation needs the identity (20 characters or "
                        "more); recorded, read by the second person.")  # fmt: skip
    provider: bool = Field(default=False, description="Lift the provider a beneficiary's lead names, not its subject.")


class PendingLiftOut(BaseModel):
    """A request awaiting a second person: who asked and why, never the pseudonym nor an identity."""

    id: int
    project_id: int
    lead_id: int
    subject_kind: str
    requested_by: str
    reason: str
    requested_at: datetime


class LiftDecisionBody(RequestBody):
    decision: Literal["approve", "refuse"]
    reason: str = Field(max_length=2_000, description="Why (20 characters or more); recorded.")


class LiftDecided(BaseModel):
    id: int
    status: str
    decided_at: datetime | None


class IdentityOut(BaseModel):
    """The identity behind an approved request: a provider's number, or a beneficiary's identity from the vault."""

    lift_id: int
    subject_kind: str
    pseudonym: str
    provider_number: str | None
    nir: str | None
    last_name: str | None
    first_name: str | None
    birth_date: str | None


def _lift(lift: lifting.LiftRequest) -> LiftOut:
    return LiftOut(id=lift.id, lead_id=lift.lead_id, subject_kind=lift.subject_kind, status=lift.status,
                   requested_at=lift.requested_at)  # fmt: skip


@router.post(PROJECT + "/runs", summary="Run the rules over the project's view (its members); the leads are stored")
def run_rules(project_id: int, hub: HubDep, actor: ActorDep, body: RunRequest | None = None) -> RunDone:
    done = leads_service.run(hub, actor, project_id, body.rules if body else None)
    return RunDone(run=done.id, at=done.run_at, view_generation=done.view_generation, rules=done.rules,
                   leads=done.counts)  # fmt: skip


@router.get(PROJECT + "/leads", summary="A run's leads with their evidence, people by project pseudonym (its members)")
def read_leads(
    project_id: int,
    hub: HubDep,
    actor: ActorDep,
    run: Annotated[int | None, Query(description="A run of the project; the newest when omitted.")] = None,
) -> LeadsOut:
    found = leads_service.leads(hub, actor, project_id, run)
    # The caller's own requests, read once the project's gate has let them through (as the leads page does).
    mine = lifting.mine(hub, actor, project_id)
    return LeadsOut(
        project_id=found.project.id,
        run=found.run.id if found.run else None,
        at=found.run.run_at if found.run else None,
        view_generation=found.run.view_generation if found.run else None,
        leads=[
            LeadOut(id=lead.id, rule=lead.rule, subject_kind=lead.subject_kind, subject=lead.subject,
                    provider=lead.provider, numbers=lead.evidence.get("numbers", {}),
                    claims=list(lead.evidence.get("claims", []))[:CLAIMS_SHOWN],
                    claims_total=int(lead.evidence.get("claims_total", 0)))
            for rule in RULES
            for lead in found.by_rule.get(rule, [])
        ],
        lifts=[_lift(lift) for lift in mine],
    )  # fmt: skip


@router.post(
    PROJECT + "/leads/{lead_id}/lift",
    summary="Ask to lift a lead's pseudonym, with a reason; a second person decides (GET /control/lifts)",
)
def request_lift(project_id: int, lead_id: int, body: LiftRequestBody, hub: HubDep, actor: ActorDep) -> LiftOut:
    return _lift(lifting.request(hub, actor, lead_id, body.reason, provider=body.provider, project_id=project_id))


@router.get("/control/lifts", summary="Requests to lift a pseudonym awaiting a second person (who may approve them)")
def pending_lifts(hub: HubDep, actor: ActorDep) -> list[PendingLiftOut]:
    return [
        PendingLiftOut(id=p.id, project_id=p.project_id, lead_id=p.lead_id, subject_kind=p.subject_kind,
                       requested_by=p.requested_by, reason=p.reason, requested_at=p.requested_at)
        for p in lifting.pending(hub, actor)
    ]  # fmt: skip


@router.post(
    "/control/lifts/{lift_id}/decision",
    summary="Approve or refuse a request to lift a pseudonym (a second person: never the requester nor their lineage)",
)
def decide_lift(lift_id: int, body: LiftDecisionBody, hub: HubDep, actor: ActorDep) -> LiftDecided:
    decided = lifting.decide(hub, actor, lift_id, body.decision == "approve", body.reason)
    return LiftDecided(id=decided.id, status=decided.status, decided_at=decided.decided_at)


@router.post(
    PROJECT + "/lifts/{lift_id}/identity",
    summary="See the identity behind an approved request: the requester, once, within the window (not cached)",
)
def lifted_identity(project_id: int, lift_id: int, hub: HubDep, actor: ActorDep, response: Response) -> IdentityOut:
    response.headers["Cache-Control"] = "no-store"
    i = lifting.show(hub, actor, lift_id, project_id=project_id)
    return IdentityOut(lift_id=lift_id, subject_kind=i.subject_kind, pseudonym=i.pseudonym,
                       provider_number=i.provider_number, nir=i.nir, last_name=i.last_name, first_name=i.first_name,
                       birth_date=i.birth_date)  # fmt: skip


# -- the improper-payment rate ------------------------------------------------------------------------------------


class SampleOut(BaseModel):
    id: int
    drawn_at: datetime
    view_generation: int
    drawn: int = Field(description="Claims drawn.")
    reviewed: int = Field(description="Claims reviewed so far.")


class ReviewerOut(BaseModel):
    account_id: int
    username: str | None = None
    training: str | None


class SamplesOut(BaseModel):
    samples: list[SampleOut]
    reviewers: list[ReviewerOut] = Field(description="The project's trained claim reviewers.")


class DesignateBody(RequestBody):
    account_id: int = Field(description="A researcher member of the project, other than its requester.")
    training: str = Field(max_length=300, description="What training they had (10 to 300 characters, no names).")


class QueueItemOut(BaseModel):
    claim_key: int
    stratum: str
    amount: float = Field(description="Amount paid (EUR).")
    decision: str | None = Field(description="proper, improper, or null while awaiting review.")
    reason: str | None
    error_amount: float | None


class QueueOut(BaseModel):
    sample_id: int
    reviewed: int
    claims: list[QueueItemOut] = Field(description="Awaiting review first.")


class ClaimOut(BaseModel):
    claim_key: int
    rows: list[dict[str, Any]] = Field(
        description="The claim's rows of the project's view (approved columns; people and providers by pseudonym)."
    )


class ClaimDecisionBody(RequestBody):
    decision: Literal["proper", "improper"]
    reason: str | None = Field(default=None, max_length=40,
                               description=f"Improper claims only, one of: {', '.join(review.REASONS)}.")  # fmt: skip
    error_amount: float | None = Field(default=None, allow_inf_nan=False,
                                       description="Improper claims only: the amount paid in error (EUR), above 0 and "
                                       "at most the amount paid.")  # fmt: skip


class ReviewOut(BaseModel):
    claim_key: int
    decision: str
    reason: str | None
    error_amount: float | None
    reviewed_at: datetime | None


@router.get(PROJECT + "/samples", summary="The project's samples with their progress, and its trained claim reviewers")
def list_samples(project_id: int, hub: HubDep, actor: ActorDep) -> SamplesOut:
    seen = review.overview(hub, actor, project_id)
    return SamplesOut(
        samples=[SampleOut(id=i.sample.id, drawn_at=i.sample.drawn_at, view_generation=i.sample.view_generation,
                           drawn=i.drawn, reviewed=i.reviewed) for i in seen.samples],
        reviewers=[ReviewerOut(account_id=r.account_id, username=r.username, training=r.training)
                   for r in seen.reviewers],
    )  # fmt: skip


@router.post(PROJECT + "/samples", summary="Draw a stratified random sample of the view's paid claims (seed recorded)")
def draw_sample(project_id: int, hub: HubDep, actor: ActorDep) -> SampleOut:
    drawn = sample.draw(hub, actor, project_id)
    return SampleOut(id=drawn.id, drawn_at=drawn.drawn_at, view_generation=drawn.view_generation,
                     drawn=sum(int(s["drawn"]) for s in drawn.strata.values()), reviewed=0)  # fmt: skip


@router.post(PROJECT + "/reviewers", summary="Designate a member as a trained claim reviewer (the project's requester)")
def designate_reviewer(project_id: int, body: DesignateBody, hub: HubDep, actor: ActorDep) -> ReviewerOut:
    row = review.designate(hub, actor, project_id, body.account_id, body.training)
    return ReviewerOut(account_id=row.account_id, training=row.training)


@router.get(SAMPLE + "/claims", summary="A sample's review queue (its trained reviewers, never who drew it)")
def review_queue(project_id: int, sample_id: int, hub: HubDep, actor: ActorDep) -> QueueOut:
    q = review.queue(hub, actor, sample_id, project_id=project_id)
    return QueueOut(sample_id=q.sample_id, reviewed=q.reviewed, claims=[
        QueueItemOut(claim_key=i.claim_key, stratum=i.stratum, amount=i.amount, decision=i.decision, reason=i.reason,
                     error_amount=i.error_amount) for i in q.items])  # fmt: skip


@router.get(SAMPLE + "/claims/{claim_key}", summary="One sampled claim as the project's view holds it (its reviewers)")
def sampled_claim(project_id: int, sample_id: int, claim_key: int, hub: HubDep, actor: ActorDep) -> ClaimOut:
    detail = review.claim_detail(hub, actor, sample_id, claim_key, project_id=project_id)
    return ClaimOut(claim_key=detail["claim_key"], rows=detail["rows"])


@router.post(
    SAMPLE + "/claims/{claim_key}/decision",
    summary="A reviewer's decision on a sampled claim: proper, or improper with a reason and the amount in error",
)
def decide_claim(
    project_id: int, sample_id: int, claim_key: int, body: ClaimDecisionBody, hub: HubDep, actor: ActorDep
) -> ReviewOut:
    done = review.decide(hub, actor, sample_id, claim_key, body.decision, reason=body.reason,
                         error_amount=body.error_amount, project_id=project_id)  # fmt: skip
    return ReviewOut(claim_key=done.claim_key, decision=str(done.decision), reason=done.reason,
                     error_amount=done.error_amount, reviewed_at=done.reviewed_at)  # fmt: skip


@router.post(
    SAMPLE + "/estimate",
    summary="Estimate the improper-payment rate from the sample's reviews and release it (enough claims reviewed)",
)
def release_estimate(project_id: int, sample_id: int, hub: HubDep, actor: ActorDep) -> EstimateOut:
    return _estimate(review.release(hub, actor, sample_id, project_id=project_id))
