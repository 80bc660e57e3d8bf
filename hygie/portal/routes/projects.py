# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Projects: request, review, membership, suspension, closing, and the gate to a project's view."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from hygie.audit import record
from hygie.governance.access import require_view_access, require_visible
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Denied
from hygie.governance.models import Project, ProjectDecision, ProjectMember
from hygie.governance.policy import Role
from hygie.governance.projects import Projects, decision_hash
from hygie.governance.views import view_summary
from hygie.hub import Hub
from hygie.i18n import N_
from hygie.portal.bodies import RequestBody
from hygie.portal.deps import ActorDep, HubDep
from hygie.vocabulary import ROLE, word

router = APIRouter(prefix="/projects", tags=["projects"])


class ProjectRequest(RequestBody):
    title: str = Field(min_length=1, max_length=300)
    organisation: str = Field(min_length=1, max_length=200)
    purpose: str = Field(description="One of the lawful purposes of GET /policy.")
    justification: str = Field(max_length=20_000)
    public_summary: str = Field(max_length=5_000, description="Shown in the public register.")
    scope: dict[str, Any] = Field(description="tables, population, potential_identifiers (see GET /policy).")
    duration_days: int = Field(ge=1, le=36_500)
    threshold: int | None = Field(default=None, ge=1, le=100_000)
    release_mode: str = Field(
        default="sdc",
        max_length=10,
        description="'sdc' (suppression and rounding, the default) or 'dp' (differential privacy with a counted "
        "privacy budget; reviewers judge the budget).",
    )
    privacy_budget: float | None = Field(
        default=None,
        description="In 'dp' mode: the privacy budget asked for (positive, finite, at most the population budget "
        "of GET /policy's setting dp_population_budget).",
    )


class ProjectChange(RequestBody):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    organisation: str | None = Field(default=None, min_length=1, max_length=200)
    purpose: str | None = None
    justification: str | None = Field(default=None, max_length=20_000)
    public_summary: str | None = Field(default=None, max_length=5_000)
    scope: dict[str, Any] | None = None
    duration_days: int | None = Field(default=None, ge=1, le=36_500)
    threshold: int | None = Field(default=None, ge=1, le=100_000)
    release_mode: str | None = Field(default=None, max_length=10, description="'sdc' or 'dp'; back to 'sdc' drops "
                                     "the budget.")  # fmt: skip
    privacy_budget: float | None = Field(default=None, description="A new privacy budget (a 'dp' project).")


class DecisionRequest(RequestBody):
    decision: Literal["approve", "reject"]
    reason: str = Field(max_length=5_000)
    scope_hash: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="The project's scope_hash as you read it: if the project changed since, the decision is refused "
        "(409) instead of being taken on a version you did not see.",
    )


class ReasonRequest(RequestBody):
    reason: str = Field(max_length=5_000)


class MemberRequest(RequestBody):
    account_id: int


class DecisionOut(BaseModel):
    reviewer_id: int
    scope_version: int
    kind: str
    decision: str
    reason: str
    at: datetime
    scope_hash: str | None = Field(description="SHA-256 of the project as judged (None: before hashes existed).")
    voided_at: datetime | None = Field(description="Set when a change or a new round voided this decision.")
    voided_reason: str | None


class PrivacyOut(BaseModel):
    """A differential-privacy project's budget, and the population budget it is charged against."""

    total: float = Field(description="The project's approved budget.")
    spent: float
    reserved: float = Field(description="Held by jobs running now.")
    left: float
    population_key: str = Field(description="SHA-256 of the population and purpose the budget is shared over.")
    population_total: float = Field(description="0 until the first project over this population is activated.")
    population_spent: float
    population_reserved: float
    population_left: float
    available: float = Field(description="The most the next request may cost: the smaller of left and "
                             "population_left.")  # fmt: skip
    projects_sharing: int = Field(description="DP projects charged against the same population budget (this one "
                                  "included, drafts too).")  # fmt: skip
    sharing_project_ids: list[int] | None = Field(
        description="The other projects charged against the same population budget (those past draft); null for "
        "researchers (shown to those who judge projects)."
    )
    overlapping_project_ids: list[int] | None = Field(
        description="Other DP projects (past draft) whose population may hold the same people under another key "
        "(another purpose, period or band): not charged together, for the reviewers to judge; null for researchers."
    )


class ProjectOut(BaseModel):
    id: int
    title: str
    organisation: str
    purpose: str
    justification: str
    public_summary: str
    scope: dict[str, Any]
    duration_days: int
    threshold: int
    status: str
    status_reason: str | None
    scope_version: int
    scope_hash: str = Field(description="SHA-256 of what reviewers judge now; decisions count only for this hash.")
    requester_id: int
    members: list[int]
    decisions: list[DecisionOut]
    created_at: datetime
    submitted_at: datetime | None
    approved_at: datetime | None
    activated_at: datetime | None
    expires_at: datetime | None
    review_due_at: datetime | None
    ended_at: datetime | None
    release_mode: str = Field(description="'sdc' (suppression and rounding) or 'dp' (differential privacy).")
    privacy_budget: float | None = Field(description="In 'dp' mode, the budget asked for and judged.")
    privacy: PrivacyOut | None = Field(description="In 'dp' mode, the budget's balance and its population's.")


