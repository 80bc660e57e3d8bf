# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Separation of duties in project decisions, as attacks: a decision is bound to the exact project it judged, the
DPO does not review by default, and one person's accounts cannot both request and approve; the alerts that
follow approvals by fresh accounts and by one person's accounts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, update

from hygie.audit import AuditEvent
from hygie.audit.alerts import AlertPolicy, evaluate
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict, Denied
from hygie.governance.models import Account, Project, ProjectDecision
from hygie.governance.policy import Role
from hygie.governance.projects import Projects, decision_hash
from hygie.hub import Hub
from tests.portal.world import clone_hub, release_hub

T = TypeVar("T")
POPULATION = {"period_start": "2023-01-01", "period_end": "2023-12-31"}
NARROW = {"tables": {"IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN"]}, "population": POPULATION}
WIDE = {  # the commune of residence, everyone
    "tables": {"IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_COM"]},
    "population": POPULATION,
    "potential_identifiers": ["residence_commune"],
}
WHY = "lawful purpose, minimal scope"
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)
SOD_RULES = ("fresh_approver", "shared_creator")
_names = itertools.count()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub per module and database (each test makes its own accounts and projects)."""
    tmp = tmp_path_factory.mktemp("decisions")
    if request.param == "sqlite":
        made = clone_hub(tmp, request.getfixturevalue("sqlite_population"), None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        made = clone_hub(tmp, request.getfixturevalue("postgres_population"), cluster)
    yield made
    release_hub(made)


def account(hub: Hub, role: Role, by: Actor | str = "console", created_at: datetime | None = None) -> Actor:
    """An account row as its creator left it ("account:N" through the API, "console" at the console)."""
    with hub.session() as session:
        row = Account(username=f"{role.value}-{next(_names)}", role=role.value, password_hash="x", failed_logins=0,
                      disabled=False, created_at=created_at or datetime.now(UTC),
                      created_by=by if isinstance(by, str) else by.ref)  # fmt: skip
        session.add(row)
        session.commit()
        return Actor(account_id=row.id, role=role, scopes=frozenset({"governance"}), via="session")


def run(hub: Hub, actor: Actor, action: str, pid: int | None, work: Callable[[Projects], T], **settings: Any) -> T:
    """One act as the API does it (refusals recorded); ``settings`` override the hub's policy for this act."""
    with act(hub, actor, action, object=f"project:{pid}" if pid else None, project_id=pid) as session:
        projects = Projects(hub, session)
        if settings:
            projects.settings = hub.settings.model_copy(update=settings)
        return work(projects)


def request(hub: Hub, requester: Actor, scope: dict[str, Any] = NARROW, submit: bool = True) -> int:
    def create(p: Projects) -> int:
        return p.create(requester, title="Sex and birth year", organisation="Lab", purpose="research",
                        justification="Describe the population by sex and age.",
                        public_summary="Who is covered, by sex and age.", scope=scope, duration_days=30).id  # fmt: skip

    pid = run(hub, requester, "project.create", None, create)
    if submit:
        run(hub, requester, "project.submit", pid, lambda p: p.submit(requester, pid).status)
    return pid


def decide(hub: Hub, reviewer: Actor, pid: int, decision: str = "approve", **kw: Any) -> str:
    settings = kw.pop("settings", {})
    return run(hub, reviewer, f"project.{decision}", pid,
               lambda p: p.decide(reviewer, pid, decision, WHY, **kw).status, **settings)  # fmt: skip


def decisions(hub: Hub, pid: int) -> list[ProjectDecision]:
    with hub.session() as session:
        rows = session.scalars(select(ProjectDecision).where(ProjectDecision.project_id == pid))
        return sorted(rows, key=lambda d: d.id)


def last_event(hub: Hub, pid: int, action: str) -> AuditEvent:
    with hub.session() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.project_id == pid, AuditEvent.action == action)
            .order_by(AuditEvent.id.desc()).limit(1)
        ).one()  # fmt: skip


