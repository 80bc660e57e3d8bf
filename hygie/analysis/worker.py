"""Runs analyses off the request thread: a small bounded pool of worker threads per hub.

A submission is checked and compiled in the request (refusals are immediate), then queued; the request returns the
job with status ``queued`` and the client polls ``GET /projects/{id}/analyses/{job}``. A worker runs the query in
the sandbox, applies disclosure control, stores the sealed output and records everything in its own transaction;
an unexpected error marks the job failed, on the record. ``analysis_workers`` runs execute at once; beyond
``analysis_queue_limit`` jobs waiting or running, submissions are refused so one project cannot queue the hub's day.

Jobs live in this process only. When a hub's pool is created (the first analysis request after the server starts,
or :func:`recover_orphans` called from the server's start-up), every job still marked queued or running was left by
a previous process and is marked failed: it will never finish, and its author must know. One serving process per
hub is assumed (as for ingestion); several processes sharing a metadata database would need an owner per job.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import select

from hygie.analysis.models import AnalysisJob
from hygie.audit import Outcome, record
from hygie.governance.errors import Conflict
from hygie.hub import Hub

log = logging.getLogger("hygie.analysis")
QUEUED, RUNNING, FAILED = "queued", "running", "failed"
QUEUE_FULL = "the platform is running as many analyses as it takes: submit again in a few minutes"
RESTARTED = "the server restarted before this analysis finished: submit it again"


class Workers:
    """The bounded pool of one hub."""

    def __init__(self, hub: Hub) -> None:
        settings = hub.settings
        self.limit = settings.analysis_queue_limit
        self._pool = ThreadPoolExecutor(max_workers=settings.analysis_workers, thread_name_prefix="hygie-analysis")
        self._lock = threading.Lock()
        self._inflight: set[Future[None]] = set()

    def submit(self, task: Callable[[], None]) -> Future[None]:
        with self._lock:
            if len(self._inflight) >= self.limit:
                raise Conflict(QUEUE_FULL)  # one text: how many run would tell when other projects' jobs end
            future = self._pool.submit(task)
            self._inflight.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._inflight.discard(future)

    def pending(self) -> int:
        with self._lock:
            return len(self._inflight)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_pools: dict[int, Workers] = {}
"""By id of the hub (a dataclass, not hashable); the entry goes, and the pool stops, when the hub is collected."""
_pools_lock = threading.Lock()


def workers_for(hub: Hub) -> Workers:
    """The hub's pool, created (after recovering orphans) on first use."""
    with _pools_lock:
        pool = _pools.get(id(hub))
        if pool is None:
            recover_orphans(hub)
            pool = _pools[id(hub)] = Workers(hub)
            weakref.finalize(hub, _forget, id(hub))
        return pool


def _forget(key: int) -> None:
    with _pools_lock:
        pool = _pools.pop(key, None)
    if pool is not None:
        pool.shutdown()


PROCESS_STARTED = datetime.now(UTC)
"""Jobs submitted since this process started are its own, never orphans (the first submission creates the pool,
which recovers orphans: it must not fail the job that asked for it)."""


def recover_orphans(hub: Hub) -> int:
    """Marks failed every job a previous process left queued or running; returns how many."""
    with hub.session() as session:
        orphans = list(
            session.scalars(
                select(AnalysisJob).where(
                    AnalysisJob.status.in_((QUEUED, RUNNING)), AnalysisJob.submitted_at < PROCESS_STARTED
                )
            )
        )
        now = datetime.now(UTC)
        for job in orphans:
            job.status, job.error, job.finished_at = FAILED, RESTARTED, now
            record(session, actor="system", role=None, action="analysis.run", outcome=Outcome.FAILED,
                   object=f"analysis:{job.id}", project_id=job.project_id, purpose=None,
                   detail={"kind": job.kind, "job": job.id, "status": FAILED, "stopped": "restart"})  # fmt: skip
        session.commit()
    if orphans:
        log.warning("%d analysis jobs orphaned by a restart marked failed", len(orphans))
    return len(orphans)
