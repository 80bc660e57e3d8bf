# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The review queue of a sample, and the estimate released from it.

Who reviews: a researcher who is a member of the control project (so passes its data gate), whom the project's
requester designated as trained for claim review (:func:`designate`, recorded with what training they had), and
who did not draw the sample (:func:`decide` refuses the drawer: nobody both chooses the claims and judges them).
Each decision is recorded, in the transaction that stores it, before it is returned.

The estimate (:func:`release`) is computed from the reviewed claims by the stratified ratio estimator
(:mod:`hygie.control.estimate`) and released only when at least the project's disclosure threshold of claims has
been reviewed. It says "estimated improper payments", never "fraud", and is never added to leads detected by
rules (:mod:`hygie.control` keeps them in other tables and other pages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.audit import record
from hygie.control.estimate import EstimateError, StratumFrame, estimate_from_claims
from hygie.control.sample import (
    ClaimReviewer,
    ControlSample,
    RateEstimate,
    SampledClaim,
    gated_sample,
    require_control_project,
    require_output_reader,
)
from hygie.governance.accounts import Actor, Scope
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound
from hygie.governance.freetext import check_free_text
from hygie.governance.lineage import shared_lineage
from hygie.governance.models import Account, Project, ProjectMember
from hygie.governance.policy import CLAIM_KEY, Role
from hygie.governance.views import newest_ready, open_view
from hygie.hub import Hub
from hygie.i18n import N_, Message, term
from hygie.ingest.contract import CARE_TABLE, PSEUDONYM_COLUMN

PROPER, IMPROPER = "proper", "improper"

REASONS: dict[str, Message] = {
    "documentation-absente": N_("No supporting document provided"),
    "documentation-insuffisante": N_("Insufficient supporting document"),
    "non-justifie-medicalement": N_("Care not medically justified"),
    "erreur-cotation": N_("Coding or pricing error"),
    "doublon": N_("Care billed twice"),
    "non-eligible": N_("Beneficiary or provider not eligible"),
    "autre": N_("Other reason"),
}
"""Why a claim was improper (the CERT categories, in the insurer's words, French from the catalogue); the code is
what is stored and what the API takes."""

DECISION_LABELS: dict[str, Message] = {
    PROPER: term("claim review decision", "proper"),
    IMPROPER: term("claim review decision", "improper"),
}
"""A stored decision as a word of its vocabulary: "proper" in English, "conforme" in French."""


def _now() -> datetime:
    return datetime.now(UTC)


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _event(session: Session, actor: Actor, action: str, project: Project, obj: str, **detail: Any) -> None:
    record(
        session,
        actor=actor.ref,
        role=actor.role_name,
        action=action,
        object=obj,
        project_id=project.id,
        purpose=project.purpose,
        detail=detail,
    )


# -- trained reviewers ----------------------------------------------------------------------------------------


def designate(hub: Hub, actor: Actor, project_id: int, account_id: int, training: str) -> ClaimReviewer:
    """The project's requester designates a member researcher, other than themselves, as a trained claim reviewer."""
    with act(hub, actor, "control.reviewer.designate", object=f"project:{project_id}", project_id=project_id) as s:
        project = require_control_project(s, hub.settings, actor, project_id)
        if Scope.GOVERNANCE not in actor.scopes or project.requester_id != actor.account_id:
            raise Denied(
                N_("only the requester of control project {project} designates its claim reviewers", project=project_id)
            )
        if account_id == actor.account_id:
            raise Denied(N_("nobody designates themselves as a claim reviewer"))
        assert actor.account_id is not None
        if shared_lineage(s, account_id, actor.account_id):
            # One person's accounts (one created the other, or both come from one creator) are one person: the
            # requester may not make their own second account the judge of the claims they will draw.
            raise Denied(
                N_(
                    "account {account} and yours were created by the same person (or one created the other): a "
                    "claim reviewer must be independent of the project's requester",
                    account=account_id,
                )
            )
        training = check_free_text("training", training.strip())
        if not 10 <= len(training) <= 300:
            raise Invalid(N_("training: say in 10 to 300 characters what training the reviewer had"))
        member = s.scalar(
            select(Account)
            .join(ProjectMember, ProjectMember.account_id == Account.id)
            .where(ProjectMember.project_id == project_id, Account.id == account_id)
        )
        if member is None or member.role != Role.RESEARCHER or member.disabled:
            raise Invalid(
                N_(
                    "account {account} is not a researcher member of project {project}: add them first",
                    account=account_id,
                    project=project_id,
                )
            )
        if s.scalar(
            select(ClaimReviewer.id).where(
                ClaimReviewer.project_id == project_id, ClaimReviewer.account_id == account_id
            )
        ):
            raise Conflict(
                N_(
                    "account {account} is already a claim reviewer of project {project}",
                    account=account_id,
                    project=project_id,
                )
            )
        assert actor.account_id is not None
        row = ClaimReviewer(
            project_id=project_id,
            account_id=account_id,
            training=training,
            designated_by=actor.account_id,
            designated_at=_now(),
        )
        s.add(row)
        s.flush()
        _event(s, actor, "control.reviewer.designate", project, f"account:{account_id}", training=training)
        s.expunge(row)
        return row


def _require_reviewer(
    session: Session, hub: Hub, actor: Actor, sample_id: int, project_id: int | None
) -> tuple[ControlSample, Project]:
    sample, project = gated_sample(session, hub.settings, actor, sample_id, project_id)
    trained = session.scalar(
        select(ClaimReviewer.id).where(
            ClaimReviewer.project_id == project.id, ClaimReviewer.account_id == actor.account_id
        )
    )
    if trained is None:
        raise Denied(N_("only the trained claim reviewers of project {project} review its samples", project=project.id))
    if sample.drawn_by == actor.account_id:
        raise Denied(N_("you drew sample {sample}: its claims are reviewed by someone else", sample=sample.id))
    assert actor.account_id is not None
    if shared_lineage(session, actor.account_id, sample.drawn_by):
        raise Denied(
            N_(
                "your account and the one that drew sample {sample} were created by the same person (or one created "
                "the other): its claims are reviewed by someone independent of who chose them",
                sample=sample.id,
            )
        )
    return sample, project


# -- the queue ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    claim_key: int
    stratum: str
    care_type: str
    amount: float
    decision: str | None
    reason: str | None
    error_amount: float | None


@dataclass(frozen=True)
class Queue:
    sample_id: int
    project_id: int
    items: list[QueueItem]

    @property
    def reviewed(self) -> int:
        return sum(1 for i in self.items if i.decision is not None)


def queue(hub: Hub, actor: Actor, sample_id: int, *, project_id: int | None = None) -> Queue:
    """A sample's claims for one of its reviewers, pending first; the read is recorded before it is returned."""
    with act(hub, actor, "control.review.queue", object=f"control-sample:{sample_id}") as s:
        _, project = _require_reviewer(s, hub, actor, sample_id, project_id)
        rows = s.scalars(
            select(SampledClaim)
            .where(SampledClaim.sample_id == sample_id)
            .order_by(SampledClaim.decision.is_not(None), SampledClaim.stratum, SampledClaim.claim_key)
        ).all()
        items = [
            QueueItem(r.claim_key, r.stratum, r.care_type, r.amount, r.decision, r.reason, r.error_amount) for r in rows
        ]
        _event(s, actor, "control.review.queue", project, f"control-sample:{sample_id}", claims=len(items))
        return Queue(sample_id, project.id, items)


def claim_detail(
    hub: Hub, actor: Actor, sample_id: int, claim_key: int, *, project_id: int | None = None
) -> dict[str, Any]:
    """The sampled claim's row of the project's view (its approved, pseudonymised columns), for its reviewer."""
    with act(hub, actor, "control.review.claim", object=f"control-sample:{sample_id}") as s:
        sample, project = _require_reviewer(s, hub, actor, sample_id, project_id)
        _in_sample(s, sample_id, claim_key)
        view = newest_ready(s, project.id)
        if view is None or view.generation != sample.view_generation:
            raise Conflict(
                N_(
                    "the project's view was rebuilt since sample {sample} was drawn: its claims' details are no "
                    "longer reachable (draw a new sample)",
                    sample=sample_id,
                )
            )
        con = open_view(hub, s, project)
        try:
            result = con.execute(f"SELECT * FROM {CARE_TABLE} WHERE {CLAIM_KEY} = ?", [claim_key])
            names = [d[0] for d in result.description or []]
            rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        finally:
            con.close()
        # Providers shown by their project pseudonym, as leads name them: the number in clear would undo the
        # two-person lifting of a provider's pseudonym (hygie.control.lifting) for anyone reviewing one claim.
        from hygie.control.leads import provider_pseudonyms

        for column in ("PFS_EXE_NUM", "PFS_PRE_NUM"):
            numbers = sorted({str(r[column]) for r in rows if r.get(column) is not None})
            if numbers:
                named = dict(zip(numbers, provider_pseudonyms(hub, project.id, numbers), strict=True))
                for r in rows:
                    if r.get(column) is not None:
                        r[column] = named[str(r[column])]
        _event(s, actor, "control.review.claim", project, f"control-sample:{sample_id}", claim_key=claim_key)
        return {"claim_key": claim_key, "rows": [{k: _plain(v) for k, v in r.items()} for r in rows]}


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str) else str(value)


