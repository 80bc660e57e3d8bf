# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Aggregates of a project in differential-privacy release mode, through the HTTP API: the request's cost is
reserved before anything runs and spent with the release, a request over the budget is refused and nothing runs,
every cell of the public grid comes with its noise and interval, one person's many rows move a cell by the bound."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import select

from hygie.analysis.dprelease import compile_dp
from hygie.analysis.engine import DuckDBEngine, Limits
from hygie.analysis.models import AnalysisJob
from hygie.analysis.spec import AggregateSpec
from hygie.analysis.worker import PROCESS_STARTED, recover_orphans
from hygie.audit import AuditEvent
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import Scope
from hygie.governance.privacy import PrivacyCharge, check_replay, open_budgets, project_budget, reserve
from hygie.governance.views import READY
from tests.analysis.test_api import ran, submit, submit_sql, true_table
from tests.portal.world import World

BUDGET = 0.035
"""Room for one request of three statistics (0.03 at the default 0.01 each), not for a fourth statistic."""


def dp_project(w: World) -> int:
    """An active project switched to DP release with ``BUDGET`` (as the approval would, budgets opened)."""
    pid = w.active_project()
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        project.release_mode, project.privacy_budget = "dp", BUDGET
        open_budgets(session, project, population_budget=w.hub.settings.dp_population_budget, actor="test")
        session.commit()
    return pid


def assert_spent(w: World, pid: int, expected: float) -> None:
    """Exactly ``expected`` spent, nothing held in reservation, and the ledger is what its audit events say."""
    with w.hub.session() as session:
        budget = project_budget(session, pid)
        assert budget is not None
        assert budget.spent == pytest.approx(expected, rel=1e-12) and budget.reserved == 0.0
        assert check_replay(session) == []


def test_a_dp_release_debits_its_cost_and_the_next_over_budget_is_refused_before_running(world: World) -> None:
    w = world
    pid = dp_project(w)
    settings = w.hub.settings
    rho = settings.dp_rho_per_statistic
    spec = {"group_by": ["sex"], "measures": ["people", "events", "mean:PRS_PAI_MNT"], "totals": True}
    job = submit(w, pid, spec)
    assert job["status"] == "released", job
    assert_spent(w, pid, 3 * rho)  # exactly the stated cost
    rows = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release").json()["rows"]
    # the public grid, whatever the data holds, and the margin
    assert [r["sex"] for r in rows] == ["1", "2", "other", "Total"]
    sd = 1 / math.sqrt(2 * rho)
    truth, _ = true_table(w, pid, AggregateSpec.model_validate({"group_by": ["sex"], "measures": ["people"]}))
    true_people = {c.key[0]: c.people for c in truth.cells}
    z = 6.0  # far outside the 95 % interval: never flakes, catches a wrong scale by orders of magnitude
    for row in rows:
        assert "suppressed" not in row and set(row) >= {"people_noise_sd", "people_ci_low", "people_ci_high"}
        expected_sd = sd * (math.sqrt(3) if row["sex"] == "Total" else 1)  # a margin adds its three cells' noise
        assert row["people_noise_sd"] == pytest.approx(expected_sd, abs=0.01)
        assert row["people_ci_low"] == pytest.approx(row["people"] - 1.96 * expected_sd, abs=0.05)
        assert row["events_noise_sd"] == pytest.approx(settings.dp_events_per_person * expected_sd, abs=0.01)
        true = sum(true_people.values()) if row["sex"] == "Total" else true_people.get(row["sex"], 0)
        assert abs(row["people"] - true) < z * expected_sd
        assert row["mean_PRS_PAI_MNT_ci_low"] is None or row["mean_PRS_PAI_MNT_ci_low"] <= row["mean_PRS_PAI_MNT"]
    # the next request needs 0.01, 0.005 is left: refused from its text, before running, with the reason
    over = submit(w, pid, {"group_by": ["region"], "measures": ["people"]})
    assert over["status"] == "refused" and "privacy budget of 0.01" in over["error"], over
    assert "0.005 left" in over["error"], over
    assert ran(w, over["id"]) == "refused"
    with w.hub.session() as session:
        job_row = session.get(AnalysisJob, over["id"])
        assert job_row is not None and job_row.started_at is None  # nothing ran
        runs = session.scalars(select(AuditEvent).where(AuditEvent.action == "analysis.run"))
        run_jobs = [e.detail.get("job") for e in runs]
        assert over["id"] not in run_jobs
        denied = session.scalars(select(AuditEvent).where(AuditEvent.action == "privacy.reserve")
                                 .order_by(AuditEvent.id.desc())).first()  # fmt: skip
        assert denied is not None and denied.outcome == "denied" and denied.detail["job"] == over["id"]
        assert session.scalar(select(PrivacyCharge).where(PrivacyCharge.job_id == over["id"])) is None
    assert_spent(w, pid, 3 * rho)
    # what DP mode cannot calibrate is refused from the text, and costs nothing
    sql = submit_sql(w, pid, "SELECT COUNT(*) AS n FROM ER_PRS_F")
    assert sql["status"] == "refused" and "differential privacy" in sql["error"]
    monthly = submit(w, pid, {"group_by": ["care_month"], "measures": ["people"]})
    assert monthly["status"] == "refused" and "person-level" in monthly["error"]
    assert_spent(w, pid, 3 * rho)
    # jobs a previous process left behind: one never started gets its reservation back, one running spends it
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        project.privacy_budget = BUDGET + 0.01  # room for both (as a reviewer-approved increase would give)
        open_budgets(session, project, population_budget=w.hub.settings.dp_population_budget, actor="test")
        ids = []
        for started in (None, PROCESS_STARTED - timedelta(seconds=30)):
            job_row = AnalysisJob(project_id=pid, author_id=project.requester_id, kind="aggregate", text="{}",
                                  status="queued" if started is None else "running",
                                  submitted_at=PROCESS_STARTED - timedelta(minutes=1), started_at=started)  # fmt: skip
            session.add(job_row)
            session.flush()
            reserve(session, project, job_row.id, rho / 2, actor="test")
            ids.append(job_row.id)
        session.commit()
    recover_orphans(w.hub)  # (on PostgreSQL a worker's periodic recovery may have failed them already)
    with w.hub.session() as session:
        status = {
            c.job_id: c.status for c in session.scalars(select(PrivacyCharge).where(PrivacyCharge.job_id.in_(ids)))
        }
    assert status == {ids[0]: "refunded", ids[1]: "spent"}
    assert_spent(w, pid, 3 * rho + rho / 2)


