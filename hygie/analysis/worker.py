# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Runs analyses off the request thread, from one queue kept in the database for the whole hub.

A submission is checked and compiled in the request (refusals are immediate). The job then joins the queue: its
``queued_at`` is set in the transaction that counts the hub's queued and running jobs against
``analysis_queue_limit`` (beyond it the submission is refused, so one project cannot queue the hub's day), and the
request returns it queued; the client polls ``GET /projects/{id}/analyses/{job}``.

Every server process over the hub runs ``analysis_workers`` worker threads that claim ready jobs, oldest first,
whichever process accepted them: a conditional UPDATE from queued to running has one winner. The worker reads the job
again from the database and runs it under its author's rights as they are then (a researcher removed from the
project, or a project suspended, since the submission gets a refusal, not a result), in the sandbox; disclosure
control, the sealed output and the records are written in its own transaction (:func:`hygie.analysis.service.
run_job`). The process that accepted a job wakes its own workers at once; the others look every
``analysis_poll_seconds``.

When a process dies:
- a job it was still checking (queued, not yet ready) or running is failed, on the record, by the recovery of
  orphans (:func:`recover_orphans`: when a process starts, and on PostgreSQL every ``analysis_recovery_seconds``).
  A job that was running is never run again: what killed its process may be the job itself, and a second run would
  kill the next one;
- a ready job waits in the queue for any live process: a restart loses none.

Liveness on PostgreSQL: while a process checks or runs a job it holds an advisory lock on the job's id, on a
connection of its own; recovery takes (for its transaction) the lock of each job it would fail and skips those it
cannot take, so no process ever fails a live one's job. The lock goes with the holder's connection. SQLite serves one
process: recovery then runs when the process starts and skips the jobs submitted since.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hygie.analysis.models import AnalysisJob
from hygie.audit import Outcome, record
from hygie.governance.errors import Conflict
from hygie.hub import Hub
from hygie.i18n import N_

log = logging.getLogger("hygie.analysis")
QUEUED, RUNNING, FAILED = "queued", "running", "failed"
QUEUE_FULL = N_("the platform is running as many analyses as it takes: submit again in a few minutes")
RESTARTED = N_("the server restarted before this analysis finished: submit it again")
JOB_LOCK_CLASS = 0x4879
"""First key of the advisory locks on analysis jobs (PostgreSQL's two-key form: this class, the job's id)."""
QUEUE_LOCK = 0
"""Second key of the transaction lock that makes counting the queue and joining it one step across processes (job
ids start at 1)."""
CLAIM_CANDIDATES = 8
"""Ready jobs a worker looks at per claim: others may be held for a moment by the process finishing their checks."""


def _now() -> datetime:
    return datetime.now(UTC)