def _in_sample(session: Session, sample_id: int, claim_key: int, *, lock: bool = False) -> SampledClaim:
    query = select(SampledClaim).where(SampledClaim.sample_id == sample_id, SampledClaim.claim_key == claim_key)
    # Locked for a decision (PostgreSQL; SQLite serialises writers): two reviewers deciding one claim at once act
    # one after the other, and the second is told it is already reviewed.
    claim = session.scalar(query.with_for_update() if lock else query)
    if claim is None:
        raise NotFound(
            N_(
                "claim {claim} is not in sample {sample}: only sampled claims are reviewed",
                claim=claim_key,
                sample=sample_id,
            )
        )
    return claim


def decide(
    hub: Hub,
    actor: Actor,
    sample_id: int,
    claim_key: int,
    decision: str,
    *,
    reason: str | None = None,
    error_amount: float | None = None,
    project_id: int | None = None,
) -> SampledClaim:
    """Mark a sampled claim proper, or improper with a reason code and the amount paid in error."""
    with act(hub, actor, "control.review.decide", object=f"control-sample:{sample_id}") as s:
        _, project = _require_reviewer(s, hub, actor, sample_id, project_id)
        claim = _in_sample(s, sample_id, claim_key, lock=True)
        if claim.decision is not None:
            raise Conflict(
                N_(
                    "claim {claim} of sample {sample} is already reviewed ({decision})",
                    claim=claim_key,
                    sample=sample_id,
                    decision=DECISION_LABELS.get(claim.decision, claim.decision),
                )
            )
        if decision == PROPER:
            if reason is not None or error_amount not in (None, 0):
                raise Invalid(N_("a proper claim has no reason and no amount in error"))
            reason, error = None, 0.0
        elif decision == IMPROPER:
            if reason not in REASONS:
                raise Invalid(N_("an improper claim needs a reason, one of: {reasons}", reasons=", ".join(REASONS)))
            if error_amount is None or not 0 < error_amount <= claim.amount:
                raise Invalid(
                    N_(
                        "the amount in error must be above 0 and at most the amount paid ({amount:.2f} EUR)",
                        amount=claim.amount,
                    )
                )
            error = round(float(error_amount), 2)
        else:
            raise Invalid(N_("decision is {proper} or {improper}", proper=repr(PROPER), improper=repr(IMPROPER)))
        claim.decision, claim.reason, claim.error_amount = decision, reason, error
        claim.reviewed_by, claim.reviewed_at = actor.account_id, _now()
        s.flush()
        _event(
            s,
            actor,
            "control.review.decide",
            project,
            f"control-sample:{sample_id}",
            claim_key=claim_key,
            decision=decision,
            reason=reason,
            error_amount=error,
        )
        s.expunge(claim)
        return claim


