# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Sequencing in the recorder's transaction, beside the separate sequencer; the in-memory right edge and caches."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hygie.audit import AuditEvent, leaf, record, record_now
from hygie.audit.entry import canonical_entry
from hygie.audit.log import TransparencyLog
from hygie.audit.recorder import BatchRecorder
from hygie.audit.storage import AuditLeaf, shared
from hygie.db import make_engine
from hygie.hub import Hub
from tests.audit import rfc9162

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


_text = st.text(max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    detail=st.dictionaries(st.text(max_size=6), _json, max_size=4),
    texts=st.tuples(_text, _text | st.sampled_from(sorted(leaf.REGISTER_ACTIONS)), _text | st.just("ok")),
    optional=st.tuples(st.none() | _text, st.none() | _text, st.none() | _text),
    project_id=st.none() | st.integers(),
    ident=st.integers(1, 2**62),
    at=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
)
def test_the_entry_written_around_the_id_is_the_canonical_entry(
    detail: dict[str, object],
    texts: tuple[str, str, str],
    optional: tuple[str | None, str | None, str | None],
    project_id: int | None,
    ident: int,
    at: datetime,
) -> None:
    recorder = BatchRecorder.__new__(BatchRecorder)  # _prepare only: no engine, no thread
    recorder._dialect = "sqlite"
    detail = {**detail, "id": 0, "x": {"id": 0, "v": 1}}
    actor, action, outcome = texts
    role, object, purpose = optional
    event = recorder._prepare(at, actor, action, outcome, role, object, project_id, purpose, detail)
    row = {
        "id": ident,
        "at": at,
        "actor": actor,
        "role": role,
        "action": action,
        "object": object,
        "project_id": project_id,
        "purpose": purpose,
        "outcome": outcome,
        "detail": detail,
    }
    assert event.head + str(ident).encode() + event.tail == canonical_entry(row)
    salt = bytes(range(32))
    assert event.leaf(ident, salt) == leaf.leaf_hash(leaf.salted_leaf_data(row, salt))


def _check(hub: Hub, log: TransparencyLog) -> list[bytes]:
    """Everything verifies, and the leaves are those of the events from an independent verifier."""
    report = log.verify()
    assert report.ok, report.summary()
    leaves = [rfc9162.leaf(e["leaf"].encode("ascii")) for e in log.entries(0, log.size())]
    assert log.root() == rfc9162.mth(leaves)
    return leaves


def test_recorder_sequences_in_its_own_transaction(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine)
    odd = {"é": "ü\u2028", "nested": {"id": 0, "f": 0.1, "big": 2**70, "neg": -0.0}, "1": [1, "2", None, True]}
    recorder.record(actor="account:1", action="query.run", detail=odd, project_id=4, purpose="recherche")
    # Acknowledged means committed and sequenced: no sequencer ran.
    assert log.size() == 1
    with pytest.raises(TypeError):
        recorder.record(actor="account:1", action="query.run", project_id="4")
    with pytest.raises(TypeError):
        recorder.record(actor=5, action="query.run")
    with pytest.raises(ValueError):
        recorder.record(actor="account:1", action="query.run", detail={"x": float("nan")})
    recorder.record(actor="account:1", action="query.run", detail={10: "a", 9: [{2: None, "1": 0.5}]})
    for i in range(39):
        recorder.submit(actor=f"account:{i}", action="query.run", detail={"i": i})
    recorder.record(actor="account:x", action="query.run")
    assert log.size() == 42
    recorder.close()
    _check(hub, log)


