# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Any change to the stored log is found by `hygie audit verify`, which names the first bad entry."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from hygie.audit.cli import audit_app
from hygie.audit.log import TransparencyLog
from hygie.audit.note import Checkpoint
from hygie.audit.storage import node_key
from hygie.hub import Hub
from tests.audit.helpers import drop_guards, env_for, fill

N = 40


def _flip_actor(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_event SET actor = 'account:99' WHERE id = 8"))


def _flip_detail(conn: Connection) -> None:
    conn.execute(text("""UPDATE audit_event SET detail = '{"needle": "needle-00007", "rows": 8}' WHERE id = 8"""))


def _flip_time(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_event SET at = at + interval '1 microsecond' WHERE id = 8")) if (
        conn.dialect.name == "postgresql"
    ) else conn.execute(text("UPDATE audit_event SET at = replace(at, '.', '.9') WHERE id = 8"))


def _flip_outcome(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_event SET outcome = 'denied' WHERE id = 8"))


def _delete(conn: Connection) -> None:
    conn.execute(text("DELETE FROM audit_event WHERE id = 8"))


def _swap(conn: Connection) -> None:
    # Reorder: entries 7 and 9 trade places (every column but the id).
    cols = "actor, role, action, object, project_id, purpose, outcome, detail, at"
    a = conn.execute(text(f"SELECT {cols} FROM audit_event WHERE id = 8")).one()
    b = conn.execute(text(f"SELECT {cols} FROM audit_event WHERE id = 10")).one()
    for target, row in ((8, b), (10, a)):
        conn.execute(
            text("UPDATE audit_event SET actor = :actor, detail = :detail, project_id = :project_id WHERE id = :id"),
            {
                "actor": row.actor,
                "detail": row.detail if isinstance(row.detail, str) else None,
                "project_id": row.project_id,
                "id": target,
            },
        ) if isinstance(row.detail, str) else conn.execute(
            text("UPDATE audit_event SET actor = :actor, project_id = :project_id WHERE id = :id"),
            {"actor": row.actor, "project_id": row.project_id, "id": target},
        )


def _swap_leaves(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_leaf SET leaf_index = -1 WHERE leaf_index = 7"))
    conn.execute(text("UPDATE audit_leaf SET leaf_index = 7 WHERE leaf_index = 9"))
    conn.execute(text("UPDATE audit_leaf SET leaf_index = 9 WHERE leaf_index = -1"))


def _insert(conn: Connection) -> None:
    # An event slipped in between two logged ones (an id never sequenced).
    conn.execute(text("DELETE FROM audit_event WHERE id = 8"))
    conn.execute(
        text(
            "INSERT INTO audit_event (id, at, actor, action, outcome, detail) "
            "VALUES (8, CURRENT_TIMESTAMP, 'account:1', 'query.run', 'ok', '{}')"
        )
    )


def _rehash(conn: Connection) -> None:
    # A careful attacker changes an event and rewrites its leaf and every stored subtree: only checkpoints tell.
    _flip_actor(conn)
    conn.execute(text("UPDATE audit_leaf SET leaf_hash = :h WHERE leaf_index = 7"), {"h": b"\x00" * 32})


def _change_salt(conn: Connection) -> None:
    # A salt chosen after the fact (to make a commitment open to another event) no longer gives the leaf.
    conn.execute(text("UPDATE audit_leaf SET salt = :s WHERE leaf_index = 7"), {"s": b"\x02" * 32})


def _downgrade_format(conn: Connection) -> None:
    # Passing a salted leaf off as one in clear does not give the leaf either.
    conn.execute(text("UPDATE audit_leaf SET format = 1 WHERE leaf_index = 7"))


def _flip_node(conn: Connection) -> None:
    conn.execute(text("UPDATE audit_node SET hash = :h WHERE key = :k"), {"h": b"\x01" * 32, "k": node_key(4, 1)})


TAMPERS: dict[str, tuple[Callable[[Connection], None], int | None]] = {
    "actor": (_flip_actor, 7),
    "detail": (_flip_detail, 7),
    "time": (_flip_time, 7),
    "outcome": (_flip_outcome, 7),
    "delete": (_delete, 7),
    "reorder-events": (_swap, 7),
    "reorder-leaves": (_swap_leaves, 7),
    "insert": (_insert, 7),
    "rehash": (_rehash, 7),
    "salt": (_change_salt, 7),
    "format": (_downgrade_format, 7),
    "node": (_flip_node, None),
}


@pytest.mark.parametrize("name", TAMPERS)
def test_tampering_is_detected_and_the_first_bad_entry_named(
    hub: Hub, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    tamper, first_bad = TAMPERS[name]
    fill(hub, N)
    log = TransparencyLog.for_hub(hub)
    log.checkpoint()
    assert log.verify().ok
    for table in ("audit_event", "audit_leaf", "audit_node"):
        drop_guards(hub, table)
    with hub.engine.begin() as conn:
        tamper(conn)
    report = log.verify()
    assert not report.ok
    assert report.first_bad_entry == first_bad, report.summary()
    env_for(hub, monkeypatch)
    result = CliRunner().invoke(audit_app, ["verify"])
    assert result.exit_code == 1
    assert (f"first bad entry {first_bad}" if first_bad is not None else "damaged") in result.stdout


def test_truncation_is_detected(hub: Hub) -> None:
    fill(hub, N)
    log = TransparencyLog.for_hub(hub)
    log.checkpoint()
    for table in ("audit_event", "audit_leaf", "audit_node", "audit_log_state"):
        drop_guards(hub, table)
    with hub.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_event WHERE id > 30"))
        conn.execute(text("DELETE FROM audit_leaf WHERE leaf_index >= 30"))
        conn.execute(text("DELETE FROM audit_node WHERE key >= 0"))
        conn.execute(text("UPDATE audit_log_state SET size = 30, last_event_id = 30"))
    report = log.verify()
    assert not report.ok and report.first_bad_entry == 30
    assert any(p.kind == "truncated" for p in report.problems)


def test_a_fork_is_detected(hub: Hub) -> None:
    fill(hub, 10)
    log = TransparencyLog.for_hub(hub)
    cp = log.checkpoint()
    # Two checkpoints of one size with different roots, both validly signed (a misused key).
    other = bytes(32)
    note = log.signer.sign(Checkpoint(log.signer.name, cp.size, other))
    with hub.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_checkpoint (size, root_hash, note, issued_at) VALUES (:s, :r, :n, :t)"),
            {"s": cp.size, "r": other, "n": note, "t": cp.issued_at},
        )
    report = log.verify()
    assert any(p.kind == "fork" for p in report.problems), report.summary()


def test_a_forged_checkpoint_is_detected(hub: Hub) -> None:
    fill(hub, 10)
    log = TransparencyLog.for_hub(hub)
    cp = log.checkpoint()
    forged = cp.note.replace(base64.b64encode(cp.root).decode(), base64.b64encode(bytes(32)).decode())
    with hub.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO audit_checkpoint (size, root_hash, note, issued_at) VALUES (:s, :r, :n, :t)"),
            {"s": cp.size, "r": bytes(32), "n": forged, "t": cp.issued_at},
        )
    assert any(p.kind == "signature" for p in log.verify().problems)


def test_editing_the_sqlite_file_is_detected(hub: Hub) -> None:
    if hub.engine.dialect.name != "sqlite":
        pytest.skip("the SQLite file")
    fill(hub, N)
    log = TransparencyLog.for_hub(hub)
    log.checkpoint()
    hub.engine.dispose()
    path = hub.settings.data_dir / "hygie.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    at = data.index(b"needle-00021")
    data[at + len("needle-000")] ^= 0x01  # one bit of one byte: "needle-00021" becomes "needle-00031"
    path.write_bytes(bytes(data))
    report = log.verify()
    assert report.first_bad_entry == 21, report.summary()
