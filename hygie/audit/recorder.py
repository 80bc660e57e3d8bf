# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Group commit for high-rate callers: many threads record, one writer stores each batch in one transaction.

:func:`hygie.audit.events.record` stays the call for acts that commit with their own transaction. Callers that
only need the event itself on the record (reads, queries, proofs served) use :class:`BatchRecorder`:
:meth:`~BatchRecorder.submit` queues an event and returns a future that resolves once it is committed (durable);
:meth:`~BatchRecorder.record` waits for it, so the result is returned only after its event is stored. One
fsync then covers every event that arrived while the previous batch was committing.

The writer also sequences what it writes, in the same transaction: under the log's process-wide lock and its
state row lock (see :func:`hygie.audit.storage.appending`) it first gives a leaf to any committed event not yet
sequenced (events of :func:`~hygie.audit.events.record`), then inserts the batch with ids above every existing
one, appends their leaves and the subtrees they complete, and commits once. Commit order is leaf order; the
checkpointer's sequencer has nothing left to do for these events. On PostgreSQL the writer first takes
``SHARE ROW EXCLUSIVE`` on ``audit_event`` (it waits for transactions inserting events, and new inserts wait
for it) so that no smaller id can commit later; if a caller's transaction keeps an event uncommitted for longer
than :data:`PG_LOCK_TIMEOUT`, the batch is committed unsequenced instead (the sequencer picks it up), and so is
every batch for :data:`FALLBACK_SECONDS`.

Each leaf is a salted commitment (:mod:`hygie.audit.leaf`), with a fresh salt stored beside it. The leaf of an
event is computed from the values as they are stored and read back (``detail`` is hashed from
its stored JSON text), so the verifier, which re-reads the row, finds the same leaf.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Engine, Table, select

from hygie.audit.entry import COLUMNS
from hygie.audit.entry import VERSION as ENTRY_VERSION
from hygie.audit.events import AuditEvent, Outcome
from hygie.audit.leaf import COMMITMENT_TAG, leaf_data_parts, new_leaf, new_salt
from hygie.audit.storage import Appender, appending, insert_rows

MAX_BATCH = 5_000
PG_LOCK_TIMEOUT = "250ms"
"""How long the writer waits for callers' transactions holding event inserts open, before storing unsequenced."""
FALLBACK_SECONDS = 1.0
"""After such a wait, batches are stored unsequenced (for the sequencer) for this long."""

_events = cast(Table, AuditEvent.__table__)
_INSERTED = ("at", "actor", "role", "action", "object", "project_id", "purpose", "outcome", "detail")
_LENGTHS = {c: int(_events.c[c].type.length) for c in ("actor", "role", "action", "object", "purpose", "outcome")}  # type: ignore[attr-defined]
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
_q: Callable[[str], str] = json.encoder.encode_basestring_ascii
_LOCK_NOT_AVAILABLE = "55P03"
_sha256 = hashlib.sha256


class _Busy(Exception):
    """PostgreSQL: a transaction inserting events did not finish within the lock timeout."""


class _Event:
    """An event ready to store: its column values, its entry split around the id given at insert time, and its
    leaf data split around the commitment (with the RFC 9162 0x00 prefix)."""

    __slots__ = ("head", "leaf_head", "leaf_tail", "tail", "values")

    def __init__(
        self, values: tuple[Any, ...], head: bytes, tail: bytes, leaf_head: bytes = b"", leaf_tail: bytes = b""
    ) -> None:
        self.values = values
        self.head = head
        self.tail = tail
        self.leaf_head = leaf_head
        self.leaf_tail = leaf_tail

    def leaf(self, ident: int, salt: bytes) -> bytes:
        """The leaf hash of this event stored with id ``ident`` (see :mod:`hygie.audit.leaf`)."""
        entry = self.head + str(ident).encode() + self.tail
        c = b64encode(_sha256(COMMITMENT_TAG + salt + entry).digest())
        return _sha256(self.leaf_head + c + self.leaf_tail).digest()