# -- the estimate ----------------------------------------------------------------------------------------------


def _frame(sample: ControlSample) -> list[StratumFrame]:
    return [
        StratumFrame(name, int(v["claims"]), float(v["amount"]), float(v["mean_square"]))
        for name, v in sorted(sample.strata.items())
    ]


def _require_enough_people(
    hub: Hub, session: Session, project: Project, sample: ControlSample, rows: Any, threshold: int
) -> None:
    """The threshold counts people, not claims: the reviewed claims, and the improper ones when there are any, must
    belong to at least ``threshold`` distinct people of the view, or the estimate (an improper amount expanded from
    one claim by its stratum's weight) would describe one person's care."""
    import pyarrow as pa

    view = newest_ready(session, project.id)
    if view is None or view.generation != sample.view_generation:
        raise Conflict(
            N_(
                "the project's view was rebuilt since sample {sample} was drawn: the people its claims belong to "
                "can no longer be counted (draw a new sample)",
                sample=sample.id,
            )
        )
    keys = pa.table({
        "claim": pa.array([int(r[3]) for r in rows], pa.int64()),
        "improper": pa.array([r[4] == IMPROPER for r in rows], pa.bool_()),
    })  # fmt: skip
    con = open_view(hub, session, project)
    try:
        con.register("_hygie_reviewed", keys)
        found = con.execute(
            f"SELECT count(DISTINCT c.{PSEUDONYM_COLUMN}), "
            f"count(DISTINCT CASE WHEN k.improper THEN c.{PSEUDONYM_COLUMN} END) "
            f"FROM {CARE_TABLE} c JOIN _hygie_reviewed k ON c.{CLAIM_KEY} = k.claim"
        ).fetchone()
    finally:
        con.close()
    people, improper_people = (int(found[0]), int(found[1])) if found else (0, 0)
    if people < threshold:
        raise Conflict(
            N_(
                "the reviewed claims belong to fewer than {threshold} people (the disclosure threshold): review more "
                "claims before releasing an estimate",
                threshold=threshold,
            )
        )
    if 0 < improper_people < threshold:
        raise Conflict(
            N_(
                "the claims found improper belong to fewer than {threshold} people (the disclosure threshold): an "
                "estimate would describe them; review more claims before releasing one",
                threshold=threshold,
            )
        )


