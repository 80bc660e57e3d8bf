# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Lifting a lead's pseudonym for an investigation: a recorded two-person decision, alerted to the DPO.

1. A member of the control project who may read its leads asks, for one lead, with a reason
   (``control.lift.request``, which the DPO's ``identity_reveal`` alert fires on).
2. A second person decides (``control.lift.approve`` / ``control.lift.refuse``): an account of a role in
   ``control_lift_approver_roles`` who answers for the control project (the DPO, or a reviewer whose approval of
   it stands), never the requester, never an account the requester created, nor one of the requester's creation
   lineage (:mod:`hygie.governance.lineage`). The approver sees no identity.
3. The requester alone, once, within ``control_lift_window_minutes`` of the approval, sees the identity
   (``control.lift.show``, recorded in the transaction that reads it, before it is returned; alerted too).

There is no other path from a lead to an identity: the identity is looked up inside :func:`show` only. A
beneficiary's project pseudonym is matched by re-keying the vault's hub pseudonyms (the project key is one way);
a provider's by pseudonymising the provider numbers of the project's view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.control.leads import VAULT_PAGE, ControlLead, ControlRun, provider_pseudonyms
from hygie.control.rules import BENEFICIARY
from hygie.control.sample import require_control_project
from hygie.db import Base
from hygie.db.sealed import SealedText
from hygie.governance.access import NotVisible, require_member
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied, GovernanceError, Invalid, NotFound
from hygie.governance.lineage import creator_id, shared_lineage
from hygie.governance.models import Account, Project, ProjectDecision, ProjectView
from hygie.governance.policy import Role
from hygie.governance.views import ViewError, open_view, rekey
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.ingest.contract import CARE_TABLE
from hygie.keys import HUB_PSEUDONYM_KEY
from hygie.vocabulary import LIFT_STATUS, word

MIN_REASON = 20
REQUESTED, APPROVED, REFUSED, SHOWN = "requested", "approved", "refused", "shown"
APPROVING = N_("approving the lifting of a pseudonym")
"""The act a second person does, as refusals name it ("{what} needs a second person ...")."""


class LiftRequest(Base):
    __tablename__ = "control_lift"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("control_lead.id"), nullable=False, index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), nullable=False)
    subject_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """'beneficiary' or 'provider': whose pseudonym is lifted (a duplicate's provider may be asked separately)."""
    subject: Mapped[str] = mapped_column(String(40), nullable=False)
    reason: Mapped[str] = mapped_column(SealedText("control_lift.reason"), nullable=False)
    """Sealed at rest, as a project's justification: it describes an investigation."""
    status: Mapped[str] = mapped_column(String(10), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(60), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_by: Mapped[str | None] = mapped_column(String(60), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(SealedText("control_lift.decision_reason"), nullable=True)
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class Lifted:
    """What an approved lift shows: a provider's number, or a beneficiary's identity from the vault."""

    subject_kind: str
    pseudonym: str
    provider_number: str | None = None
    nir: str | None = None
    last_name: str | None = None
    first_name: str | None = None
    birth_date: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _said(exc: Exception) -> str:
    """An exception's message as it was raised (a catalogued message keeps its identifier), not ``str(exc)``."""
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _reason(text: str, refusal: str) -> str:
    """``text`` stripped, or ``refusal`` (the whole sentence, a catalogued message) when it is too short."""
    if len(text.strip()) < MIN_REASON:
        raise Invalid(refusal)
    return text.strip()


def _gated_lead(
    session: Session, hub: Hub, actor: Actor, lead_id: int, project_id: int | None
) -> tuple[ControlLead, Project]:
    """The lead and its project, if ``actor`` passes the project's data gate for control.

    Whoever is not a member of the lead's project hears what they would of a missing lead ("no lead N"), never the
    number of the project it belongs to, as :func:`hygie.control.sample.gated_sample` does for samples. With
    ``project_id`` (an address that names both), that project's gate comes first and the lead is looked up in it."""
    lead = session.get(ControlLead, lead_id)
    if project_id is not None:
        project = require_control_project(session, hub.settings, actor, project_id)
        if lead is None or lead.project_id != project.id:
            raise NotFound(N_("no lead {lead}", lead=lead_id))
        return lead, project
    if lead is None:
        raise NotFound(N_("no lead {lead}", lead=lead_id))
    try:
        require_member(session, actor, lead.project_id)
    except GovernanceError:
        raise NotVisible(N_("no lead {lead}", lead=lead_id)) from None
    return lead, require_control_project(session, hub.settings, actor, lead.project_id)


def request(
    hub: Hub, actor: Actor, lead_id: int, reason: str, *, provider: bool = False, project_id: int | None = None
) -> LiftRequest:
    """Ask to lift the pseudonym of a lead's subject (or, with ``provider``, of the provider a beneficiary's lead
    names). Nothing is shown until a second person approves. ``project_id``: the project the caller names (the
    lead must be one of its leads)."""
    with act(hub, actor, "control.lift.request", object=f"control-lead:{lead_id}") as session:
        lead, project = _gated_lead(session, hub, actor, lead_id, project_id)
        why = _reason(
            reason,
            N_("a request to lift a pseudonym needs its reason, in at least {count} characters", count=MIN_REASON),
        )
        if provider and lead.provider is None:
            raise Invalid(N_("lead {lead} names no provider besides its subject", lead=lead_id))
        kind, subject = ("provider", lead.provider) if provider else (lead.subject_kind, lead.subject)
        assert subject is not None
        open_ = session.scalars(select(LiftRequest.id).where(
            LiftRequest.lead_id == lead_id, LiftRequest.subject == subject, LiftRequest.requested_by == actor.ref,
            LiftRequest.status.in_((REQUESTED, APPROVED)))).first()  # fmt: skip
        if open_ is not None:
            raise Conflict(N_("your request {lift} for this lead is still open: wait for its decision", lift=open_))
        lift = LiftRequest(lead_id=lead_id, project_id=project.id, subject_kind=kind, subject=subject, reason=why,
                           status=REQUESTED, requested_by=actor.ref, requested_at=_now())  # fmt: skip
        session.add(lift)
        session.flush()
        record(session, actor=actor.ref, role=actor.role_name, action="control.lift.request",
               object=f"control-lead:{lead_id}", project_id=project.id, purpose=project.purpose,
               detail={"lift": lift.id, "subject_kind": kind, "rule": lead.rule})  # fmt: skip
        session.flush()
        session.expunge(lift)
        return lift


def _second_person(session: Session, hub: Hub, actor: Actor, asker: str) -> None:
    roles = hub.settings.control_lift_approver_roles
    what = APPROVING
    if actor.account_id is None or actor.role is None or actor.role.value not in roles:
        raise Denied(N_("{what} needs a second person's account ({roles})", what=what, roles=", ".join(roles)))
    if actor.ref == asker:
        raise Denied(N_("{what} needs a second person: not the one who asked", what=what))
    mine = session.get(Account, actor.account_id)
    if mine is None or mine.disabled:
        raise Denied(N_("{what} needs an active account", what=what))
    if mine.created_by == asker:
        raise Denied(
            N_("{what} needs a second person: an account created by the one who asked does not count", what=what)
        )
    asker_id = creator_id(asker)
    if asker_id is not None and shared_lineage(session, mine.id, asker_id):
        raise Denied(N_("{what} needs a second person: your account and the asker's were created by the same person "
                        "(or one created the other)", what=what))  # fmt: skip


def _overseen(session: Session, actor: Actor) -> set[int] | None:
    """The projects ``actor`` answers for as a second person: every project for the DPO (None), else those whose
    request or annual review they approved, the approval standing. A reviewer of other projects is no second person
    for a control project: lifting needs someone who judged this investigation's purpose and scope."""
    if actor.role == Role.DPO:
        return None
    approved = select(ProjectDecision.project_id).where(
        ProjectDecision.reviewer_id == actor.account_id,
        ProjectDecision.decision == "approve",
        ProjectDecision.voided_at.is_(None),
    )
    return set(session.scalars(approved))


def _oversees(session: Session, actor: Actor, project_id: int) -> bool:
    overseen = _overseen(session, actor)
    return overseen is None or project_id in overseen


def decide(hub: Hub, actor: Actor, lift_id: int, approve: bool, reason: str) -> LiftRequest:
    """A second person approves or refuses; the role is checked before the request is looked up."""
    roles = hub.settings.control_lift_approver_roles
    if actor.account_id is None or actor.role is None or actor.role.value not in roles:
        # Same answer whatever the id: who may never approve learns nothing of which requests exist.
        with act(hub, actor, "control.lift.decide", object=f"control-lift:{lift_id}"):
            raise Denied(N_("{what} needs a second person's account ({roles})", what=APPROVING, roles=", ".join(roles)))
    with act(hub, actor, "control.lift.decide", object=f"control-lift:{lift_id}") as session:
        lift = session.get(LiftRequest, lift_id)
        # One answer for a missing request and one of a project the actor does not answer for (no oracle of others'
        # ids); its requester, who knows it exists, hears why they may not decide (below).
        if lift is None or (lift.requested_by != actor.ref and not _oversees(session, actor, lift.project_id)):
            raise NotFound(N_("no lift request {lift}", lift=lift_id))
        if lift.status != REQUESTED:
            raise Conflict(N_("request {lift} is {status}: it was decided already", lift=lift_id,
                                 status=word(LIFT_STATUS, lift.status)))  # fmt: skip
        _second_person(session, hub, actor, lift.requested_by)
        why = _reason(
            reason,
            N_("a decision on lifting a pseudonym needs its reason, in at least {count} characters", count=MIN_REASON),
        )
        lift.status = APPROVED if approve else REFUSED
        lift.decided_by = actor.ref
        lift.decided_at = _now()
        lift.decision_reason = why
        record(session, actor=actor.ref, role=actor.role_name,
               action="control.lift.approve" if approve else "control.lift.refuse",
               object=f"control-lift:{lift.id}", project_id=lift.project_id,
               detail={"lift": lift.id, "lead": lift.lead_id, "asker": lift.requested_by})  # fmt: skip
        session.flush()
        session.expunge(lift)
        return lift


def _lead_version(session: Session, lift: LiftRequest) -> int | None:
    """The hub pseudonym key version the lead's project pseudonyms went through: its run's view generation's."""
    return session.scalar(
        select(ProjectView.pseudonym_version)
        .join(ControlRun, (ControlRun.project_id == ProjectView.project_id)
              & (ControlRun.view_generation == ProjectView.generation))
        .join(ControlLead, ControlLead.run_id == ControlRun.id)
        .where(ControlLead.id == lift.lead_id)
    )  # fmt: skip


def _beneficiary(hub: Hub, session: Session, project_id: int, pseudonym: str, version: int) -> Lifted | None:
    if version in hub.custody.info(HUB_PSEUDONYM_KEY).destroyed_versions:
        return None  # the lead's pseudonyms can no longer be traced back (the version was destroyed on purpose)
    vault = hub.vault(session)
    pseudonymiser = hub.pseudonymiser.at(version)
    after = 0
    while True:
        page = vault.records(after, VAULT_PAGE)
        if not page:
            return None
        after = page[-1][0]
        mine = rekey(hub, project_id, pseudonymiser.pseudonyms([i.nir for _, _, i in page], cache=False))
        for (_, _, identity), theirs in zip(page, mine, strict=True):
            if theirs == pseudonym:
                return Lifted(BENEFICIARY, pseudonym, nir=identity.nir, last_name=identity.last_name,
                              first_name=identity.first_name, birth_date=identity.birth_date)  # fmt: skip


def _provider(hub: Hub, session: Session, project: Project, lift: LiftRequest) -> Lifted | None:
    try:
        con = open_view(hub, session, project)
    except ViewError as exc:
        raise Conflict(_said(exc)) from None
    try:
        query = f"SELECT DISTINCT PFS_EXE_NUM FROM {CARE_TABLE} WHERE PFS_EXE_NUM IS NOT NULL ORDER BY 1"
        numbers = [str(r[0]) for r in con.sql(query).fetchall()]
    finally:
        con.close()
    for number, pseudonym in zip(numbers, provider_pseudonyms(hub, project.id, numbers), strict=True):
        if pseudonym == lift.subject:
            return Lifted("provider", lift.subject, provider_number=number)
    return None


def show(hub: Hub, actor: Actor, lift_id: int, *, project_id: int | None = None) -> Lifted:
    """The identity behind an approved request, to the requester only, once, within the window; recorded before
    it is returned. ``project_id``: the project the caller names (the request must be one of its requests; any
    other answers as a request of someone else does)."""
    with act(hub, actor, "control.lift.show", object=f"control-lift:{lift_id}") as session:
        lift = session.get(LiftRequest, lift_id)
        if (lift is None or lift.requested_by != actor.ref
                or (project_id is not None and lift.project_id != project_id)):  # fmt: skip
            raise Denied(N_("only the person who asked may see this identity"))
        if lift.status == REQUESTED:
            raise Denied(N_("this request has not been approved by a second person yet"))
        if lift.status == REFUSED:
            raise Denied(N_("this request was refused"))
        if lift.status == SHOWN:
            raise Conflict(N_("this identity was shown once already: ask again, with a reason, if the law needs it"))
        window = timedelta(minutes=hub.settings.control_lift_window_minutes)
        if lift.decided_at is None or _now() > _aware(lift.decided_at) + window:
            raise Conflict(
                N_(
                    "the approval is older than {minutes} minutes: ask again",
                    minutes=hub.settings.control_lift_window_minutes,
                )
            )
        # The requester must still pass the project's data gate (an ended project lifts nothing).
        project = require_control_project(session, hub.settings, actor, lift.project_id)
        if lift.subject_kind == BENEFICIARY:
            version = _lead_version(session, lift)
            found = None if version is None else _beneficiary(hub, session, project.id, lift.subject, version)
        else:
            found = _provider(hub, session, project, lift)
        if found is None:
            raise NotFound(N_("this pseudonym is no longer found (the person left the vault or the view)"))
        lift.status = SHOWN
        lift.shown_at = _now()
        record(session, actor=actor.ref, role=actor.role_name, action="control.lift.show",
               object=f"control-lift:{lift.id}", project_id=project.id, purpose=project.purpose,
               detail={"lift": lift.id, "lead": lift.lead_id, "approver": lift.decided_by,
                       "subject_kind": lift.subject_kind})  # fmt: skip
        return found


def pending(hub: Hub, actor: Actor) -> list[LiftRequest]:
    """Requests waiting for a second person, for those who may approve (no identity in them); a recorded read."""
    roles = hub.settings.control_lift_approver_roles
    with act(hub, actor, "control.lift.list", object="control-lifts") as session:
        if actor.account_id is None or actor.role is None or actor.role.value not in roles:
            raise Denied(N_("this list is for second persons ({roles})", roles=", ".join(roles)))
        overseen = _overseen(session, actor)
        waiting = select(LiftRequest).where(LiftRequest.status == REQUESTED).order_by(LiftRequest.id)
        if overseen is not None:
            waiting = waiting.where(LiftRequest.project_id.in_(overseen))
        found = list(session.scalars(waiting))
        record(session, actor=actor.ref, role=actor.role_name, action="control.lift.list", object="control-lifts",
               detail={"pending": len(found)})  # fmt: skip
        session.flush()
        session.expunge_all()
        return found


def mine(hub: Hub, actor: Actor, project_id: int) -> list[LiftRequest]:
    """The actor's own requests in a project (statuses only, never an identity)."""
    with hub.session() as session:
        found = list(session.scalars(select(LiftRequest).where(
            LiftRequest.project_id == project_id, LiftRequest.requested_by == actor.ref)
            .order_by(LiftRequest.id.desc())))  # fmt: skip
        session.expunge_all()
        return found
