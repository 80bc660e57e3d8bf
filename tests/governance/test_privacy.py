# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The privacy-budget ledger (hygie.governance.privacy) and its governance, as attacks: budgets refused when they
protect nobody, a budget change voids approvals, exhaustion refuses the next charge, parallel charges never
overspend (and the ledger's row really is locked), a second project over the same people is charged against the
same population budget, every budget act is in the audit log in the transaction of the act, and the log alone
rebuilds the balances (a tampered balance is caught)."""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from hygie.audit import AuditEvent
from hygie.cli import app as cli_app
from hygie.governance import privacy
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.errors import Conflict
from hygie.governance.models import Account, Project, ProjectDecision
from hygie.governance.policy import Role
from hygie.governance.privacy import BudgetError, BudgetExceeded, PrivacyBudget, PrivacyCharge
from hygie.governance.projects import Projects, decision_hash, judged
from hygie.governance.register import register
from hygie.hub import Hub
from tests.conftest import TEST_PASSPHRASE
from tests.portal.world import clone_hub, release_hub

T = TypeVar("T")
WHY = "lawful purpose, minimal scope"
_names = itertools.count()
_jobs = itertools.count(1)
_years = itertools.count(2001)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub per module and database; each test makes its own accounts and projects over its own period (its
    own population budget)."""
    tmp = tmp_path_factory.mktemp("privacy")
    if request.param == "sqlite":
        made = clone_hub(tmp, request.getfixturevalue("sqlite_population"), None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        made = clone_hub(tmp, request.getfixturevalue("postgres_population"), cluster)
    yield made
    release_hub(made)


def account(hub: Hub, role: Role) -> Actor:
    with hub.session() as session:
        row = Account(username=f"{role.value}-dp-{next(_names)}", role=role.value, password_hash="x",
                      failed_logins=0, disabled=False, created_at=datetime.now(UTC), created_by="console")  # fmt: skip
        session.add(row)
        session.commit()
        return Actor(account_id=row.id, role=role, scopes=frozenset({"governance"}), via="session")


def run(hub: Hub, actor: Actor, action: str, pid: int | None, work: Callable[[Projects], T]) -> T:
    """One act as the API does it (refusals recorded)."""
    with act(hub, actor, action, object=f"project:{pid}" if pid else None, project_id=pid) as session:
        return work(Projects(hub, session))


def scope(year: int, period: tuple[str, str] | None = None) -> dict[str, Any]:
    """A narrow scope over one calendar year (or ``period`` inside it): each test's own population (the key includes
    the period; periods of different years never overlap)."""
    start, end = period or (f"{year}-01-01", f"{year}-12-31")
    return {
        "tables": {"IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN"]},
        "population": {"period_start": start, "period_end": end},
    }


def create(
    hub: Hub,
    requester: Actor,
    year: int,
    *,
    purpose: str = "research",
    period: tuple[str, str] | None = None,
    **release: Any,
) -> int:
    def make(p: Projects) -> int:
        return p.create(requester, title="Sex and birth year", organisation="Lab", purpose=purpose,
                        justification="Describe the population by sex and age.",
                        public_summary="Who is covered, by sex and age.", scope=scope(year, period), duration_days=30,
                        **release).id  # fmt: skip

    return run(hub, requester, "project.create", None, make)


def decide(hub: Hub, reviewer: Actor, pid: int) -> str:
    return run(hub, reviewer, "project.approve", pid, lambda p: p.decide(reviewer, pid, "approve", WHY).status)


def active_dp(
    hub: Hub, year: int, budget: float, *, purpose: str = "research", period: tuple[str, str] | None = None
) -> int:
    """A DP project taken through request, submission and two approvals (its budgets opened at activation)."""
    requester, r1, r2 = account(hub, Role.RESEARCHER), account(hub, Role.REVIEWER), account(hub, Role.REVIEWER)
    pid = create(hub, requester, year, purpose=purpose, period=period, release_mode="dp", privacy_budget=budget)
    run(hub, requester, "project.submit", pid, lambda p: p.submit(requester, pid).status)
    decide(hub, r1, pid)
    assert decide(hub, r2, pid) == "active"
    return pid


def events(hub: Hub, pid: int, action: str) -> list[AuditEvent]:
    with hub.session() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.project_id == pid, AuditEvent.action == action)
                .order_by(AuditEvent.id)
            )
        )  # fmt: skip