def release(hub: Hub, actor: Actor, sample_id: int, *, project_id: int | None = None) -> RateEstimate:
    """Estimate the improper-payment rate from a sample's reviews and release it, if enough claims were reviewed.

    A project member computes it (passing the data gate); fewer reviewed claims than the project's disclosure
    threshold, or a stratum with fewer than two, and nothing is released (a clear, recorded refusal)."""
    with act(hub, actor, "control.estimate.release", object=f"control-sample:{sample_id}") as s:
        sample, project = gated_sample(s, hub.settings, actor, sample_id, project_id)
        reviewed_rows = s.execute(
            select(SampledClaim.stratum, SampledClaim.amount, SampledClaim.error_amount, SampledClaim.claim_key,
                   SampledClaim.decision)
            .where(SampledClaim.sample_id == sample_id, SampledClaim.decision.is_not(None))
        ).all()  # fmt: skip
        drawn = int(s.scalar(select(func.count()).where(SampledClaim.sample_id == sample_id)) or 0)
        threshold = max(project.threshold, hub.settings.disclosure_threshold)
        if len(reviewed_rows) < threshold:
            raise Conflict(
                N_(
                    "{reviewed} of {drawn} claims reviewed: an estimate is released from at least {threshold} "
                    "reviewed claims (the disclosure threshold)",
                    reviewed=len(reviewed_rows),
                    drawn=drawn,
                    threshold=threshold,
                )
            )
        _require_enough_people(hub, s, project, sample, reviewed_rows, threshold)
        reviewed: dict[str, list[tuple[float, float]]] = {}
        for stratum, amount, error, _, _ in reviewed_rows:
            reviewed.setdefault(stratum, []).append((float(amount), float(error or 0.0)))
        frame = _frame(sample)
        try:
            est = estimate_from_claims(frame, reviewed)
        except EstimateError as exc:
            raise Conflict(N_("no estimate yet: {problem}", problem=_said(exc))) from None
        assert actor.account_id is not None
        row = RateEstimate(
            sample_id=sample_id,
            computed_by=actor.account_id,
            computed_at=_now(),
            reviewed=est.reviewed,
            drawn=drawn,
            rate=float(est.rate),
            low=float(est.low),
            high=float(est.high),
            improper_amount=float(est.improper_amount),
            amount_low=float(est.amount_low),
            amount_high=float(est.amount_high),
            total_amount=float(sum(f.amount for f in frame)),
            claims=sum(f.claims for f in frame),
        )
        s.add(row)
        s.flush()
        _event(
            s,
            actor,
            "control.estimate.release",
            project,
            f"control-sample:{sample_id}",
            estimate=row.id,
            reviewed=row.reviewed,
            drawn=drawn,
            rate=row.rate,
            low=row.low,
            high=row.high,
            improper_amount=row.improper_amount,
        )
        s.expunge(row)
        return row


