# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Runs analyses off the request thread: a small bounded pool of worker threads per hub.

A submission is checked and compiled in the request (refusals are immediate), then queued; the request returns the
job with status ``queued`` and the client polls ``GET /projects/{id}/analyses/{job}``. A worker runs the query in
the sandbox, applies disclosure control, stores the sealed output and records everything in its own transaction;
an unexpected error marks the job failed, on the record. ``analysis_workers`` runs execute at once; beyond
``analysis_queue_limit`` jobs waiting or running, submissions are refused so one project cannot queue the hub's day.

Jobs live in this process only. When a hub's pool is created (the first analysis request after the server starts,
or :func:`recover_orphans` called from the server's start-up), every job still marked queued or running was left by
a previous process and is marked failed: it will never finish, and its author must know.

Several server processes over one PostgreSQL database (docs/operations.md, "Several server processes"): a job runs
in the process that accepted it, and every process sees it in the database. While a process holds a job, queued or
running, it holds a PostgreSQL advisory lock on the job's id on a connection of its own; a process recovering
orphans skips every job whose lock it cannot take, so a server that starts (or restarts) never fails the jobs of a
live one. The lock goes with the holder's connection: a process that dies leaves its jobs to the next recovery.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

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


class Workers:
    """The bounded pool of one hub."""

    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        self.limit = settings.analysis_queue_limit
        self._pool = ThreadPoolExecutor(max_workers=settings.analysis_workers, thread_name_prefix="hygie-analysis")
        self._lock = threading.Lock()
        self._inflight: set[Future[None]] = set()
        engine = getattr(hub, "engine", None)
        self._holder: Connection | None = None
        """On PostgreSQL, the connection holding an advisory lock on each job of this process (module docstring)."""
        if engine is not None and engine.dialect.name == "postgresql":
            self._holder = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def submit(self, task: Callable[[], None], job_id: int | None = None) -> Future[None]:
        with self._lock:
            if len(self._inflight) >= self.limit:
                raise Conflict(QUEUE_FULL)  # one text: how many run would tell when other projects' jobs end
            if job_id is not None and self._holder is not None:
                self._holder.execute(text("SELECT pg_advisory_lock(:c, :j)"), {"c": JOB_LOCK_CLASS, "j": job_id})
            future = self._pool.submit(task)
            self._inflight.add(future)
        future.add_done_callback(lambda done: self._done(done, job_id))
        return future

    def _done(self, future: Future[None], job_id: int | None = None) -> None:
        with self._lock:
            self._inflight.discard(future)
            if job_id is not None and self._holder is not None:
                try:
                    self._holder.execute(text("SELECT pg_advisory_unlock(:c, :j)"), {"c": JOB_LOCK_CLASS, "j": job_id})
                except Exception:  # the connection is gone, and its locks with it
                    log.exception("analysis %d: advisory lock not released", job_id)

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._holder is not None:  # closed for good (not back to the pool, which would keep its locks)
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
"""Jobs submitted since this process started are its own, never orphans (the first submission creates the pool,
which recovers orphans: it must not fail the job that asked for it)."""


def recover_orphans(hub: Hub) -> int:
    """Marks failed every job a previous process left queued or running; returns how many. On PostgreSQL, a job
    another live process holds (its advisory lock taken) is not an orphan: it is left alone."""
    with hub.session() as session:
        orphans = list(
            session.scalars(
                select(AnalysisJob).where(
                    AnalysisJob.status.in_((QUEUED, RUNNING)), AnalysisJob.submitted_at < PROCESS_STARTED
                )
            )
        )
        if session.get_bind().dialect.name == "postgresql":  # held until this transaction ends
            orphans = [
                j for j in orphans if session.scalar(select(func.pg_try_advisory_xact_lock(JOB_LOCK_CLASS, j.id)))
            ]
        now = datetime.now(UTC)
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
