# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The life of a project: draft → submitted → approved by two distinct reviewers → active until expiry →
expired or closed; suspended by an operator or the DPO; sent back to review by any change of scope.

Separation of duties holds whatever the role: a reviewer never reviews a project they requested or belong to,
operators never approve, join or receive anything, the DPO oversees and does not review (unless the setting
``dpo_may_review`` says so), no two accounts of one creation lineage both request and approve, and no role can
read every project's data. Decisions are bound to the exact project judged (:func:`decision_hash`): any change
voids them. Every transition is recorded in the same transaction as the change it makes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hygie.audit import Outcome, record
from hygie.governance.accounts import Actor, Scope
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound
from hygie.governance.freetext import check_free_text
from hygie.governance.lineage import shared_lineage
from hygie.governance.models import Account, Project, ProjectDecision, ProjectMember
from hygie.governance.policy import FORBIDDEN_PURPOSES, Purpose, Role, reviewing_roles
from hygie.governance.policy import Scope as ProjectScope
from hygie.hub import Hub
from hygie.i18n import N_, Message
from hygie.vocabulary import PROJECT_STATUS, ROLE, word


class Status(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    CLOSED = "closed"


ENDED = frozenset({Status.EXPIRED, Status.CLOSED})
MIN_REASON = 10
"""Characters a decision's reason must have at least: a decision without a reason is no decision."""
BACK_TO_REVIEW = N_("changed by the requester: back to review")
"""The status reason of a changed project back in review. ``Project.status_reason`` keeps the English text of the
service's reasons (this one, and "rejected: {reason}"): the pages say them in French from the catalogue
(``hygie.portal.pages.messages.status_reason``); a suspension's or closure's reason is its author's words."""


def _now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


DECISION_HASH_FORMAT = "hygie.project-decision/1"
JUDGED_FIELDS = (
    "title",
    "organisation",
    "purpose",
    "justification",
    "public_summary",
    "scope",
    "duration_days",
    "threshold",
)
"""What a reviewer judges, besides the project's id and requester: everything the requester can change."""
RELEASE_FIELDS = ("release_mode", "privacy_budget")
"""Also judged: how the project's results are released (hygie.governance.privacy). Part of the hash only when they
differ from the default ('sdc', no budget), so the hash of a project that never asked for them is unchanged."""


def judged(project: Project) -> dict[str, Any]:
    """The project as a reviewer judges it: id, requester and every field the requester can change."""
    return {
        "format": DECISION_HASH_FORMAT,
        "project": project.id,
        "requester": project.requester_id,
        **{name: getattr(project, name) for name in JUDGED_FIELDS},
        **(
            {name: getattr(project, name) for name in RELEASE_FIELDS}
            if (project.release_mode or "sdc") != "sdc" or project.privacy_budget is not None
            else {}
        ),
    }


def decision_hash(project: Project) -> str:
    """SHA-256 (hex) of the canonical JSON (sorted keys, no spaces, UTF-8) of :func:`judged`."""
    canonical = json.dumps(judged(project), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def validation_message(exc: ValidationError) -> str:
    """Pydantic's errors without the input values they may quote."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)


def _scope_message(exc: ValidationError) -> str:
    """The refusal of an invalid scope: a single error raised by our own validators keeps its message (so a page
    translates it), any other is pydantic's wording."""
    errors = exc.errors(include_input=False, include_url=False)
    if len(errors) == 1:
        raised = errors[0].get("ctx", {}).get("error")
        where = ".".join(str(p) for p in errors[0]["loc"])
        said = raised.args[0] if isinstance(raised, ValueError) and raised.args else None
        if isinstance(said, Message) and errors[0]["msg"] == f"Value error, {said}":
            if where:
                return N_("scope: {field}: Value error, {problem}", field=where, problem=said)
            return N_("scope: Value error, {problem}", problem=said)
    return N_("scope: {problems}", problems=validation_message(exc))


def _joined(problems: list[str]) -> str:
    """Several problems as one message, each kept translatable: "first; second; third"."""
    if len(problems) == 1:
        return problems[0]
    return N_("{problem}; {more}", problem=problems[0], more=_joined(problems[1:]))


class Projects:
    def __init__(self, hub: Hub, session: Session) -> None:
        self.hub = hub
        self.session = session
        self.settings = hub.settings

    # -- helpers ----------------------------------------------------------------------------------

    def get(self, project_id: int) -> Project:
        # Row lock on PostgreSQL (SQLite serialises writers anyway): two reviewers approving at once, or a refresh
        # racing a change of scope, act one after the other, so a project never gets two live view builds.
        project = self.session.get(Project, project_id, with_for_update=True)
        if project is None:
            raise NotFound(N_("no project {project}", project=project_id))
        return project

    def members(self, project: Project) -> list[int]:
        return list(
            self.session.scalars(select(ProjectMember.account_id).where(ProjectMember.project_id == project.id))
        )

    def _record(
        self, actor: Actor, action: str, project: Project, *, outcome: Outcome = Outcome.OK, **detail: Any
    ) -> None:
        record(
            self.session,
            actor=actor.ref,
            role=actor.role_name,
            action=action,
            object=f"project:{project.id}",
            project_id=project.id,
            purpose=project.purpose,
            outcome=outcome,
            detail=detail,
        )

    def _require_governance(self, actor: Actor) -> None:
        if actor.account_id is None or Scope.GOVERNANCE not in actor.scopes:
            raise Denied(N_("this needs a signed-in account with the governance scope"))

    def _require_requester(self, actor: Actor, project: Project) -> None:
        self._require_governance(actor)
        if actor.account_id != project.requester_id:
            raise Denied(N_("only the requester of project {project} may do this", project=project.id))

    def _validated(self, purpose: str, scope: dict[str, Any], duration_days: int, threshold: int) -> ProjectScope:
        if purpose in FORBIDDEN_PURPOSES:
            raise Denied(N_("refused: {purpose} is forbidden by law", purpose=FORBIDDEN_PURPOSES[purpose]))
        if purpose not in set(Purpose):
            raise Invalid(
                N_(
                    "purpose {purpose} is not a lawful purpose (art. L1461-1 III); choose one of {purposes}",
                    purpose=repr(purpose),
                    purposes=", ".join(p.value for p in Purpose),
                )
            )
        try:
            parsed = ProjectScope.model_validate(scope)
        except ValidationError as exc:
            raise Invalid(_scope_message(exc)) from None
        if len(parsed.potential_identifiers) > self.settings.max_potential_identifiers:
            raise Invalid(
                N_(
                    "refused: a project may have at most {maximum} potential identifier(s); this one asks for "
                    "{identifiers}",
                    maximum=self.settings.max_potential_identifiers,
                    identifiers=", ".join(p.value for p in parsed.potential_identifiers),
                )
            )
        problems = parsed.gating_problems()
        if problems:
            raise Invalid(_joined(problems))
        if not 1 <= duration_days <= self.settings.project_max_days:
            raise Invalid(N_("duration_days must be between 1 and {maximum}", maximum=self.settings.project_max_days))
        if threshold < self.settings.disclosure_threshold:
            raise Invalid(
                N_(
                    "threshold {threshold} is below the platform minimum of {minimum} people per released cell; "
                    "a project may ask for more, never less",
                    threshold=threshold,
                    minimum=self.settings.disclosure_threshold,
                )
            )
        return parsed

    # -- the requester ----------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        *,
        title: str,
        organisation: str,
        purpose: str,
        justification: str,
        public_summary: str,
        scope: dict[str, Any],
        duration_days: int,
        threshold: int | None = None,
        release_mode: str = "sdc",
        privacy_budget: float | None = None,
    ) -> Project:
        from hygie.governance.privacy import check_release

        self._require_governance(actor)
        if actor.role != Role.RESEARCHER:
            raise Denied(
                N_("projects are requested by researchers, not by a {role}", role=word(ROLE, str(actor.role_name)))
            )
        threshold = threshold if threshold is not None else self.settings.disclosure_threshold
        parsed = self._validated(purpose, scope, duration_days, threshold)
        budget = check_release(release_mode, privacy_budget, population_budget=self.settings.dp_population_budget)
        if release_mode == "dp" and purpose in self.settings.control_purposes:
            raise Invalid(N_("control of spending reads single claims: ask for release_mode 'sdc' for this purpose"))
        for name, text in (("title", title), ("organisation", organisation)):
            if not text.strip():
                raise Invalid(N_("{field} is empty", field=name))
        for name, text in (
            ("title", title),
            ("organisation", organisation),
            ("justification", justification),
            ("public_summary", public_summary),
        ):
            check_free_text(name, text)
        for name, text in (("justification", justification), ("public_summary", public_summary)):
            if len(text.strip()) < MIN_REASON:
                raise Invalid(
                    N_(
                        "{field} must say, in at least {minimum} characters, why and what for",
                        field=name,
                        minimum=MIN_REASON,
                    )
                )
        assert actor.account_id is not None
        now = _now()
        project = Project(
            requester_id=actor.account_id,
            organisation=organisation.strip(),
            title=title.strip(),
            purpose=purpose,
            justification=justification.strip(),
            public_summary=public_summary.strip(),
            scope=parsed.model_dump(mode="json"),
            duration_days=duration_days,
            threshold=threshold,
            release_mode=release_mode,
            privacy_budget=budget,
            status=Status.DRAFT.value,
            scope_version=1,
            created_at=now,
        )
        self.session.add(project)
        self.session.flush()
        self.session.add(
            ProjectMember(project_id=project.id, account_id=actor.account_id, added_at=now, added_by=actor.account_id)
        )
        self._record(actor, "project.create", project, **self._release_detail(project))
        return project

    def change(self, actor: Actor, project_id: int, **changes: Any) -> Project:
        """Change a project. Any change, draft or not, voids the decisions taken so far (kept on record) and
        raises the version; outside a draft it also sends the project back to review and withdraws its view (its
        key kept, so pseudonyms stay stable if it is approved again). A change that changes nothing is recorded
        and changes nothing."""
        project = self.get(project_id)
        self._require_requester(actor, project)
        if project.status in ENDED:
            raise Conflict(
                N_(
                    "project {project} is {status}; start a new project",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        unknown = set(changes) - set(JUDGED_FIELDS) - set(RELEASE_FIELDS)
        if unknown:
            raise Invalid(N_("cannot change {fields}", fields=", ".join(sorted(unknown))))
        if set(RELEASE_FIELDS) & set(changes):
            from hygie.governance.privacy import check_release

            mode = changes.get("release_mode", project.release_mode)
            if mode == "sdc" and "privacy_budget" not in changes:
                changes["privacy_budget"] = None  # back to 'sdc': the budget goes with the mode
            budget = changes.get("privacy_budget", project.privacy_budget)
            changes["privacy_budget"] = check_release(
                mode, budget, population_budget=self.settings.dp_population_budget
            )
            changes["release_mode"] = mode
        merged: dict[str, Any] = {
            "purpose": project.purpose,
            "scope": project.scope,
            "duration_days": project.duration_days,
            "threshold": project.threshold,
        } | {k: v for k, v in changes.items() if k in {"purpose", "scope", "duration_days", "threshold"}}
        parsed = self._validated(merged["purpose"], merged["scope"], merged["duration_days"], merged["threshold"])
        before = decision_hash(project)
        for name, value in changes.items():
            if isinstance(value, str):
                check_free_text(name, value)
            setattr(project, name, parsed.model_dump(mode="json") if name == "scope" else value)
        previous = project.status
        after = decision_hash(project)
        if after == before:
            self._record(actor, "project.change", project, fields=sorted(changes), previous_status=previous,
                         scope_version=project.scope_version, scope_hash=after, unchanged=True)  # fmt: skip
            return project
        voided = self._void_decisions(project, "the project changed")
        project.scope_version += 1
        if project.status != Status.DRAFT:
            project.status = Status.SUBMITTED.value
            project.submitted_at = _now()
            project.approved_at = None
            project.status_reason = BACK_TO_REVIEW
            if previous in (Status.ACTIVE, Status.SUSPENDED):
                from hygie.governance.views import destroy_view

                destroy_view(self.hub, self.session, project, actor=actor.ref, keep_key=True)
        self._record(
            actor,
            "project.change",
            project,
            fields=sorted(changes),
            previous_status=previous,
            scope_version=project.scope_version,
            scope_hash=after,
            voided_decisions=voided,
            **self._release_detail(project),
        )
        return project

    @staticmethod
    def _release_detail(project: Project) -> dict[str, Any]:
        """A DP project's release mode and budget, for its records (a budget change is a governance act)."""
        if project.release_mode == "sdc" and project.privacy_budget is None:
            return {}
        from hygie.governance.privacy import population_key

        return {
            "release_mode": project.release_mode,
            "privacy_budget": project.privacy_budget,
            "population_key": population_key(project.purpose, project.scope),
        }

    def _void_decisions(self, project: Project, why: str) -> list[int]:
        """Mark every decision still standing on the project as voided (kept on record); their ids."""
        standing = self.session.scalars(
            select(ProjectDecision).where(ProjectDecision.project_id == project.id, ProjectDecision.voided_at.is_(None))
        ).all()
        now = _now()
        for decision in standing:
            decision.voided_at = now
            decision.voided_reason = why
        return sorted(d.id for d in standing)

    def submit(self, actor: Actor, project_id: int) -> Project:
        project = self.get(project_id)
        self._require_requester(actor, project)
        if project.status != Status.DRAFT:
            raise Conflict(
                N_(
                    "project {project} is {status}, not a draft",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        # Resubmitted after a rejection: a new round of review, on a new version; the last round's decisions
        # are voided (kept on record) and count no more, even if nothing was changed.
        voided = self._void_decisions(project, "a new round of review after a rejection")
        if voided:
            project.scope_version += 1
        project.status = Status.SUBMITTED.value
        project.submitted_at = _now()
        project.status_reason = None
        self._record(actor, "project.submit", project, scope_version=project.scope_version,
                     scope_hash=decision_hash(project), voided_decisions=voided)  # fmt: skip
        return project

    def add_member(self, actor: Actor, project_id: int, account_id: int) -> ProjectMember:
        project = self.get(project_id)
        self._require_requester(actor, project)
        if project.status in ENDED:
            raise Conflict(
                N_("project {project} is {status}", project=project.id, status=word(PROJECT_STATUS, project.status))
            )
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(N_("no account {account}", account=account_id))
        if account.role != Role.RESEARCHER:
            raise Denied(
                N_(
                    "only researchers can be members of a project; account {account} is a {role}",
                    account=account_id,
                    role=word(ROLE, str(account.role)),
                )
            )
        if account_id in self.members(project):
            raise Conflict(
                N_("account {account} is already a member of project {project}", account=account_id, project=project.id)
            )
        assert actor.account_id is not None
        for approval in self.counted_approvals(project):
            if self.shared_lineage(account_id, approval.reviewer_id):
                raise Denied(
                    N_(
                        "account {account} and a reviewer who approved project {project} were created by the same "
                        "person (or one created the other): they cannot be on both sides of one project",
                        account=account_id,
                        project=project.id,
                    )
                )
        member = ProjectMember(project_id=project.id, account_id=account_id, added_at=_now(), added_by=actor.account_id)
        self.session.add(member)
        self._record(actor, "project.member.add", project, account=account_id)
        return member

    def close(self, actor: Actor, project_id: int, reason: str) -> Project:
        """The requester or the DPO ends a project: its key and view are destroyed."""
        project = self.get(project_id)
        self._require_governance(actor)
        if actor.account_id != project.requester_id and actor.role != Role.DPO:
            raise Denied(N_("only the requester or the DPO may close project {project}", project=project.id))
        if project.status in ENDED:
            raise Conflict(
                N_(
                    "project {project} is already {status}",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        self._end(project, Status.CLOSED, self._reason(reason), actor)
        return project

    def _end(self, project: Project, status: Status, reason: str, actor: Actor) -> None:
        from hygie.governance.views import destroy_view

        previous = project.status
        project.status = status.value
        project.ended_at = _now()
        project.status_reason = reason
        destroy_view(self.hub, self.session, project, actor=actor.ref)
        self._record(
            actor,
            f"project.{'close' if status == Status.CLOSED else 'expire'}",
            project,
            previous_status=previous,
        )

    # -- reviewers --------------------------------------------------------------------------------

    def _require_independent_reviewer(self, actor: Actor, project: Project) -> None:
        self._require_governance(actor)
        if actor.role not in reviewing_roles(self.settings.dpo_may_review):
            if actor.role == Role.DPO:
                raise Denied(
                    N_(
                        "the DPO oversees projects and does not review them here (policy setting dpo_may_review); "
                        "reviewers decide, and the DPO may suspend or close a project"
                    )
                )
            raise Denied(N_("a {role} cannot review projects; reviewers do", role=word(ROLE, str(actor.role_name))))
        if actor.account_id == project.requester_id or actor.account_id in self.members(project):
            raise Denied(
                N_("you requested or belong to project {project}: someone else must review it", project=project.id)
            )

    def _reason(self, reason: str) -> str:
        if len(reason.strip()) < MIN_REASON:
            raise Invalid(N_("a decision needs its reason, in at least {minimum} characters", minimum=MIN_REASON))
        return check_free_text("reason", reason.strip())

    # -- creation lineage -------------------------------------------------------------------------

    def shared_lineage(self, first: int, second: int) -> list[int]:
        """Accounts in both creation chains (:func:`hygie.governance.lineage.shared_lineage`)."""
        return shared_lineage(self.session, first, second)

    def _lineage_conflict(self, reviewer_id: int, project: Project) -> tuple[int, list[int]] | None:
        """The requester or member whose creation lineage meets the reviewer's, with the shared accounts."""
        for person in (project.requester_id, *self.members(project)):
            shared = self.shared_lineage(reviewer_id, person)
            if shared:
                return person, shared
        return None

    def _refuse_lineage(self, actor: Actor, project: Project, action: str, person: int, shared: list[int]) -> Denied:
        """Record the refusal with its evidence (commit it, like a refused sign-in) and return the error."""
        message = N_(
            "refused: your account and account {account}, which requested or belongs to project {project}, were "
            "created by the same person (or one created the other); an approval must come from someone independent",
            account=person,
            project=project.id,
        )
        self._record(actor, action, project, outcome=Outcome.DENIED, reason=message, status=Denied.status,
                     separation="creator_lineage", counterpart=f"account:{person}",
                     shared_lineage=[f"account:{a}" for a in shared], scope_version=project.scope_version)  # fmt: skip
        self.session.commit()
        error = Denied(message)
        error.recorded = True
        return error

    def counted_approvals(self, project: Project) -> list[ProjectDecision]:
        """The approvals that count now: of the current version, not voided, whose hash is the hash of the project
        as it is now (recomputed here, so a change that slipped past a version bump is still caught), by distinct
        accounts that still hold a reviewing role, are not disabled, and share no creation lineage with the
        requester or a member."""
        current = decision_hash(project)
        rows = self.session.scalars(
            select(ProjectDecision)
            .where(
                ProjectDecision.project_id == project.id,
                ProjectDecision.scope_version == project.scope_version,
                ProjectDecision.kind == "approval",
                ProjectDecision.decision == "approve",
                ProjectDecision.voided_at.is_(None),
                ProjectDecision.scope_hash == current,
            )
            .order_by(ProjectDecision.id)
        ).all()
        roles = {r.value for r in reviewing_roles(self.settings.dpo_may_review)}
        counted: dict[int, ProjectDecision] = {}
        for d in rows:
            reviewer = self.session.get(Account, d.reviewer_id)
            if reviewer is None or reviewer.disabled or reviewer.role not in roles or d.reviewer_id in counted:
                continue
            if self._lineage_conflict(d.reviewer_id, project) is not None:
                continue
            counted[d.reviewer_id] = d
        return list(counted.values())

    def decide(
        self, actor: Actor, project_id: int, decision: str, reason: str, *, scope_hash: str | None = None
    ) -> Project:
        """A reviewer's approval or rejection of the current version of a submitted project.

        ``scope_hash``, when given, is the hash of the project as the reviewer read it: a project changed since
        is refused (409) instead of being decided unseen. The decision records the hash of what it judged.
        Approval by an account sharing a creation lineage with the requester or a member is refused.
        When ``reviewers_required`` approvals count (:meth:`counted_approvals`), the project is activated: its
        view is built before this returns. A rejection sends the project back to its requester as a draft.
        """
        project = self.get(project_id)
        self._require_independent_reviewer(actor, project)
        if decision not in ("approve", "reject"):
            raise Invalid(N_("decision is 'approve' or 'reject'"))
        reason = self._reason(reason)
        if project.status != Status.SUBMITTED:
            raise Conflict(
                N_(
                    "project {project} is {status}, not awaiting review",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        assert actor.account_id is not None
        current = decision_hash(project)
        if scope_hash is not None and scope_hash != current:
            raise Conflict(
                N_(
                    "project {project} changed since you read it (it is now version {version}); read it again before "
                    "deciding",
                    project=project.id,
                    version=project.scope_version,
                )
            )
        earlier = self.session.scalar(
            select(ProjectDecision.id).where(
                ProjectDecision.project_id == project.id,
                ProjectDecision.scope_version == project.scope_version,
                ProjectDecision.reviewer_id == actor.account_id,
                ProjectDecision.kind == "approval",
            )
        )
        if earlier is not None:
            raise Conflict(
                N_(
                    "you already decided on version {version} of project {project}; approval needs distinct reviewers",
                    version=project.scope_version,
                    project=project.id,
                )
            )
        if decision == "approve":
            conflict = self._lineage_conflict(actor.account_id, project)
            if conflict is not None:
                raise self._refuse_lineage(actor, project, "project.approve", *conflict)
        self.session.add(
            ProjectDecision(
                project_id=project.id,
                scope_version=project.scope_version,
                reviewer_id=actor.account_id,
                kind="approval",
                decision=decision,
                reason=reason,
                at=_now(),
                scope_hash=current,
            )
        )
        self.session.flush()
        # The reason stays with the decision (ProjectDecision); the record says which decision, not its words.
        self._record(actor, f"project.{decision}", project, scope_version=project.scope_version, scope_hash=current,
                     reviewer_created_at=self._created_at(actor))  # fmt: skip
        if decision == "reject":
            project.status = Status.DRAFT.value
            project.status_reason = N_("rejected: {reason}", reason=reason)
            return project
        approvals = self.counted_approvals(project)
        if len(approvals) >= self.settings.reviewers_required:
            self._activate(project, actor, approvals)
        return project

    def _created_at(self, actor: Actor) -> str | None:
        """When the deciding account was created (ISO 8601), for the ``fresh_approver`` alert."""
        account = self.session.get(Account, actor.account_id) if actor.account_id is not None else None
        created = aware(account.created_at) if account is not None else None
        return created.isoformat() if created else None

    def _activate(self, project: Project, actor: Actor, approvals: list[ProjectDecision]) -> None:
        from hygie.governance.views import build_view

        approvers = [d.reviewer_id for d in approvals]
        # Allowed, but the DPO is alerted (hygie.audit.alerts, rule shared_creator): one person's accounts gave
        # two of the approvals.
        shared = sorted(
            {a for i, x in enumerate(approvers) for y in approvers[i + 1 :] for a in self.shared_lineage(x, y)}
        )
        now = _now()
        project.approved_at = now
        if project.activated_at is None:
            project.activated_at = now
            project.expires_at = now + timedelta(days=project.duration_days)
            if project.duration_days > self.settings.annual_review_days:
                project.review_due_at = now + timedelta(days=self.settings.annual_review_days)
        project.status = Status.ACTIVE.value
        project.status_reason = None
        from hygie.governance.privacy import open_budgets

        open_budgets(self.session, project, population_budget=self.settings.dp_population_budget, actor=actor.ref)
        view = build_view(self.hub, self.session, project, actor=actor.ref)
        self._record(
            actor,
            "project.activate",
            project,
            scope_version=project.scope_version,
            scope_hash=decision_hash(project),
            approvers=[f"account:{a}" for a in approvers],
            approvals=[d.id for d in approvals],
            approvers_shared_lineage=[f"account:{a}" for a in shared],
            expires_at=project.expires_at.isoformat() if project.expires_at else None,
            view_generation=view.generation,
            people=view.people,
            **self._release_detail(project),
        )

    def annual_review(self, actor: Actor, project_id: int, decision: str, reason: str) -> Project:
        """A long project's yearly review: approval extends access by a year; rejection suspends it."""
        project = self.get(project_id)
        self._require_independent_reviewer(actor, project)
        if decision not in ("approve", "reject"):
            raise Invalid(N_("decision is 'approve' or 'reject'"))
        reason = self._reason(reason)
        if project.status not in (Status.ACTIVE, Status.SUSPENDED) or project.review_due_at is None:
            raise Conflict(N_("project {project} has no annual review to do", project=project.id))
        assert actor.account_id is not None
        if decision == "approve":
            conflict = self._lineage_conflict(actor.account_id, project)
            if conflict is not None:
                raise self._refuse_lineage(actor, project, "project.annual_review", *conflict)
        current = decision_hash(project)
        self.session.add(
            ProjectDecision(
                project_id=project.id,
                scope_version=project.scope_version,
                reviewer_id=actor.account_id,
                kind=f"annual-{_now().date().isoformat()}",
                decision=decision,
                reason=reason,
                at=_now(),
                scope_hash=current,
            )
        )
        if decision == "approve":
            due = aware(project.review_due_at)
            assert due is not None
            project.review_due_at = max(due, _now()) + timedelta(days=self.settings.annual_review_days)
        else:
            project.status = Status.SUSPENDED.value
            project.status_reason = f"annual review rejected: {reason}"
        self._record(actor, f"project.annual_review.{decision}", project, scope_version=project.scope_version,
                     scope_hash=current, reviewer_created_at=self._created_at(actor))  # fmt: skip
        return project

    # -- operators and the DPO --------------------------------------------------------------------

    def suspend(self, actor: Actor, project_id: int, reason: str) -> Project:
        project = self.get(project_id)
        self._require_governance(actor)
        if actor.role not in (Role.OPERATOR, Role.DPO):
            raise Denied(N_("only an operator or the DPO may suspend a project"))
        if project.status != Status.ACTIVE:
            raise Conflict(
                N_(
                    "project {project} is {status}, not active",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        project.status = Status.SUSPENDED.value
        project.status_reason = self._reason(reason)
        self._record(actor, "project.suspend", project)
        return project

    def resume(self, actor: Actor, project_id: int, reason: str) -> Project:
        """Only the DPO lifts a suspension: operators can stop access, never give it back."""
        project = self.get(project_id)
        self._require_governance(actor)
        if actor.role != Role.DPO:
            raise Denied(N_("only the DPO may lift a suspension"))
        if project.status != Status.SUSPENDED:
            raise Conflict(
                N_(
                    "project {project} is {status}, not suspended",
                    project=project.id,
                    status=word(PROJECT_STATUS, project.status),
                )
            )
        project.status = Status.ACTIVE.value
        project.status_reason = None
        self._reason(reason)
        self._record(actor, "project.resume", project)
        return project

    def refresh(self, actor: Actor, project_id: int) -> Project:
        """Rebuild an active project's view from the current warehouse (same scope, same pseudonyms)."""
        from hygie.governance.access import require_view_access
        from hygie.governance.views import build_view

        require_view_access(self.session, self.settings, actor, project_id)
        project = self.get(project_id)  # locked: one build at a time per project
        view = build_view(self.hub, self.session, project, actor=actor.ref)
        self._record(actor, "project.refresh", project, view_generation=view.generation, people=view.people)
        return project

    def expire_due(self, actor: Actor) -> list[int]:
        """End every project whose term has passed (run by the server and by ``hygie projects sweep``).
        Access never waits for this: the access check compares the expiry date itself."""
        now = _now()
        due = self.session.scalars(
            select(Project).where(
                Project.status.in_([Status.ACTIVE.value, Status.SUSPENDED.value, Status.SUBMITTED.value]),
                Project.expires_at.is_not(None),
            )
        ).all()
        ended = []
        for project in due:
            expires = aware(project.expires_at)
            if expires is not None and expires <= now:
                self._end(project, Status.EXPIRED, "its term has passed", actor)
                ended.append(project.id)
        return ended
