# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens' reads record their events through group commit (one transaction and one fsync for many concurrent
reads): the answer still never leaves before its event is committed, and a read whose event cannot be committed is
refused (503), never answered."""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import pytest
from sqlalchemy import func, select, update

from hygie.audit.events import AuditEvent
from hygie.audit.log import TransparencyLog
from hygie.audit.recorder import BatchRecorder
from hygie.audit.storage import AuditLeaf
from hygie.governance.models import Account
from hygie.memo import BoundedMemo
from tests.portal.world import World

READS = {"/me/data-uses": "citizen.data_uses", "/me/reimbursements": "citizen.reimbursements"}


def test_a_read_is_answered_only_once_its_event_is_committed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.active_project()
    headers = world.headers("citizen1")
    answered = threading.Event()
    answered_before_commit: list[bool] = []
    commit = BatchRecorder._commit

    def held_commit(self: BatchRecorder, batch: list[Any]) -> None:
        # An answer that did not wait for this commit gets every chance to leave first. The wait is only a bound:
        # with the defence in place no answer can come, so it always runs out.
        answered.wait(timeout=2)
        answered_before_commit.append(answered.is_set())
        commit(self, batch)

    monkeypatch.setattr(BatchRecorder, "_commit", held_commit)
    for path, action in READS.items():
        answered.clear()
        r = world.client.get(path, headers=headers)
        answered.set()
        assert r.status_code == 200, r.text
        with world.hub.session() as session:  # a connection of its own: only committed rows
            event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
            assert event.action == action and event.actor == f"account:{world.ids['citizen1']}"
    assert answered_before_commit == [False, False]
    # The sequencer (the checkpointer's, here called directly) gives them their leaves in the one tree.
    TransparencyLog.for_hub(world.hub).sequence()
    with world.hub.session() as session:
        reads = select(AuditEvent.id).where(AuditEvent.action.in_(list(READS.values())))
        assert session.scalar(select(func.count()).select_from(AuditLeaf).where(AuditLeaf.event_id.in_(reads))) == 2


def test_a_read_whose_event_is_not_committed_is_refused_never_answered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = world.headers("citizen1")

    def failing(self: BatchRecorder, events: list[Any]) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(BatchRecorder, "_store", failing)  # whichever way the recorder stores its batch
    monkeypatch.setattr(BatchRecorder, "_store_sequenced", failing)
    for path in READS:
        r = world.client.get(path, headers=headers)
        assert r.status_code == 503 and "retry-after" in r.headers, (path, r.status_code, r.text)
        assert "uses" not in r.text and "reimbursements" not in r.text


def test_a_read_whose_commit_hangs_is_refused_in_bounded_time(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = world.headers("citizen1")
    release = threading.Event()
    commit = BatchRecorder._commit

    def hung_commit(self: BatchRecorder, batch: list[Any]) -> None:
        release.wait(timeout=60)
        commit(self, batch)

    monkeypatch.setattr(BatchRecorder, "_commit", hung_commit)
    monkeypatch.setattr(world.hub.settings, "audit_read_commit_wait_seconds", 0.2)
    try:
        r = world.client.get("/me/data-uses", headers=headers)
        assert r.status_code == 503 and "retry-after" in r.headers, r.text
        assert "uses" not in r.json()
    finally:
        release.set()


def test_a_closed_session_or_disabled_account_is_refused_at_the_next_read(world: World) -> None:
    """Nothing about sessions or accounts is kept between requests: the next read after a sign-out, or after the
    account is disabled (by any process: here straight in the database), is refused."""
    for path in READS:
        headers = world.headers("citizen1")
        assert world.client.get(path, headers=headers).status_code == 200
        assert world.client.post("/auth/logout", headers=headers).status_code == 200
        assert world.client.get(path, headers=headers).status_code == 401
        world.tokens.pop("citizen1")
    headers = world.headers("citizen2")
    assert world.client.get("/me/data-uses", headers=headers).status_code == 200
    with world.hub.session() as session:
        session.execute(update(Account).where(Account.id == world.ids["citizen2"]).values(disabled=True))
        session.commit()
    for path in READS:
        r = world.client.get(path, headers=headers)
        assert r.status_code == 401 and "disabled" in r.json()["detail"], r.text


def test_the_memo_never_answers_one_citizen_with_anothers_data(world: World) -> None:
    """Each citizen's pseudonym and person key are kept in memory once read; two citizens reading in turn each get
    their own answer, the one given with nothing kept."""
    world.active_project()
    memo = world.hub.memo()
    fresh: dict[tuple[str, str], Any] = {}
    for name in ("citizen1", "citizen2"):
        for path in READS:
            memo.clear()
            fresh[(name, path)] = world.call(name, "GET", path).json()
    assert fresh[("citizen1", "/me/reimbursements")] != fresh[("citizen2", "/me/reimbursements")]
    for _ in range(2):  # the memo is warm from the second round on
        for name in ("citizen1", "citizen2"):
            for path in READS:
                assert world.call(name, "GET", path).json() == fresh[(name, path)], (name, path)
    assert len(memo) > 0


def test_the_memo_is_bounded_expires_and_keeps_no_absence() -> None:
    calls: list[str] = []

    def compute(key: str, value: str | None) -> Any:
        return lambda: calls.append(key) or value

    memo = BoundedMemo(entries=2, seconds=600)
    for key in ("a", "b", "a", "c", "a", "b"):  # "b" went when "c" came (the oldest used first)
        memo.get(key, compute(key, key.upper()))
    assert calls == ["a", "b", "c", "b"] and len(memo) == 2
    assert memo.get("absent", compute("absent", None)) is None
    assert memo.get("absent", compute("absent", None)) is None
    assert calls[-2:] == ["absent", "absent"]  # "not in the vault" is asked again, never remembered
    expired = BoundedMemo(entries=10, seconds=-1)  # every entry is past its time at once
    expired.get("a", compute("a", "A"))
    expired.get("a", compute("a", "A"))
    assert calls[-2:] == ["a", "a"]