def budget(hub: Hub, pid: int) -> privacy.Budget:
    with hub.session() as session:
        found = privacy.project_budget(session, pid)
        assert found is not None
        return found


def reserve(hub: Hub, pid: int, cost: float, job: int | None = None) -> int:
    """Reserve in a transaction of its own, committed (a refusal's record too, as the analysis service does)."""
    job = job if job is not None else next(_jobs)
    with hub.session() as session:
        try:
            privacy.reserve(session, pid, job, cost, actor="account:1")
        except BudgetExceeded:
            session.commit()  # its refusal's record
            raise
        session.commit()
    return job


def settle(hub: Hub, job: int) -> None:
    with hub.session() as session:
        privacy.settle(session, job)
        session.commit()


def refund(hub: Hub, job: int, reason: str = "refused before it ran") -> None:
    with hub.session() as session:
        privacy.refund(session, job, reason=reason)
        session.commit()


# -- the request: chosen, refused when absurd, judged, opened at activation ---------------------------------


def test_budget_is_requested_judged_and_opened_at_activation(hub: Hub) -> None:
    requester, r1, r2 = account(hub, Role.RESEARCHER), account(hub, Role.REVIEWER), account(hub, Role.REVIEWER)
    year = next(_years)
    # Budgets that protect nobody, or that nobody could ever spend, are refused with a clear reason.
    refused = {
        -1.0: "more than zero",
        0: "more than zero",
        math.nan: "NaN",
        math.inf: "infinite",
        -math.inf: "infinite",
        "0.5": "must be a number",
        True: "must be a number",
        1e300: "more than a whole population's budget",
        None: "needs a privacy_budget",
    }
    for amount, why in refused.items():
        with pytest.raises(BudgetError, match=why):
            create(hub, requester, year, release_mode="dp", privacy_budget=amount)
    with pytest.raises(BudgetError, match="only for release_mode 'dp'"):
        create(hub, requester, year, privacy_budget=0.5)
    with pytest.raises(BudgetError, match="release_mode must be one of sdc, dp"):
        create(hub, requester, year, release_mode="laplace", privacy_budget=0.5)
    # An 'sdc' project's decision hash does not carry release fields (hashes of older projects are unchanged).
    sdc = create(hub, requester, year)
    with hub.session() as session:
        project = session.get(Project, sdc)
        assert project is not None and project.release_mode == "sdc" and project.privacy_budget is None
        assert privacy.project_budget(session, project) is None
        assert "release_mode" not in judged(project) and "privacy_budget" not in judged(project)

    pid = create(hub, requester, year, release_mode="dp", privacy_budget=0.5)
    assert events(hub, pid, "project.create")[-1].detail["privacy_budget"] == 0.5
    run(hub, requester, "project.submit", pid, lambda p: p.submit(requester, pid).status)
    decide(hub, r1, pid)
    # A budget changed after an approval voids it, like any judged field; a bad new budget changes nothing.
    with pytest.raises(BudgetError, match="NaN"):
        run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, privacy_budget=math.nan))
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, privacy_budget=0.4).status)
    with hub.session() as session:
        approval = session.scalars(select(ProjectDecision).where(ProjectDecision.project_id == pid)).one()
        project = session.get(Project, pid)
        assert project is not None and project.privacy_budget == 0.4 and project.scope_version == 2
        assert approval.voided_at is not None and approval.scope_hash != decision_hash(project)
    change = events(hub, pid, "project.change")[-1].detail
    assert change["fields"] == ["privacy_budget", "release_mode"] and change["privacy_budget"] == 0.4
    assert change["voided_decisions"] == [approval.id]
    assert budget(hub, pid).total == 0.4 and budget(hub, pid).population_total == 0.0  # not opened yet
    with hub.session() as session:
        assert session.scalar(select(PrivacyBudget).where(PrivacyBudget.name == f"project:{pid}")) is None
    decide(hub, r1, pid)
    assert decide(hub, r2, pid) == "active"
    # Activation opened the project's budget and its population's, each an audit event, before it returned.
    opened = events(hub, pid, "privacy.budget.open")
    key = budget(hub, pid).population_key
    assert [e.detail["budget"] for e in opened] == [f"project:{pid}", f"population:{key}"]
    assert [e.detail["total"] for e in opened] == [0.4, hub.settings.dp_population_budget]
    assert events(hub, pid, "project.activate")[-1].detail["privacy_budget"] == 0.4
    state = budget(hub, pid)
    assert (state.total, state.spent, state.left, state.population_left, state.available) == (0.4, 0, 0.4, 1, 0.4)
    # A budget raised on an active project sends it back to review; approved again, its total follows and the
    # change is an audit event of its own (what it spent stays spent).
    job = reserve(hub, pid, 0.1)
    settle(hub, job)
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, privacy_budget=0.6).status)
    assert budget(hub, pid).total == 0.4  # the ledger keeps the approved total until the change is approved
    with pytest.raises(BudgetError, match="is submitted, not active"):  # back in review: nothing is charged
        reserve(hub, pid, 0.01)
    decide(hub, r1, pid)
    assert decide(hub, r2, pid) == "active"
    reopened = events(hub, pid, "privacy.budget.open")[-1].detail
    assert reopened == {"budget": f"project:{pid}", "total": 0.6, "previous_total": 0.4}
    state = budget(hub, pid)
    assert state.total == 0.6 and state.spent == pytest.approx(0.1) and state.left == pytest.approx(0.5)
    # Back to 'sdc': the budget goes with the mode.
    run(hub, requester, "project.change", pid, lambda p: p.change(requester, pid, release_mode="sdc").status)
    with hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None and project.release_mode == "sdc" and project.privacy_budget is None


