# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Runs off the request thread: queued at once, failures recorded, orphans of a restart failed; outputs sealed
under the project's view key and shredded with it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from hygie.analysis.engine import CompiledQuery, Limits, RunResult
from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.analysis.service import FAILED_MESSAGE, run_job
from hygie.analysis.worker import PROCESS_STARTED, RESTARTED, recover_orphans, workers_for
from hygie.audit import AuditEvent
from hygie.governance.models import Project
from tests.analysis.test_api import airlock_id, finished, submit_sql
from tests.portal.world import World

SQL = "SELECT b.BEN_SEX_COD AS sex, count(DISTINCT f.BEN_NIR_PSA) AS people FROM ER_PRS_F f " \
      "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1"  # fmt: skip


class BrokenEngine:
    """An engine that fails in an unexpected way (a platform bug, not a limit)."""

    name = "broken"

    def run(self, project: Project, query: CompiledQuery, limits: Limits) -> RunResult:
        raise RuntimeError("disk on fire")


def test_submission_returns_queued_and_the_client_polls(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json={"group_by": ["sex"]})
    assert r.status_code == 200
    assert r.json()["status"] in ("running", "released")  # the worker may already have finished
    job = finished(w, pid, r.json())
    assert job["status"] == "released", job


def test_pending_outputs_are_sealed_and_shredded_with_the_project(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    job = submit_sql(w, pid, SQL)
    release_id = airlock_id(w, job)
    with w.hub.session() as session:
        release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.id == release_id)).one()
        assert release.rows == [] and release.sealed_rows is not None
        assert b"people" not in release.sealed_rows and b"sex" not in release.sealed_rows
    detail = w.call("reviewer3", "GET", f"/airlock/{release_id}")
    assert detail.status_code == 200 and {str(row["sex"]) for row in detail.json()["rows"]} <= {"1", "2", "None"}
    assert w.call("dpo", "POST", f"/projects/{pid}/close", json={"reason": "the study ended early"}).status_code == 200
    gone = w.call("reviewer3", "GET", f"/airlock/{release_id}")
    assert gone.status_code == 409 and "destroyed" in gone.json()["detail"], gone.text


def test_an_unexpected_failure_fails_the_job_on_the_record(
    shared_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = shared_world
    pid = w.active_project()
    with w.hub.session() as session:
        author = w.ids["researcher1"]
        job = AnalysisJob(
            project_id=pid,
            author_id=author,
            kind="sql",
            text="SELECT 1",
            status="running",
            submitted_at=datetime.now(UTC),
            queued_at=datetime.now(UTC),
            started_at=datetime.now(UTC),
        )  # fmt: skip  (as a worker claimed it)
        session.add(job)
        session.commit()
        job_id = job.id
    pool = workers_for(w.hub)
    pool.hold(job_id)  # as the worker that claimed it does (no recovery takes it for an orphan meanwhile)
    try:
        with caplog.at_level(logging.DEBUG):
            run_job(w.hub, BrokenEngine(), job_id)
    finally:
        pool.let_go(job_id)
    # the server log says what failed and where, never the message (it may quote a value of the view)
    assert "RuntimeError at" in caplog.text and "test_worker.py" in caplog.text and "fire" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)
    with w.hub.session() as session:
        failed = session.get(AnalysisJob, job_id)
        assert failed is not None and failed.status == "failed" and failed.error == FAILED_MESSAGE
        assert "fire" not in (failed.error or "")
        event = session.scalars(select(AuditEvent).where(AuditEvent.object == f"analysis:{job_id}")
                                .order_by(AuditEvent.id.desc())).first()  # fmt: skip
        assert event is not None and event.outcome == "failed" and event.detail["stopped"] == "error"
        # a refused release, as any run that gave no output leaves: ids and the log grow the same way
        release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id)).one()
        assert release.status == "refused" and release.summary["stopped"] == "error"
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.object == f"release:{release.id}")).one()
        assert (refusal.action, refusal.outcome, refusal.detail["stopped"]) == (
            "analysis.release.refuse",
            "denied",
            "error",
        )
    shown = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}").json()
    assert shown["status"] == "withheld" and "fire" not in str(shown), shown


def test_a_restart_fails_the_jobs_left_running(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    with w.hub.session() as session:
        jobs = [
            # Submitted before this process started, as a job a previous server left behind.
            AnalysisJob(project_id=pid, author_id=w.ids["researcher1"], kind="sql", text="SELECT 1", status=status,
                        submitted_at=PROCESS_STARTED - timedelta(minutes=1))
            for status in ("queued", "running")
        ]  # fmt: skip
        session.add_all(jobs)
        session.commit()
        ids = [j.id for j in jobs]
    mine = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json={"sql": "SELECT 1 AS one"}).json()
    recover_orphans(w.hub)  # (on PostgreSQL a worker's periodic recovery may have failed them already)
    # A job of this very process is never taken for an orphan.
    assert w.call("researcher1", "GET", f"/projects/{pid}/analyses/{mine['id']}").json()["error"] != RESTARTED
    with w.hub.session() as session:
        for job_id in ids:
            stored = session.get(AnalysisJob, job_id)
            assert stored is not None and stored.status == "failed" and stored.error == RESTARTED
    for job_id in ids:  # to its author, withheld like any job that gave no output (a crash could depend on data)
        job = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}").json()
        assert job["status"] == "withheld" and job["error"] != RESTARTED, job


def test_a_queued_job_runs_under_its_authors_rights_when_it_runs_not_when_it_was_queued(shared_world: World) -> None:
    """A worker checks the job again when it claims it: an author who lost the project's data meanwhile (here an
    account that is no researcher of it) gets a refusal on the record, not a result."""
    w = shared_world
    pid = w.active_project()
    now = datetime.now(UTC)
    with w.hub.session() as session:
        job = AnalysisJob(project_id=pid, author_id=w.ids["reviewer3"], kind="sql", text=SQL, status="queued",
                          submitted_at=now, queued_at=now)  # fmt: skip
        session.add(job)
        session.commit()
        job_id = job.id
    workers_for(w.hub).wake()
    deadline = datetime.now(UTC) + timedelta(minutes=5)
    while True:
        with w.hub.session() as session:
            stored = session.get(AnalysisJob, job_id)
            assert stored is not None
            if stored.status not in ("queued", "running"):
                break
        assert datetime.now(UTC) < deadline
        time.sleep(0.1)
    assert stored.status == "refused" and "never reaches project data" in (stored.error or ""), stored.error
    with w.hub.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.object == f"analysis:{job_id}")).all()
        assert [(e.action, e.outcome) for e in events] == [("analysis.refuse", "denied")]
        assert session.scalars(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id)).all() == []


def test_a_database_restart_does_not_leave_the_job_holder_dead(shared_world: World) -> None:
    """The connection holding this process's job locks is cut (a PostgreSQL restart or failover): the next hold
    reconnects instead of failing every submission until the server is restarted."""
    w = shared_world
    if w.hub.engine.dialect.name != "postgresql":
        pytest.skip("advisory locks: PostgreSQL only")
    pool = workers_for(w.hub)
    assert pool._holder is not None
    backend = pool._holder.execute(text("SELECT pg_backend_pid()")).scalar()
    with w.hub.engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:p, 60000)"), {"p": backend}).scalar()  # gone
    assert pool.hold(999_999_001, wait=False)
    assert pool.hold(999_999_002)
    pool.let_go(999_999_001)
    pool.let_go(999_999_002)
    pid = w.active_project()
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json={"group_by": ["sex"]})
    assert r.status_code == 200 and r.json()["status"] != "refused", r.text