def test_recorder_and_callers_transactions_share_one_tree(hub: Hub) -> None:
    """record() in callers' transactions, record_now, the recorder and sequencers all at once: one dense tree."""
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine, max_batch=7)
    stop = threading.Event()

    def callers(t: int) -> None:
        for i in range(12):
            with hub.session() as session:
                record(session, actor=f"account:{t}", action="project.update", detail={"i": i})
                time.sleep(0.002)  # the caller's transaction stays open a moment with its event inserted
                session.commit()
            record_now(hub.session, actor=f"account:{t}", action="auth.login")

    def batched(t: int) -> None:
        for i in range(60):
            recorder.record(actor=f"account:{t}", action="query.run", detail={"i": i})

    def sequencer() -> None:
        while not stop.is_set():
            log.sequence()
            time.sleep(0.01)

    threads = [threading.Thread(target=callers, args=(t,)) for t in range(2)]
    threads += [threading.Thread(target=batched, args=(t,)) for t in range(4)]
    seq = threading.Thread(target=sequencer)
    seq.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    seq.join()
    recorder.close()
    assert log.sequence() == 2 * 24 + 4 * 60
    with hub.session() as session:
        pairs = session.execute(select(AuditLeaf.leaf_index, AuditLeaf.event_id).order_by(AuditLeaf.leaf_index)).all()
        ids = session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)).all()
    assert [i for i, _ in pairs] == list(range(len(ids)))
    assert [e for _, e in pairs] == list(ids)
    _check(hub, log)


def test_another_process_appending_is_noticed(hub: Hub) -> None:
    """A second engine on the same database (another process) appends: each reloads its right edge."""
    log = TransparencyLog.for_hub(hub)
    other = make_engine(hub.settings)
    try:
        mine, theirs = BatchRecorder(hub.engine), BatchRecorder(other)
        for round in range(5):
            for i in range(7 + round):
                mine.submit(actor="account:1", action="query.run", detail={"r": round, "i": i})
            mine.record(actor="account:1", action="query.run")
            for i in range(9):
                theirs.submit(actor="account:2", action="query.run", detail={"r": round, "i": i})
            theirs.record(actor="account:2", action="query.run")
            log.checkpoint()
        mine.record(actor="account:1", action="query.run")  # after theirs: its right edge is stale, and reloaded
        mine.close()
        theirs.close()
        assert log.size() == sum(7 + r + 1 + 10 for r in range(5)) + 1
        _check(hub, log)
        # This process's right edge was rebuilt from storage when the other one had written: it matches storage.
        frontier = shared(hub.engine).frontier
        assert frontier is not None and frontier.size == log.size() and frontier.root() == log.root()
    finally:
        other.dispose()


def test_a_failed_batch_leaves_the_tree_whole(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine)
    recorder.record(actor="account:1", action="query.run")
    import hygie.audit.storage as storage

    real = storage.Appender.append

    def broken(self: storage.Appender, rows: object) -> int:
        real(self, rows)  # type: ignore[arg-type]
        raise RuntimeError("disk full")

    monkeypatch.setattr(storage.Appender, "append", broken)
    with pytest.raises(RuntimeError):
        recorder.record(actor="account:1", action="query.run")
    monkeypatch.setattr(storage.Appender, "append", real)
    for _ in range(20):
        recorder.submit(actor="account:2", action="query.run")
    recorder.record(actor="account:2", action="query.run")
    recorder.close()
    assert log.size() == 22
    _check(hub, log)


def test_a_long_caller_transaction_does_not_stall_the_recorder(hub: Hub) -> None:
    """PostgreSQL: an event left uncommitted holds the recorder back at most the lock timeout; its batch is then
    stored unsequenced and sequenced later, behind the caller's event."""
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has a single writer: a caller's open write transaction blocks every other writer")
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine)
    recorder.record(actor="account:1", action="query.run")
    with hub.session() as session:
        record(session, actor="account:2", action="project.update")
        t0 = time.monotonic()
        recorder.record(actor="account:1", action="query.run")
        assert time.monotonic() - t0 < 5
        assert log.size() == 1  # stored, not yet sequenced: the caller's smaller id is not committed
        session.commit()
    time.sleep(1.1)  # past the fallback window: sequenced at once again, after catching up
    recorder.record(actor="account:1", action="query.run")
    recorder.close()
    assert log.size() == 4
    _check(hub, log)