SHOWN = (
    "rounded to the nearest multiple of disclosure_rounding_base; null when under the disclosure threshold (the "
    "platform's, or the project's if stricter), like any released count"
)


class ViewTable(BaseModel):
    rows: int | None = Field(description=f"Rows of the table, {SHOWN}.")
    columns: list[str]


class ViewOut(BaseModel):
    project_id: int
    generation: int
    built_at: datetime
    people: int | None = Field(description=f"People in the view, {SHOWN}.")
    tables: dict[str, ViewTable]


def _out(projects: Projects, p: Project, actor: Actor) -> ProjectOut:
    decisions = projects.session.scalars(
        select(ProjectDecision).where(ProjectDecision.project_id == p.id).order_by(ProjectDecision.id)
    )
    return ProjectOut(
        id=p.id, title=p.title, organisation=p.organisation, purpose=p.purpose, justification=p.justification,
        public_summary=p.public_summary, scope=p.scope, duration_days=p.duration_days, threshold=p.threshold,
        status=p.status, status_reason=p.status_reason, scope_version=p.scope_version, scope_hash=decision_hash(p),
        requester_id=p.requester_id, members=projects.members(p),
        decisions=[
            DecisionOut(reviewer_id=d.reviewer_id, scope_version=d.scope_version, kind=d.kind, decision=d.decision,
                        reason=d.reason, at=d.at, scope_hash=d.scope_hash, voided_at=d.voided_at,
                        voided_reason=d.voided_reason)
            for d in decisions
        ],
        created_at=p.created_at, submitted_at=p.submitted_at, approved_at=p.approved_at,
        activated_at=p.activated_at, expires_at=p.expires_at, review_due_at=p.review_due_at, ended_at=p.ended_at,
        release_mode=p.release_mode, privacy_budget=p.privacy_budget, privacy=_privacy_out(projects.session, p, actor),
    )  # fmt: skip


def _privacy_out(session: Any, p: Project, actor: Actor) -> PrivacyOut | None:
    from hygie.governance.privacy import overlapping_projects, project_budget, sharing_projects

    budget = project_budget(session, p)
    if budget is None:
        return None
    if actor.role == Role.RESEARCHER:
        # Which other projects share or may overlap this population is for those who judge it: shown to the
        # requester, a draft whose scope they can change at will would answer "does anyone study women of 60 to
        # 75?" about other teams' confidential criteria, one probe at a time.
        return PrivacyOut(**budget.as_dict(), sharing_project_ids=None, overlapping_project_ids=None)
    sharing = [q.id for q in sharing_projects(session, budget.population_key) if q.id != p.id and q.status != "draft"]
    overlapping = [q.id for q in overlapping_projects(session, p) if q.status != "draft"]
    return PrivacyOut(**budget.as_dict(), sharing_project_ids=sharing, overlapping_project_ids=overlapping)


def _governance(actor: Actor) -> None:
    if "governance" not in actor.scopes and "audit" not in actor.scopes:
        raise Denied(N_("this needs the governance or audit scope"))