# -- the ledger ------------------------------------------------------------------------------------------------


def test_exhaustion_refuses_with_a_clear_error_and_refund_restores(hub: Hub) -> None:
    pid = active_dp(hub, next(_years), 0.3)
    # Three charges of 0.1 fit a budget of 0.3 (floating-point drift is not a refusal).
    jobs = [reserve(hub, pid, 0.1) for _ in range(3)]
    assert budget(hub, pid).reserved == pytest.approx(0.3) and budget(hub, pid).left == pytest.approx(0)
    with pytest.raises(BudgetExceeded, match=r"needs a privacy budget of 0\.05; project \d+ has 0 left of 0\.3"):
        reserve(hub, pid, 0.05)
    refusal = events(hub, pid, "privacy.reserve")[-1]
    assert refusal.outcome == "denied" and refusal.detail["refused_by"] == "project"
    assert BudgetExceeded.status == 409
    # Settling is once: a second settle, or a refund of what was spent, is refused and changes nothing.
    settle(hub, jobs[0])
    with pytest.raises(Conflict, match="already spent"):
        settle(hub, jobs[0])
    with pytest.raises(Conflict, match="already spent"):
        refund(hub, jobs[0])
    with pytest.raises(BudgetError, match="has no privacy budget reservation"):
        settle(hub, 10**9)
    with pytest.raises(BudgetError, match="needs its reason"):
        refund(hub, jobs[1], reason="  ")
    with pytest.raises(BudgetError, match="already charged"):
        reserve(hub, pid, 0.01, job=jobs[1])
    state = budget(hub, pid)
    assert (state.spent, state.reserved) == (pytest.approx(0.1), pytest.approx(0.2))
    # A refund gives the reservation back: the next request fits again.
    refund(hub, jobs[1])
    with pytest.raises(Conflict, match="already refunded"):
        refund(hub, jobs[1])
    state = budget(hub, pid)
    assert (state.spent, state.reserved, state.left) == (pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1))
    reserve(hub, pid, 0.05)
    # Costs that are not amounts are refused like budgets.
    for cost in (0, -0.1, math.nan, math.inf):
        with pytest.raises(BudgetError):
            reserve(hub, pid, cost)
    with hub.session() as session:
        statuses = {c.job_id: c.status for c in session.scalars(select(PrivacyCharge).where(
            PrivacyCharge.project_id == pid))}  # fmt: skip
    assert statuses[jobs[0]] == "spent" and statuses[jobs[1]] == "refunded" and statuses[jobs[2]] == "reserved"