class Workers:
    """One process's worker threads for one hub, and its hold on the jobs it checks or runs."""

    def __init__(self, hub: Hub, threads: int | None = None) -> None:
        settings = hub.settings
        self.limit = settings.analysis_queue_limit
        self._poll = settings.analysis_poll_seconds
        self._recovery = settings.analysis_recovery_seconds
        # Weak: the threads must not keep a hub alive (tests make many; a server has one for its life).
        self._hub = weakref.ref(hub)
        self._wakes = 0
        self._stopped = False
        self._signal = threading.Condition()
        self._lock = threading.Lock()
        """Guards the holder connection (shared by the threads)."""
        self._queue_lock = threading.Lock()
        """Makes counting the queue and joining it one step within this process (all there is on SQLite)."""
        engine = getattr(hub, "engine", None)
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None
        self._holder: Connection | None = None
        """On PostgreSQL, the connection holding an advisory lock on each job of this process (module docstring)."""
        if self._engine is not None:
            self._holder = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        count = settings.analysis_workers if threads is None else threads
        self._threads = [
            threading.Thread(target=self._loop, args=(i == 0,), name=f"hygie-analysis-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    # -- holding jobs (PostgreSQL liveness) ------------------------------------------------------------------

    def hold(self, job_id: int, *, wait: bool = True) -> bool:
        """Marks ``job_id`` as this live process's; False if another process holds it (only when not waiting)."""
        if self._holder is None:
            return True
        statement = "SELECT pg_advisory_lock(:c, :j)" if wait else "SELECT pg_try_advisory_lock(:c, :j)"
        with self._lock:
            try:
                got = self._holder.execute(text(statement), {"c": JOB_LOCK_CLASS, "j": job_id}).scalar()
            except DBAPIError as exc:
                if not exc.connection_invalidated or self._engine is None:
                    raise
                # The database restarted (or failed over): the locks went with the old connection; this process's
                # running jobs may be failed by another's recovery. New holds need a live connection.
                log.warning("analysis: the job holder's connection was lost; reconnecting")
                self._holder = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                got = self._holder.execute(text(statement), {"c": JOB_LOCK_CLASS, "j": job_id}).scalar()
            return wait or bool(got)

    def let_go(self, job_id: int) -> None:
        if self._holder is None:
            return
        with self._lock:
            try:
                self._holder.execute(text("SELECT pg_advisory_unlock(:c, :j)"), {"c": JOB_LOCK_CLASS, "j": job_id})
            except Exception:  # the connection is gone, and its locks with it
                log.exception("analysis %d: advisory lock not released", job_id)

    # -- the queue -------------------------------------------------------------------------------------------

    def enqueue(self, session: Session, job: AnalysisJob) -> None:
        """Puts a checked job in the hub's queue and commits, or raises :class:`Conflict` when the hub already has
        ``analysis_queue_limit`` jobs queued or running (one text: how many would tell when other projects' jobs
        end, which depends on their data)."""
        with self._queue_lock:
            if session.get_bind().dialect.name == "postgresql":  # and across processes, to the commit
                session.execute(select(func.pg_advisory_xact_lock(JOB_LOCK_CLASS, QUEUE_LOCK)))
            waiting = session.scalar(
                select(func.count()).select_from(AnalysisJob).where(
                    AnalysisJob.status.in_((QUEUED, RUNNING)), AnalysisJob.queued_at.is_not(None)
                )
            )  # fmt: skip
            if (waiting or 0) >= self.limit:
                session.rollback()
                raise Conflict(QUEUE_FULL)
            job.queued_at = _now()
            session.commit()

    def wake(self) -> None:
        """A job joined the queue: one of this process's workers looks at once."""
        with self._signal:
            self._wakes += 1
            self._signal.notify()

    def _claim(self, hub: Hub) -> int | None:
        """The oldest ready job this process could take, moved to running; None when there is none."""
        with hub.session() as session:
            candidates = session.scalars(
                select(AnalysisJob.id)
                .where(AnalysisJob.status == QUEUED, AnalysisJob.queued_at.is_not(None))
                .order_by(AnalysisJob.queued_at, AnalysisJob.id)
                .limit(CLAIM_CANDIDATES)
            ).all()
            for job_id in candidates:
                # Held before it shows as running, so that no recovery ever sees it running and unheld.
                if not self.hold(job_id, wait=False):
                    continue
                won = session.execute(
                    update(AnalysisJob)
                    .where(AnalysisJob.id == job_id, AnalysisJob.status == QUEUED)
                    .values(status=RUNNING, started_at=_now())
                ).rowcount  # type: ignore[attr-defined]
                session.commit()
                if won == 1:
                    return job_id
                self.let_go(job_id)
        return None

    def _loop(self, recovers: bool) -> None:
        from hygie.analysis.engine import engine_for  # the engines import the service's world: at run time
        from hygie.analysis.service import run_job

        recovered = time.monotonic()
        while True:
            with self._signal:
                if not self._stopped and not self._wakes:
                    self._signal.wait(self._poll)
                if self._stopped:
                    return
                self._wakes = max(0, self._wakes - 1)
            hub = self._hub()
            if hub is None or hub.closed:  # the hub is gone or closed (a server stopping, tests): so is this pool
                return
            try:
                if recovers and self._holder is not None and time.monotonic() - recovered >= self._recovery:
                    recovered = time.monotonic()
                    recover_orphans(hub)
                while not self._stopped and (job_id := self._claim(hub)) is not None:
                    try:
                        run_job(hub, engine_for(hub), job_id)
                    finally:
                        self.let_go(job_id)
            except Exception as exc:  # the database unreachable, say: the next turn tries again
                log.error("analysis worker: %s", type(exc).__name__)
            finally:
                del hub

    def shutdown(self) -> None:
        with self._signal:
            self._stopped = True
            self._signal.notify_all()
        if self._holder is not None:  # closed for good (not back to the pool, which would keep its locks)
            with self._lock:
                self._holder.invalidate()
                self._holder.close()


_pools: dict[int, Workers] = {}
"""By id of the hub (a dataclass, not hashable); the entry goes, and the pool stops, after the hub is collected."""
_pools_lock = threading.Lock()
_collected: deque[int] = deque()
"""Ids of collected hubs whose pools are still to stop. A finalizer only appends here: it runs inside the garbage
collector, in whatever thread allocated at that moment, possibly one holding ``_pools_lock`` (a finalizer that took
the lock hung that thread for good, and every analysis request after it)."""


def workers_for(hub: Hub) -> Workers:
    """The hub's pool, created (after recovering orphans) on first use."""
    with _pools_lock:
        stopped = _reap()
        pool = _pools.get(id(hub))
        if pool is None:
            recover_orphans(hub)
            pool = _pools[id(hub)] = Workers(hub)
            weakref.finalize(hub, _collected.append, id(hub))
    for old in stopped:
        old.shutdown()
    return pool


def _reap() -> list[Workers]:
    """Takes the pools of collected hubs out of the registry (under ``_pools_lock``). A collected hub's id is queued
    before any new object can reuse it, so a new hub never inherits an old pool."""
    stopped = []
    while _collected:
        pool = _pools.pop(_collected.popleft(), None)
        if pool is not None:
            stopped.append(pool)
    return stopped


PROCESS_STARTED = datetime.now(UTC)
"""On SQLite, jobs submitted since this process started are its own, never orphans (the first submission creates
the pool, which recovers orphans: it must not fail the job that asked for it)."""


def recover_orphans(hub: Hub) -> int:
    """Marks failed every job a dead process left running or still being checked; returns how many. Ready jobs are
    not orphans: any live process runs them. On PostgreSQL, a job a live process holds (its advisory lock taken) is
    left alone; on SQLite, a job submitted since this process started."""
    with hub.session() as session:
        unfinished = or_(
            AnalysisJob.status == RUNNING, and_(AnalysisJob.status == QUEUED, AnalysisJob.queued_at.is_(None))
        )
        postgres = session.get_bind().dialect.name == "postgresql"
        wanted = select(AnalysisJob).where(unfinished)
        if not postgres:
            wanted = wanted.where(AnalysisJob.submitted_at < PROCESS_STARTED)
        orphans = list(session.scalars(wanted))
        if postgres:  # held until this transaction ends
            orphans = [
                j for j in orphans if session.scalar(select(func.pg_try_advisory_xact_lock(JOB_LOCK_CLASS, j.id)))
            ]
            for job in orphans:  # read again under the lock: it may have finished since the first read
                session.refresh(job)
            orphans = [j for j in orphans if j.status == RUNNING or (j.status == QUEUED and j.queued_at is None)]
        now = _now()
        from hygie.analysis.dprelease import close_charge

        for job in orphans:
            job.status, job.error, job.finished_at = FAILED, RESTARTED, now
            # a DP job's reservation: given back if it never started (nothing read), spent if it was running
            close_charge(session, job.id, before_data=job.started_at is None, reason="restart", actor="system")
            record(session, actor="system", role=None, action="analysis.run", outcome=Outcome.FAILED,
                   object=f"analysis:{job.id}", project_id=job.project_id, purpose=None,
                   detail={"kind": job.kind, "job": job.id, "status": FAILED, "stopped": "restart"})  # fmt: skip
        session.commit()
    if orphans:
        log.warning("%d analysis jobs orphaned by a restart marked failed", len(orphans))
    return len(orphans)
