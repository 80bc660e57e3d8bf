"""Group commit for high-rate callers: many threads record, one writer inserts each batch in one transaction.

:func:`hygie.audit.events.record` stays the call for acts that commit with their own transaction. Callers that
only need the event itself on the record (reads, queries, proofs served) use :class:`BatchRecorder`:
:meth:`~BatchRecorder.submit` queues an event and returns a future that resolves once it is committed (durable);
:meth:`~BatchRecorder.record` waits for it, so the result is returned only after its event is stored. One
fsync then covers every event that arrived while the previous batch was committing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table

from hygie.audit.events import AuditEvent, Outcome

MAX_BATCH = 5_000
_events = cast(Table, AuditEvent.__table__)


class BatchRecorder:
    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="audit-recorder", daemon=True)
        self._thread.start()

    def submit(
        self,
        *,
        actor: str,
        action: str,
        outcome: Outcome | str = Outcome.OK,
        role: str | None = None,
        object: str | None = None,
        project_id: int | None = None,
        purpose: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Future[None]:
        row = {
            "at": datetime.now(UTC),
            "actor": actor,
            "role": role,
            "action": action,
            "object": object,
            "project_id": project_id,
            "purpose": purpose,
            "outcome": str(outcome),
            "detail": dict(detail or {}),
        }
        done: Future[None] = Future()
        self._queue.put((row, done))
        return done

    def record(self, **fields: Any) -> None:
        """Record and wait until the event is committed."""
        self.submit(**fields).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[tuple[dict[str, Any], Future[None]]] = []
            closing = item is None
            if item is not None:
                batch.append(item)
            while len(batch) < self.max_batch and not closing:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                else:
                    batch.append(more)
            if batch:
                self._commit(batch)
            if closing:
                return

    def _commit(self, batch: list[tuple[dict[str, Any], Future[None]]]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(_events.insert(), [row for row, _ in batch])
        except Exception as exc:  # every waiter learns its event was not stored
            for _, done in batch:
                done.set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)