def test_a_second_project_over_the_same_people_shares_the_population_budget(hub: Hub) -> None:
    year = next(_years)
    first = active_dp(hub, year, 1.0)
    second = active_dp(hub, year, 1.0)
    other_purpose = active_dp(hub, year, 1.0, purpose="surveillance")
    a, b, c = budget(hub, first), budget(hub, second), budget(hub, other_purpose)
    assert a.population_key == b.population_key != c.population_key
    assert a.projects_sharing == b.projects_sharing == 2 and c.projects_sharing == 1
    with hub.session() as session:
        project = session.get(Project, other_purpose)
        assert project is not None
        assert {p.id for p in privacy.overlapping_projects(session, project)} >= {first, second}
        # The shared population's budget was opened once, by the first activation.
        rows = session.scalars(select(PrivacyBudget).where(PrivacyBudget.name == f"population:{a.population_key}"))
        assert len(list(rows)) == 1
    # Spending in the first lowers what the second may spend, though the second spent nothing of its own.
    settle(hub, reserve(hub, first, 0.7))
    b = budget(hub, second)
    assert b.left == 1.0 and b.population_left == pytest.approx(0.3) and b.available == pytest.approx(0.3)
    with pytest.raises(BudgetExceeded, match="the population this project shares with other projects"):
        reserve(hub, second, 0.4)
    refusal = events(hub, second, "privacy.reserve")[-1]
    assert refusal.outcome == "denied" and refusal.detail["refused_by"] == "population"
    b = budget(hub, second)  # the project's own row was given back in the refused transaction
    assert b.reserved == 0 and b.left == 1.0
    reserve(hub, second, 0.3)
    assert budget(hub, first).available == pytest.approx(0)
    # Another purpose over the same people has its own population budget (shown to reviewers as overlapping), and
    # was charged every release above too: the same people are the same people.
    assert budget(hub, other_purpose).left == 1.0 and budget(hub, other_purpose).available == pytest.approx(0)
    with pytest.raises(BudgetExceeded, match="also in the population of other projects"):
        reserve(hub, other_purpose, 0.1)


def test_a_shifted_period_or_another_purpose_escapes_no_budget(hub: Hub) -> None:
    """The walk around the population budget: the same people asked for again under a population written a little
    differently (one day later, a narrower age band, another purpose). Each opens a population budget of its own,
    and each is charged against every population that may share people with it, so none starts afresh."""
    year = next(_years)
    first = active_dp(hub, year, 1.0)
    settle(hub, reserve(hub, first, 0.9))
    shifted = active_dp(hub, year, 1.0, period=(f"{year}-01-02", f"{year}-12-31"))
    other_purpose = active_dp(hub, year, 1.0, purpose="surveillance", period=(f"{year}-03-01", f"{year}-06-30"))
    assert len({budget(hub, pid).population_key for pid in (first, shifted, other_purpose)}) == 3
    for pid in (shifted, other_purpose):
        assert budget(hub, pid).left == 1.0 and budget(hub, pid).available == pytest.approx(0.1)
        with pytest.raises(BudgetExceeded, match="also in the population of other projects"):
            reserve(hub, pid, 0.2)
        refusal = events(hub, pid, "privacy.reserve")[-1]
        assert refusal.outcome == "denied" and refusal.detail["refused_by"] == "overlapping"
        assert budget(hub, pid).reserved == 0  # what the refused request took was given back
    settle(hub, reserve(hub, shifted, 0.1))  # what is left, the shifted project may spend: then nobody may
    for pid in (first, other_purpose):
        with pytest.raises(BudgetExceeded):
            reserve(hub, pid, 0.05)
    # Disjoint people (another year) are not charged: their budgets are whole.
    later = active_dp(hub, next(_years), 1.0)
    assert budget(hub, later).available == 1.0
    settle(hub, reserve(hub, later, 0.5))
    assert budget(hub, first).population_spent == pytest.approx(1.0)
    with hub.session() as session:
        assert privacy.check_replay(session) == []  # the log alone rebuilds every budget, overlapping charges too