class BatchRecorder:
    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH, *, sequence: bool = True) -> None:
        """``sequence=False`` only inserts (the checkpointer's sequencer gives the leaves later)."""
        self.engine = engine
        self.max_batch = max_batch
        self.sequence = sequence
        self._dialect = engine.dialect.name
        self._fallback_until = 0.0
        self._queue: queue.SimpleQueue[tuple[_Event, Future[None]] | None] = queue.SimpleQueue()
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
        done: Future[None] = Future()
        try:
            event = self._prepare(
                datetime.now(UTC), actor, action, str(outcome), role, object, project_id, purpose, detail
            )
        except Exception as exc:  # this event alone is refused; it never reaches a batch
            done.set_exception(exc)
            return done
        self._queue.put((event, done))
        return done

    def record(self, **fields: Any) -> None:
        """Record and wait until the event is committed."""
        self.submit(**fields).result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _prepare(
        self,
        at: datetime,
        actor: str,
        action: str,
        outcome: str,
        role: str | None,
        object: str | None,
        project_id: int | None,
        purpose: str | None,
        detail: Mapping[str, Any] | None,
    ) -> _Event:
        """Check the values, and write the entry (:func:`~hygie.audit.entry.canonical_entry`) around its id.

        Values must read back exactly as given, or the leaf would not match the row the verifier re-reads: strings
        stay strings, ``project_id`` an int, and ``detail`` is hashed as its stored JSON text parses back.
        """
        pg = self._dialect == "postgresql"
        for name, value in (("actor", actor), ("action", action), ("outcome", outcome)):
            _check_text(name, value, pg)
        for name, optional in (("role", role), ("object", object), ("purpose", purpose)):
            if optional is not None:
                _check_text(name, optional, pg)
        if project_id is not None and type(project_id) is not int:
            raise TypeError(f"project_id must be an int, not {type(project_id).__name__}")
        if not detail:
            stored, canonical = "{}", "{}"
        else:
            stored = json.dumps(detail if type(detail) is dict else dict(detail))  # as SQLAlchemy's JSON type does
            # With string keys only, the values encode alike before and after the JSON round trip; other keys
            # become strings (and sort differently), so those details are canonicalised as they read back.
            canonical = _CANONICAL.encode(detail if _str_keys(detail) else json.loads(stored))
        iso = at.isoformat(" ", "microseconds")  # at is UTC: "YYYY-MM-DD HH:MM:SS.ffffff+00:00"
        if not iso.endswith("+00:00"):
            raise ValueError("at must be in UTC")
        at_text = f"{iso[:10]}T{iso[11:-6]}Z"
        head = f'{{"action":{_q(action)},"actor":{_q(actor)},"at":"{at_text}","detail":{canonical},"id":'
        leaf_head, leaf_tail = leaf_data_parts(action, outcome, project_id, at_text)
        tail = (
            f',"object":{_qn(object)},"outcome":{_q(outcome)},'
            f'"project_id":{"null" if project_id is None else project_id},"purpose":{_qn(purpose)},'
            f'"role":{_qn(role)},"v":{ENTRY_VERSION}}}'
        )
        stored_at: Any = at if pg else iso[:-6]  # as SQLAlchemy's SQLite DATETIME stores it
        values = (stored_at, actor, role, action, object, project_id, purpose, outcome, stored)
        return _Event(values, head.encode("ascii"), tail.encode("ascii"), b"\x00" + leaf_head, leaf_tail)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[tuple[_Event, Future[None]]] = []
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

    def _commit(self, batch: list[tuple[_Event, Future[None]]]) -> None:
        events = [e for e, _ in batch]
        try:
            if self.sequence and time.monotonic() >= self._fallback_until:
                try:
                    self._store_sequenced(events)
                except _Busy:
                    self._fallback_until = time.monotonic() + FALLBACK_SECONDS
                    self._store(events)
            else:
                self._store(events)
        except Exception as exc:  # every waiter learns its event was not stored
            for _, done in batch:
                done.set_exception(exc)
            return
        for _, done in batch:
            done.set_result(None)

    def _store(self, events: list[_Event]) -> None:
        """Insert only; ids from the database."""
        with self.engine.begin() as conn:
            cursor = cast(Any, conn.connection.driver_connection).cursor()
            _insert(cursor, self._dialect, _INSERTED, [e.values for e in events])

    def _store_sequenced(self, events: list[_Event]) -> None:
        try:
            with appending(self.engine) as log:
                cur = log.cursor
                if self._dialect == "postgresql":
                    cur.execute(f"SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'")
                    cur.execute("LOCK TABLE audit_event IN SHARE ROW EXCLUSIVE MODE")
                _, last = log.lock_state()
                cur.execute("SELECT max(id) FROM audit_event")
                top = int(cur.fetchone()[0] or 0)
                if top > last:
                    _catch_up(log, last)
                n = len(events)
                if self._dialect == "postgresql":
                    cur.execute(
                        "SELECT nextval(pg_get_serial_sequence('audit_event', 'id')) FROM generate_series(1, %s)", (n,)
                    )
                    ids = sorted(int(i) for (i,) in cur.fetchall())
                else:  # the write lock is held: nobody else takes an id until the commit
                    ids = list(range(top + 1, top + 1 + n))
                _insert(
                    cur, self._dialect, ("id", *_INSERTED), [(i, *e.values) for i, e in zip(ids, events, strict=True)]
                )
                salts = [new_salt() for _ in ids]
                log.append([(i, e.leaf(i, salt), salt) for i, e, salt in zip(ids, events, salts, strict=True)])
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _LOCK_NOT_AVAILABLE or _LOCK_NOT_AVAILABLE in str(
                getattr(getattr(exc, "orig", None), "sqlstate", "")
            ):
                raise _Busy from exc
            raise


def _check_text(name: str, value: object, pg: bool) -> None:
    if type(value) is not str:
        raise TypeError(f"{name} must be a string, not {type(value).__name__}")
    if pg and len(value) > _LENGTHS[name]:  # PostgreSQL would refuse the whole batch
        raise ValueError(f"{name} is longer than {_LENGTHS[name]} characters")


def _str_keys(value: object) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and _str_keys(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_str_keys(v) for v in value)
    return True


def _qn(value: str | None) -> str:
    return "null" if value is None else _q(value)


def _catch_up(log: Appender, last: int) -> None:
    """Leaves for committed events not yet sequenced (recorded in callers' transactions), in id order."""
    query = select(*(_events.c[c] for c in COLUMNS)).where(_events.c.id > last).order_by(_events.c.id)
    rows = log.conn.execute(query).mappings().all()
    log.append([new_leaf(r) for r in rows])


def _insert(cursor: Any, dialect: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    insert_rows(cursor, dialect, "audit_event", columns, rows)