@router.post("", summary="Request a project (a researcher; starts as a draft)")
def create_project(body: ProjectRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.create") as session:
        projects = Projects(hub, session)
        return _out(projects, projects.create(actor, **body.model_dump()), actor)


@router.get("", summary="Projects I may see: mine as a researcher, all requests for reviewers, DPO, operators")
def list_projects(hub: HubDep, actor: ActorDep, status: str | None = None) -> list[ProjectOut]:
    with act(hub, actor, "project.list") as session:
        _governance(actor)
        if actor.role not in (Role.RESEARCHER, Role.REVIEWER, Role.DPO, Role.OPERATOR, Role.AUDITOR):
            raise Denied(N_("a {role} has no projects", role=word(ROLE, str(actor.role_name))))
        query = select(Project).order_by(Project.id)
        if actor.role == Role.RESEARCHER:
            mine = select(ProjectMember.project_id).where(ProjectMember.account_id == actor.account_id)
            query = query.where(or_(Project.requester_id == actor.account_id, Project.id.in_(mine)))
        if status:
            query = query.where(Project.status == status)
        projects = Projects(hub, session)
        out = [_out(projects, p, actor) for p in session.scalars(query)]
        record(session, actor=actor.ref, role=actor.role_name, action="project.list", detail={"count": len(out)})
        return out


@router.get("/{project_id}", summary="One project request (never its data)")
def get_project(project_id: int, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.read", object=f"project:{project_id}", project_id=project_id) as session:
        _governance(actor)
        projects = Projects(hub, session)
        project = require_visible(session, actor, project_id)
        record(session, actor=actor.ref, role=actor.role_name, action="project.read", object=f"project:{project_id}",
               project_id=project_id)  # fmt: skip
        return _out(projects, project, actor)


@router.patch("/{project_id}", summary="Change a project; outside a draft this sends it back to review")
def change_project(project_id: int, body: ProjectChange, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.change", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        changes = body.model_dump(exclude_none=True)
        return _out(projects, projects.change(actor, project_id, **changes), actor)


@router.post("/{project_id}/submit", summary="Submit a draft for review")
def submit_project(project_id: int, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.submit", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        return _out(projects, projects.submit(actor, project_id), actor)


@router.post("/{project_id}/decisions", summary="A reviewer approves or rejects, with a reason")
def decide(project_id: int, body: DecisionRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, f"project.{body.decision}", object=f"project:{project_id}", project_id=project_id) as s:
        require_visible(s, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, s)
        decided = projects.decide(actor, project_id, body.decision, body.reason, scope_hash=body.scope_hash)
        return _out(projects, decided, actor)


@router.post("/{project_id}/annual-review", summary="A reviewer's yearly review of a long project")
def annual_review(project_id: int, body: DecisionRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.annual_review", object=f"project:{project_id}", project_id=project_id) as s:
        require_visible(s, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, s)
        return _out(projects, projects.annual_review(actor, project_id, body.decision, body.reason), actor)


@router.post("/{project_id}/members", summary="The requester adds a researcher to the project")
def add_member(project_id: int, body: MemberRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.member.add", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        projects.add_member(actor, project_id, body.account_id)
        return _out(projects, projects.get(project_id), actor)


@router.post("/{project_id}/suspend", summary="Suspend an active project (an operator or the DPO)")
def suspend(project_id: int, body: ReasonRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.suspend", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        return _out(projects, projects.suspend(actor, project_id, body.reason), actor)


@router.post("/{project_id}/resume", summary="Lift a suspension (the DPO only)")
def resume(project_id: int, body: ReasonRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.resume", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        return _out(projects, projects.resume(actor, project_id, body.reason), actor)


@router.post("/{project_id}/close", summary="Close a project: its key and view are destroyed")
def close(project_id: int, body: ReasonRequest, hub: HubDep, actor: ActorDep) -> ProjectOut:
    with act(hub, actor, "project.close", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        projects = Projects(hub, session)
        return _out(projects, projects.close(actor, project_id, body.reason), actor)


@router.post("/{project_id}/refresh", summary="Rebuild the view from the current warehouse (a member)")
def refresh(project_id: int, hub: HubDep, actor: ActorDep) -> ViewOut:
    with act(hub, actor, "project.refresh", object=f"project:{project_id}", project_id=project_id) as session:
        require_visible(session, actor, project_id)  # a foreign project answers as a missing one
        project = Projects(hub, session).refresh(actor, project_id)
        return _view_out(hub, session, project)


@router.get("/{project_id}/view", summary="The project's view: tables, columns and row counts (members only)")
def describe_view(project_id: int, hub: HubDep, actor: ActorDep) -> ViewOut:
    with act(hub, actor, "view.describe", object=f"project:{project_id}", project_id=project_id) as session:
        project = require_view_access(session, hub.settings, actor, project_id)
        record(session, actor=actor.ref, role=actor.role_name, action="view.describe", object=f"project:{project_id}",
               project_id=project_id, purpose=project.purpose)  # fmt: skip
        return _view_out(hub, session, project)


def _view_out(hub: Hub, session: Any, project: Project) -> ViewOut:
    """The view's description; its sizes shown like released counts (a narrow project must not read its exact
    population)."""
    from hygie.disclosure.counts import shown_count

    summary = view_summary(session, project)
    if summary is None:
        raise Denied(N_("project {project} has no view yet", project=project.id))
    threshold = max(hub.settings.disclosure_threshold, project.threshold or 0)
    base = hub.settings.disclosure_rounding_base
    if project.release_mode == "dp":
        # A DP project releases nothing about its data but noisy, budgeted outputs: no rounded sizes either (each
        # refresh would publish a new, unbudgeted series as the warehouse grows).
        return ViewOut(project_id=project.id, generation=summary["generation"], built_at=summary["built_at"],
                       people=None, tables={t: ViewTable(rows=None, columns=v["columns"])
                                            for t, v in summary["tables"].items()})  # fmt: skip
    return ViewOut(
        project_id=project.id,
        generation=summary["generation"],
        built_at=summary["built_at"],
        people=shown_count(int(summary["people"]), threshold, base),
        tables={
            t: ViewTable(rows=shown_count(int(v["rows"]), threshold, base), columns=v["columns"])
            for t, v in summary["tables"].items()
        },
    )