def test_reject_widen_resubmit_no_longer_activates(hub: Hub) -> None:
    requester, r1, r2, r3 = account(hub, Role.RESEARCHER), *(account(hub, Role.REVIEWER) for _ in range(3))
    pid = request(hub, requester)
    assert decide(hub, r1, pid) == "submitted"
    assert decide(hub, r2, pid, "reject") == "draft"
    # Widened while a draft, then resubmitted: reviewer 1's approval of the narrow version no longer counts.
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, scope=WIDE).status)
    run(hub, requester, "project.submit", pid, lambda p: p.submit(requester, pid).status)
    assert decide(hub, r3, pid) == "submitted"  # one approval of the wide scope is one, not two
    old, rejection, new = decisions(hub, pid)
    assert old.voided_at is not None and old.voided_reason == "the project changed" and rejection.voided_at
    assert new.voided_at is None and new.scope_version == 2 and new.scope_hash != old.scope_hash
    with hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None and new.scope_hash == decision_hash(project)
    assert last_event(hub, pid, "project.approve").detail["scope_hash"] == new.scope_hash
    # Reviewer 1 may judge the wide scope too: two approvals of the current version activate it.
    assert decide(hub, r1, pid) == "active"
    activation = last_event(hub, pid, "project.activate").detail
    assert activation["scope_hash"] == new.scope_hash and activation["approvers_shared_lineage"] == []
    # The annual review of a long project: the requester's own reviewer account cannot extend it.
    with hub.session() as session:
        session.execute(update(Project).where(Project.id == pid).values(review_due_at=datetime.now(UTC)))
        session.commit()
    puppet = account(hub, Role.REVIEWER, requester)
    with pytest.raises(Denied, match="created by the same person"):
        run(hub, puppet, "project.annual_review", pid, lambda p: p.annual_review(puppet, pid, "approve", WHY).status)
    assert run(hub, r2, "project.annual_review", pid, lambda p: p.annual_review(r2, pid, "approve", WHY).status)


def test_a_change_voids_approvals_and_a_stale_hash_is_refused(hub: Hub) -> None:
    requester, r1, r2 = account(hub, Role.RESEARCHER), account(hub, Role.REVIEWER), account(hub, Role.REVIEWER)
    pid = request(hub, requester)
    with hub.session() as session:
        read = session.get(Project, pid)
        assert read is not None
        judged = decision_hash(read)
    assert decide(hub, r1, pid, scope_hash=judged) == "submitted"
    # A change of any field while in review voids the approval (kept on record) and raises the version.
    summary = "Who is covered, by sex, age and commune."
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, public_summary=summary).status)
    (voided,) = decisions(hub, pid)
    assert voided.voided_at is not None
    # Reviewer 2 read the project before the change: the decision is refused, not taken on an unseen version.
    with pytest.raises(Conflict, match="changed since you read it"):
        decide(hub, r2, pid, scope_hash=judged)
    # A change slipping past the version bump (written behind the service's back) is caught at activation.
    assert decide(hub, r1, pid) == "submitted"
    with hub.session() as session:
        session.execute(update(Project).where(Project.id == pid).values(scope=WIDE))
        session.commit()
    assert decide(hub, r2, pid) == "submitted"
    # A change that changes nothing voids nothing.
    before = len([d for d in decisions(hub, pid) if d.voided_at is None])
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, title="Sex and birth year").status)
    assert len([d for d in decisions(hub, pid) if d.voided_at is None]) == before


def test_the_dpo_oversees_and_reviews_only_when_the_policy_says_so(hub: Hub) -> None:
    requester, dpo = account(hub, Role.RESEARCHER), account(hub, Role.DPO)
    pid = request(hub, requester)
    with pytest.raises(Denied, match="oversees"):
        decide(hub, dpo, pid)
    refused = last_event(hub, pid, "project.approve")
    assert (refused.actor, refused.outcome) == (dpo.ref, "denied")
    assert decide(hub, dpo, pid, settings={"dpo_may_review": True}) == "submitted"
    assert decisions(hub, pid)[0].reviewer_id == dpo.account_id