def test_sdc_projects_are_unchanged_and_one_person_moves_a_dp_cell_by_the_bound(world: World) -> None:
    w = world
    sdc = w.active_project()
    job = submit(w, sdc, {"group_by": ["sex"], "measures": ["people"]})
    assert job["status"] == "released"
    rows = w.call("researcher1", "GET", f"/projects/{sdc}/analyses/{job['id']}/release").json()["rows"]
    assert all("suppressed" in r and "people_noise_sd" not in r for r in rows)
    with w.hub.session() as session:
        assert project_budget(session, sdc) is None
        project = session.get(Project, sdc)
        assert project is not None
        view = session.scalars(select(ProjectView).where(ProjectView.project_id == sdc,
                                                         ProjectView.status == READY)).one()  # fmt: skip
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        year = Scope.model_validate(project.scope).population.period_start.year
        spec = AggregateSpec.model_validate({"group_by": ["sex"], "measures": ["events", "sum:PRS_PAI_MNT"]})
        engine = DuckDBEngine(w.hub)
        # the clamped, per-person-reduced totals the noise is added to (before noise): with a bound of one event
        # and one euro per person, every person counts once however many care lines they have
        tight = w.hub.settings.model_copy(update={"dp_events_per_person": 1, "dp_amount_upper": 1.0})
        out = engine.run(project, compile_dp(spec, columns, reference_year=year, settings=tight).query,
                         Limits(512, 1, 60)).table.to_pylist()  # fmt: skip
        loose = engine.run(project, compile_dp(spec, columns, reference_year=year, settings=w.hub.settings).query,
                           Limits(512, 1, 60)).table.to_pylist()  # fmt: skip
    assert out and all(r["events"] == r["people"] for r in out)
    assert all(r["sum_PRS_PAI_MNT"] <= r["people"] * 1.0 + 1e-9 for r in out)
    assert sum(r["events"] for r in loose) > sum(r["events"] for r in out)  # people do have several lines
    bound = w.hub.settings.dp_events_per_person
    assert all(r["events"] <= r["people"] * bound for r in loose)