def _race(hub: Hub, attempts: list[tuple[int, float]]) -> tuple[int, int]:
    """Fire the reservations at once, each thread with its own session; (granted, refused). A thread that finds
    the database busy (SQLite's writer lock, which the portal answers with 503) tries again, like a client."""
    gate = threading.Barrier(len(attempts))
    outcomes: list[str] = []
    problems: list[BaseException] = []

    def one(pid: int, cost: float) -> None:
        job = next(_jobs)
        gate.wait()
        for _ in range(200):
            try:
                reserve(hub, pid, cost, job=job)
                outcomes.append("granted")
                return
            except BudgetExceeded:
                outcomes.append("refused")
                return
            except OperationalError:
                continue
            except BaseException as exc:  # reported below
                problems.append(exc)
                return
        problems.append(RuntimeError("the database stayed busy"))

    threads = [threading.Thread(target=one, args=attempt) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not problems, problems
    return outcomes.count("granted"), outcomes.count("refused")


def test_parallel_reservations_never_overspend(hub: Hub) -> None:
    year = next(_years)
    first, second = active_dp(hub, year, 1.0), active_dp(hub, year, 0.5)
    # Sixteen requests of 0.15 at once over two projects sharing a population budget of 1: six fit, never seven.
    granted, refused = _race(hub, [(first if i % 2 else second, 0.15) for i in range(16)])
    assert (granted, refused) == (6, 10)
    a, b = budget(hub, first), budget(hub, second)
    assert a.population_reserved == pytest.approx(0.9) and a.population_reserved <= a.population_total
    assert a.reserved <= a.total and b.reserved <= b.total + privacy.SLACK
    assert a.reserved + b.reserved == pytest.approx(0.9)
    with hub.session() as session:
        charged = session.scalars(select(PrivacyCharge).where(PrivacyCharge.project_id.in_([first, second]))).all()
        assert len(charged) == 6 and sum(c.cost for c in charged) == pytest.approx(0.9)
        assert privacy.check_replay(session) == []


def test_a_reservation_in_progress_locks_its_budget(hub: Hub) -> None:
    """The conditional UPDATE really holds the budget's row: while one reservation is uncommitted, another cannot
    read a stale balance and go ahead; it waits (here: gives up at once) and, after the first commits, is judged
    on the new balance."""
    pid = active_dp(hub, next(_years), 1.0)
    holder = hub.session()
    try:
        privacy.reserve(holder, pid, next(_jobs), 0.6, actor="account:1")  # not committed: the lock is held
        blocked: list[BaseException] = []

        def second() -> None:
            with hub.session() as session:
                if hub.engine.dialect.name == "postgresql":
                    session.execute(text("SET LOCAL lock_timeout = '200ms'"))
                else:
                    session.connection().exec_driver_sql("PRAGMA busy_timeout = 200")
                try:
                    privacy.reserve(session, pid, next(_jobs), 0.6, actor="account:2")
                except OperationalError as exc:
                    blocked.append(exc)
                finally:
                    session.rollback()
                    if hub.engine.dialect.name == "sqlite":
                        session.connection().exec_driver_sql(
                            f"PRAGMA busy_timeout = {int(hub.settings.sqlite_busy_timeout_ms)}"
                        )

        thread = threading.Thread(target=second)
        thread.start()
        thread.join()
        assert len(blocked) == 1, "a second reservation went ahead while the first held the budget"
        holder.commit()
    finally:
        holder.close()
    with pytest.raises(BudgetExceeded, match=r"has 0\.4 left of 1"):
        reserve(hub, pid, 0.6)


def test_every_budget_act_is_recorded_in_its_own_transaction(hub: Hub) -> None:
    """Reserve, settle and refund write their event in the caller's transaction: rolled back, neither the ledger
    change nor the event stays; committed, both do (recorded before the result is returned)."""
    pid = active_dp(hub, next(_years), 1.0)
    job = next(_jobs)
    for act_name, work in (
        ("privacy.reserve", lambda s: privacy.reserve(s, pid, job, 0.2, actor="account:1")),
        ("privacy.settle", lambda s: privacy.settle(s, job)),
    ):
        with hub.session() as session:
            before = len(events(hub, pid, act_name))
            work(session)
            pending = session.scalars(select(AuditEvent).where(AuditEvent.project_id == pid,
                                                              AuditEvent.action == act_name)).all()  # fmt: skip
            assert len(pending) == before + 1  # in the same transaction as the change
            session.rollback()
        assert len(events(hub, pid, act_name)) == before
        with hub.session() as session:
            work(session)
            session.commit()
        assert len(events(hub, pid, act_name)) == before + 1
    last = events(hub, pid, "privacy.settle")[-1].detail
    assert last == {"job": job, "cost": 0.2}
    refunded = reserve(hub, pid, 0.1)
    refund(hub, refunded, "the request was refused before it ran")
    assert events(hub, pid, "privacy.refund")[-1].detail["reason"] == "the request was refused before it ran"
    assert budget(hub, pid).spent == pytest.approx(0.2) and budget(hub, pid).reserved == 0


def test_the_register_shows_each_dp_projects_budget_spent_and_left(hub: Hub) -> None:
    requester = account(hub, Role.RESEARCHER)
    sdc_id = create(hub, requester, next(_years))
    run(hub, requester, "project.submit", sdc_id, lambda p: p.submit(requester, sdc_id).status)
    pid = active_dp(hub, next(_years), 0.8)
    settle(hub, reserve(hub, pid, 0.123456))
    reserve(hub, pid, 0.1)  # running: counted as used, not as left
    with hub.session() as session:
        _, entries = register(session, limit=200)
    entry = next(e for e in entries if e.id == pid)
    assert entry.release_mode == "dp" and entry.privacy_budget == 0.8
    # Three decimals, never in the project's favour: what was used rounded up, what is left rounded down.
    assert (entry.privacy_spent, entry.privacy_left, entry.population_left) == (0.124, 0.576, 0.776)
    sdc = next(e for e in entries if e.id == sdc_id)
    assert sdc.privacy_budget is None and sdc.privacy_spent is None and sdc.privacy_left is None


def budget_check(hub: Hub) -> Any:
    """``hygie projects budget-check`` on this hub, as an operator runs it."""
    settings = hub.settings
    env = {"HYGIE_DATA_DIR": str(settings.data_dir), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
           "HYGIE_KDF_MEMORY_KIB": "8192", "HYGIE_KDF_ITERATIONS": "1", "HYGIE_KDF_LANES": "1",
           **({"HYGIE_DATABASE_URL": settings.database_url} if settings.database_url else {})}  # fmt: skip
    return CliRunner().invoke(cli_app, ["projects", "budget-check"], env=env)


def test_replay_from_the_log_matches_the_ledger_and_catches_tampering(hub: Hub) -> None:
    """Runs last in the module: every charge the tests above made, replayed from the audit log alone."""
    result = budget_check(hub)
    assert result.exit_code == 0 and "the ledger matches its replay" in result.output, result.output
    with hub.session() as session:
        assert privacy.check_replay(session) == []
        replayed = privacy.replay(session)
        rows = session.scalars(select(PrivacyBudget)).all()
        assert rows and {r.name for r in rows} == set(replayed)
        for row in rows:
            assert replayed[row.name].spent == pytest.approx(row.spent, abs=1e-12)
        spender = next(r for r in rows if r.spent > 0)
        # Someone with database access gives a budget back by hand: the replay sees it.
        session.execute(update(PrivacyBudget).where(PrivacyBudget.id == spender.id)
                        .values(spent=PrivacyBudget.spent - 0.05))  # fmt: skip
        session.commit()
        problems = privacy.check_replay(session)
        assert len(problems) == 1 and problems[0].startswith(f"{spender.name}: spent is ")
        # A budget's total raised by hand, and a budget row made without its opening event, are caught too.
        session.execute(update(PrivacyBudget).where(PrivacyBudget.id == spender.id)
                        .values(spent=PrivacyBudget.spent + 0.05, total=PrivacyBudget.total + 1))  # fmt: skip
        session.add(PrivacyBudget(name="population:" + "0" * 64, kind="population", purpose="research", total=1.0,
                                  spent=0.0, reserved=0.0, opened_at=datetime.now(UTC)))  # fmt: skip
        session.commit()
        problems = privacy.check_replay(session)
        assert any(p.startswith(f"{spender.name}: total is ") for p in problems)
        assert f"population:{'0' * 64}: in the ledger, not in the log" in problems
    result = budget_check(hub)
    said = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 1 and "in the ledger, not in the log" in said and f"{spender.name}: total is" in said
    with hub.session() as session:
        checks = session.scalars(select(AuditEvent).where(AuditEvent.action == "project.budget_check")).all()
        assert [(e.outcome, e.detail["problems"]) for e in checks][-2:] == [("ok", 0), ("failed", len(problems))]


def test_the_same_people_written_another_way_are_the_same_population() -> None:
    """The population key cannot be escaped by rewriting the criteria: equivalent scopes share one budget; another
    purpose or other people do not (and overlapping people are flagged to the reviewers instead)."""
    from hygie.governance.policy import departements_by_region

    region, departements = next(iter(departements_by_region().items()))
    base = {"period_start": "2023-01-01", "period_end": "2023-12-31"}
    plain = {**base, "departements": list(departements)}
    rewritten = {**base, "age_min": 0, "age_max": 130, "sexes": [2, 1, 1], "regions": [region],
                 "drugs_atc": [], "ccam_acts": []}  # fmt: skip
    key = privacy.population_key("research", {"population": plain})
    assert privacy.population_key("research", {"population": rewritten}) == key
    everyone = privacy.population_key("research", {"population": base})
    every_departement = [d for ds in departements_by_region().values() for d in ds]
    assert privacy.population_key("research", {"population": {**base, "departements": every_departement}}) == everyone
    atc = privacy.population_key("research", {"population": {**base, "drugs_atc": ["C10AA", "C10", "C10"]}})
    assert atc == privacy.population_key("research", {"population": {**base, "drugs_atc": ["C10"]}})
    assert privacy.population_key("surveillance", {"population": plain}) != key
    older = {**plain, "age_min": 60}
    assert privacy.population_key("research", {"population": older}) != key
    crit = privacy.population_criteria
    assert privacy.may_overlap(crit("research", {"population": plain}), crit("research", {"population": older}))
    later = {"period_start": "2024-01-01", "period_end": "2024-12-31"}
    assert not privacy.may_overlap(crit("research", {"population": base}), crit("research", {"population": later}))
    men, women = {**base, "sexes": [1]}, {**base, "sexes": [2]}
    assert not privacy.may_overlap(crit("research", {"population": men}), crit("research", {"population": women}))
    young, old = {**base, "age_max": 30}, {**base, "age_min": 31}
    assert not privacy.may_overlap(crit("research", {"population": young}), crit("research", {"population": old}))