def test_one_persons_accounts_cannot_request_and_approve(hub: Hub) -> None:
    dpo = account(hub, Role.DPO)
    puppet_researcher, puppet_reviewer = account(hub, Role.RESEARCHER, dpo), account(hub, Role.REVIEWER, dpo)
    pid = request(hub, puppet_researcher)
    with pytest.raises(Denied, match="created by the same person"):
        decide(hub, puppet_reviewer, pid)
    refused = last_event(hub, pid, "project.approve")
    assert refused.outcome == "denied" and refused.detail["separation"] == "creator_lineage"
    assert refused.detail["shared_lineage"] == [dpo.ref]
    assert decisions(hub, pid) == []
    # Through a second puppet DPO, or by creating the reviewer directly: still one person.
    puppet_dpo = account(hub, Role.DPO, dpo)
    pid2 = request(hub, account(hub, Role.RESEARCHER, puppet_dpo))
    with pytest.raises(Denied):
        decide(hub, puppet_reviewer, pid2)
    requester = account(hub, Role.RESEARCHER)
    pid3 = request(hub, requester)
    with pytest.raises(Denied):
        decide(hub, account(hub, Role.REVIEWER, requester), pid3)
    # Console-created accounts are the controller's installation: they share no creator for this rule.
    assert decide(hub, account(hub, Role.REVIEWER), pid) == "submitted"
    # A member created by the approver's creator cannot join once that approval stands.
    reviewer = account(hub, Role.REVIEWER, dpo)
    assert decide(hub, reviewer, pid3) == "submitted"
    member = account(hub, Role.RESEARCHER, dpo).account_id
    assert member is not None
    with pytest.raises(Denied, match="both sides"):
        run(hub, requester, "project.member.add", pid3, lambda p: p.add_member(requester, pid3, member))


def test_alerts_for_fresh_approvers_and_one_persons_approvals(hub: Hub) -> None:
    policy = AlertPolicy(settle_seconds=0, working_hours=(0, 24), working_days=tuple(range(7)))
    evaluate(hub, policy)  # what earlier tests left
    dpo = account(hub, Role.DPO, created_at=LONG_AGO)
    requester = account(hub, Role.RESEARCHER, created_at=LONG_AGO)
    seasoned = account(hub, Role.REVIEWER, created_at=LONG_AGO)
    pid = request(hub, requester)
    assert decide(hub, seasoned, pid) == "submitted"
    assert [a.rule for a in evaluate(hub, policy) if a.project_id == pid and a.rule in SOD_RULES] == []
    # Two reviewers the DPO created yesterday approve: allowed (they did not create the requester), alerted twice
    # over: each approver is fresh, and one person controlled two approvals.
    pid = request(hub, requester)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    first, second = (account(hub, Role.REVIEWER, dpo, created_at=yesterday) for _ in range(2))
    assert decide(hub, first, pid) == "submitted"
    assert decide(hub, second, pid) == "active"
    alerts = [a for a in evaluate(hub, policy) if a.project_id == pid and a.rule in SOD_RULES]
    assert sorted(a.rule for a in alerts) == ["fresh_approver", "fresh_approver", "shared_creator"]
    (shared,) = [a for a in alerts if a.rule == "shared_creator"]
    assert shared.actor == dpo.ref and shared.severity == "high" and shared.evidence["refused"] is False
    assert sorted(shared.evidence["approvers"]) == sorted([first.ref, second.ref])
    assert {a.actor for a in alerts if a.rule == "fresh_approver"} == {first.ref, second.ref}
    # A refused attempt across one lineage is alerted too.
    pid = request(hub, account(hub, Role.RESEARCHER, dpo))
    with pytest.raises(Denied):
        decide(hub, first, pid)
    alerts = [a for a in evaluate(hub, policy) if a.project_id == pid and a.rule in SOD_RULES]
    assert [(a.rule, a.evidence["refused"]) for a in alerts] == [("shared_creator", True)]


def test_old_decisions_without_a_hash_never_count(hub: Hub) -> None:
    requester, r1, r2 = account(hub, Role.RESEARCHER), account(hub, Role.REVIEWER), account(hub, Role.REVIEWER)
    pid = request(hub, requester)
    assert decide(hub, r1, pid) == "submitted"
    with hub.session() as session:  # as a decision recorded before this revision
        session.execute(update(ProjectDecision).where(ProjectDecision.project_id == pid).values(scope_hash=None))
        session.commit()
    assert decide(hub, r2, pid) == "submitted"