def headline(estimate: RateEstimate) -> str:
    """The one way the rate is stated (English, for the CLI and the API)."""
    return (
        f"estimated improper payments: {estimate.rate * 100:.2f} % (95 % CI {estimate.low * 100:.2f}–"
        f"{estimate.high * 100:.2f}), from {estimate.reviewed} reviewed claims"
    )


@dataclass(frozen=True)
class Person:
    account_id: int
    username: str
    training: str | None = None


@dataclass(frozen=True)
class Overview:
    project: Project
    samples: list[SampleOverview]
    reviewers: list[Person]
    """The trained claim reviewers of the project."""
    members: list[Person]
    """The project's researcher members (whom its requester may designate)."""


@dataclass(frozen=True)
class SampleOverview:
    sample: ControlSample
    drawn: int
    reviewed: int
    estimate: RateEstimate | None


def overview(hub: Hub, actor: Actor, project_id: int) -> Overview:
    """A project's samples with their progress and newest released estimate, and its claim reviewers: counts and
    released numbers only, for its researchers and the roles that oversee it (reviewers, DPO, auditors; never the
    operator, who receives no project's outputs). The strata's claim counts are for the researchers' page only."""
    with act(hub, actor, "control.estimate.read", object=f"project:{project_id}", project_id=project_id) as s:
        project = require_output_reader(s, actor, project_id)
        out = []
        samples = select(ControlSample).where(ControlSample.project_id == project_id).order_by(ControlSample.id)
        for sample in s.scalars(samples):
            counts = s.execute(
                select(func.count(), func.count(SampledClaim.decision)).where(SampledClaim.sample_id == sample.id)
            ).one()
            newest = s.scalars(
                select(RateEstimate)
                .where(RateEstimate.sample_id == sample.id)
                .order_by(RateEstimate.id.desc())
                .limit(1)
            ).first()
            out.append(SampleOverview(sample, int(counts[0]), int(counts[1]), newest))
        reviewers = [
            Person(a, u, t)
            for a, u, t in s.execute(
                select(ClaimReviewer.account_id, Account.username, ClaimReviewer.training)
                .join(Account, Account.id == ClaimReviewer.account_id)
                .where(ClaimReviewer.project_id == project_id)
                .order_by(ClaimReviewer.id)
            )
        ]
        members = [
            Person(a, u)
            for a, u in s.execute(
                select(Account.id, Account.username)
                .join(ProjectMember, ProjectMember.account_id == Account.id)
                .where(ProjectMember.project_id == project_id)
                .order_by(Account.id)
            )
        ]
        _event(s, actor, "control.estimate.read", project, f"project:{project_id}", samples=len(out))
        for item in out:
            s.expunge(item.sample)
            if item.estimate is not None:
                s.expunge(item.estimate)
        s.expunge(project)
        return Overview(project, out, reviewers, members)


def released(hub: Hub, actor: Actor, project_id: int) -> list[RateEstimate]:
    """The estimates released from a project's samples, newest first (released numbers only: they passed the
    threshold when released), for whoever sees the project's request and receives its outputs: its researchers and
    the roles that oversee it, never the operator nor the console. The read is recorded before it is returned."""
    with act(hub, actor, "control.estimate.read", object=f"project:{project_id}", project_id=project_id) as s:
        project = require_output_reader(s, actor, project_id)
        rows = list(
            s.scalars(
                select(RateEstimate)
                .join(ControlSample, ControlSample.id == RateEstimate.sample_id)
                .where(ControlSample.project_id == project_id)
                .order_by(RateEstimate.id.desc())
            )
        )
        _event(s, actor, "control.estimate.read", project, f"project:{project_id}", estimates=len(rows))
        for row in rows:
            s.expunge(row)
        return rows
