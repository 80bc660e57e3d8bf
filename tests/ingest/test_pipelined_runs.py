# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A run of several batches: a batch is checked while the ones before it commit, yet each outcome is the one it
would have alone, in order — also when a commit fails under a batch checked as if it had succeeded."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import hygie.ingest.pipeline as pipeline
from hygie.audit import AuditEvent
from hygie.governance import citizen_index
from hygie.hub import Hub
from hygie.identity.vault import IdentityRow
from hygie.ingest.pipeline import ingest_batch, ingest_batches, planned_rows
from hygie.warehouse.stats import collect
from hygie.warehouse.store import STAGING
from tests.delivery import Delivery, care, person, refresh_manifest

UNKNOWN = "no beneficiary with this NIR in IR_BEN_R, in this batch or an earlier one"
STORED = "this care row (same nine DCIR keys) is already in the warehouse from an earlier batch"


def people(folder: Path, batch_id: str, which: range) -> Path:
    return Delivery({"IR_BEN_R": [person(i) for i in which]}).write(folder, batch_id)


def claims(folder: Path, batch_id: str, which: range, first_claim: int) -> Path:
    """One care row per person of ``which``, claim numbers from ``first_claim``."""
    rows = [care(first_claim + n, person(i)["BEN_NIR"]) for n, i in enumerate(which)]
    return Delivery({"ER_PRS_F": rows}).write(folder, batch_id)


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Callable[[], None]]]:
    """Steer commits: ``commits[batch_id]`` runs on the committing thread as that batch's extracts are written
    (inside its commit, before the catalog commit)."""
    steer: dict[str, Callable[[], None]] = {}
    real = citizen_index.index_batch

    def index_batch(hub: Hub, session: Any, batch_id: str, files: Any, care: Any = None) -> None:
        if batch_id in steer:
            steer[batch_id]()
        real(hub, session, batch_id, files, care)

    monkeypatch.setattr(pipeline, "index_batch", index_batch)
    yield steer


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> dict[str, threading.Event]:
    """``checked[batch_id]`` is set once that batch has been checked (whatever the outcome)."""
    events: dict[str, threading.Event] = {}
    real = pipeline._BatchIngestion.prepare

    def prepare(self: pipeline._BatchIngestion, recover: bool) -> bool:
        try:
            return real(self, recover)
        finally:
            events.setdefault(self.manifest.batch_id, threading.Event()).set()

    monkeypatch.setattr(pipeline._BatchIngestion, "prepare", prepare)
    return events


def held_until_checked(
    checked: dict[str, threading.Event], batch_id: str, then: Callable[[], None] | None = None
) -> Callable[[], None]:
    """A commit step that waits until ``batch_id`` has been checked: that batch is checked while this one's
    commit is open. Were batches not checked beside commits, the wait would time out and the commit fail."""

    def step() -> None:
        assert checked.setdefault(batch_id, threading.Event()).wait(120), f"{batch_id} was not checked meanwhile"
        if then is not None:
            then()

    return step


def fail() -> None:
    raise RuntimeError("the disk is full")


def statuses(results: list[pipeline.BatchResult]) -> list[tuple[str | None, str]]:
    return [(r.batch_id, r.status) for r in results]


def test_a_batch_checked_while_its_beneficiaries_commit_finds_them(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]], checked: dict[str, threading.Event]
) -> None:
    commits["P"] = held_until_checked(checked, "C")
    results = ingest_batches(hub, [people(tmp_path / "p", "P", range(6)), claims(tmp_path / "c", "C", range(6), 1)])
    assert statuses(results) == [("P", "accepted"), ("C", "accepted")], results[1].errors
    assert collect(hub)["tables"] == {"IR_BEN_R": 6, "ER_PRS_F": 6}


def test_a_claim_repeated_from_a_batch_still_committing_is_refused(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]], checked: dict[str, threading.Event]
) -> None:
    assert ingest_batch(hub, people(tmp_path / "p", "P", range(6))).status == "accepted"
    commits["A"] = held_until_checked(checked, "B")
    first = claims(tmp_path / "a", "A", range(3), 1)
    again = claims(tmp_path / "b", "B", range(2, 4), 3)  # its first row repeats A's last claim
    results = ingest_batches(hub, [first, again])
    assert statuses(results) == [("A", "accepted"), ("B", "rejected")]
    assert [(e.file, e.line, e.reason) for e in results[1].errors] == [("ER_PRS_F.csv", 2, STORED)]


def test_after_a_failed_commit_the_batches_checked_meanwhile_are_checked_again(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]], checked: dict[str, threading.Event]
) -> None:
    assert ingest_batch(hub, people(tmp_path / "p0", "P0", range(100, 104))).status == "accepted"
    with hub.session() as session:
        identities = session.scalar(select(func.count()).select_from(IdentityRow))
    # P's commit fails once B (which needs P's people) and C (which does not) have been checked as if P were in.
    commits["P"] = held_until_checked(checked, "C", then=fail)
    run = [
        people(tmp_path / "p", "P", range(6)),
        claims(tmp_path / "b", "B", range(6), 1),
        claims(tmp_path / "c", "C", range(100, 104), 50),
    ]
    reported: list[int] = []
    results = ingest_batches(hub, run, reported.append)
    assert statuses(results) == [("P", "rejected"), ("B", "rejected"), ("C", "accepted")]
    assert sum(reported) == sum(planned_rows(d) for d in run)  # B and C checked twice, their rows counted once
    assert "internal error" in results[0].errors[0].reason
    assert {e.reason for e in results[1].errors} == {UNKNOWN}
    with hub.session() as session:
        assert session.scalar(select(func.count()).select_from(IdentityRow)) == identities
        ingested = session.execute(
            select(AuditEvent.object, AuditEvent.outcome)
            .where(AuditEvent.action == "delivery.ingest")
            .order_by(AuditEvent.id)
        ).all()
        assert hub.warehouse.verify(session) == []
    assert [tuple(row) for row in ingested][-3:] == [("batch:P", "failed"), ("batch:B", "failed"), ("batch:C", "ok")]
    assert collect(hub)["batches"] == 2
    assert not list((hub.warehouse.directory / STAGING).glob("*"))


def test_the_same_batch_twice_in_a_run_is_a_duplicate(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]]
) -> None:
    commits["P"] = lambda: time.sleep(0.5)  # P still committing when its copy is taken, most runs
    folder = people(tmp_path / "p", "P", range(6))
    results = ingest_batches(hub, [folder, folder])
    assert statuses(results) == [("P", "accepted"), ("P", "duplicate")]


@pytest.mark.parametrize(("field", "value"), [("PRS_ACT_QTE", "0x1F"), ("PRS_ACT_QTE", "un")])
def test_errors_in_a_file_read_ahead_name_their_line_and_field(
    hub: Hub, tmp_path: Path, field: str, value: str
) -> None:
    """The first file of the batch after P is parsed while P is checked; the typed parse refuses these values
    there, and the file is read again exactly when its turn comes."""
    d = Delivery({"ER_PRS_F": [care(n, person(n)["BEN_NIR"]) for n in range(4)]})
    d.rows["ER_PRS_F"][2][field] = value
    run = [people(tmp_path / "p", "P", range(4)), d.write(tmp_path / "c", "C")]
    results = ingest_batches(hub, run)
    assert statuses(results) == [("P", "accepted"), ("C", "rejected")]
    assert [(e.file, e.line, e.field) for e in results[1].errors] == [("ER_PRS_F.csv", 4, field)]


def test_a_header_read_ahead_is_checked_again_when_its_file_is(hub: Hub, tmp_path: Path) -> None:
    claims_folder = claims(tmp_path / "c", "C", range(4), 1)
    path = claims_folder / "ER_PRS_F.csv"
    path.write_text(path.read_text(encoding="utf-8").replace("BEN_NIR", "NIR_BEN", 1), encoding="utf-8")
    refresh_manifest(claims_folder)
    results = ingest_batches(hub, [people(tmp_path / "p", "P", range(4)), claims_folder])
    assert statuses(results) == [("P", "accepted"), ("C", "rejected")]
    assert ("ER_PRS_F.csv", 1, "NIR_BEN") in [(e.file, e.line, e.field) for e in results[1].errors]


def test_what_is_read_ahead_serves_only_the_same_request(tmp_path: Path) -> None:
    folder = claims(tmp_path / "c", "C", range(3), 1)
    path = folder / "ER_PRS_F.csv"
    ahead = pipeline._ReadAhead()
    try:
        ahead.parse_first_segment(folder, "ER_PRS_F")
        header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
        span = (len(",".join(header)) + 1, path.stat().st_size)
        types = {c: pipeline.rules("ER_PRS_F")[c].read_type for c in header}
        waiting = dict(ahead._waiting)
        assert list(waiting) == [("parse", path, span, tuple(header))]
        assert ahead.parse(path, span, header[:-1], types) is not waiting[next(iter(waiting))]  # another header
        assert ahead.parse(path, span, header, types) is waiting[next(iter(waiting))]
        assert ahead._waiting == {}  # used once
        ahead.digest_ahead([path])
        ahead.digest_ahead([folder / "manifest.json"])  # the batch after another: the first one's are dropped
        assert list(ahead._waiting) == [("digest", folder / "manifest.json")]
    finally:
        ahead.close()


def test_a_claim_repeated_from_a_batch_committed_earlier_in_the_run_is_refused(hub: Hub, tmp_path: Path) -> None:
    """A's claims are remembered from its own check once it commits (not read back from its files): a batch
    after it, checked once A is reported, still finds them."""
    assert ingest_batch(hub, people(tmp_path / "p", "P", range(6))).status == "accepted"
    broken = Delivery({"ER_PRS_F": [care(90, person(0)["BEN_NIR"])]}).write(tmp_path / "x", "X")
    (broken / "ER_PRS_F.csv").write_text("", encoding="utf-8")  # rejected: the run waits for A before X's outcome
    run = [claims(tmp_path / "a", "A", range(3), 1), broken, claims(tmp_path / "b", "B", range(2, 4), 3)]
    results = ingest_batches(hub, run)
    assert statuses(results) == [("A", "accepted"), ("X", "rejected"), ("B", "rejected")]
    assert [(e.file, e.line, e.reason) for e in results[2].errors] == [("ER_PRS_F.csv", 2, STORED)]
    # And in a later run, from the files.
    hub.ingest_memo.clear()
    again = ingest_batches(hub, [claims(tmp_path / "b2", "B2", range(2, 4), 3)])
    assert [(e.file, e.line, e.reason) for e in again[0].errors] == [("ER_PRS_F.csv", 2, STORED)]


def test_a_run_gives_back_the_interpreter_switch_interval(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]]
) -> None:
    before = sys.getswitchinterval()
    assert ingest_batches(hub, [people(tmp_path / "p", "P", range(3))])[0].status == "accepted"
    assert sys.getswitchinterval() == before
    commits["Q"] = lambda: (_ for _ in ()).throw(KeyboardInterrupt)  # an interrupt in the middle of a commit
    with pytest.raises(KeyboardInterrupt):
        ingest_batches(hub, [people(tmp_path / "q", "Q", range(3, 6))])
    assert sys.getswitchinterval() == before


def test_no_nir_stays_in_memory_after_a_run_whatever_its_end(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]], checked: dict[str, threading.Event]
) -> None:
    """A run remembers its NIRs (one MAC each per run, not per row); a long-lived process (the portal, the demo)
    must not keep them in clear after it: accepted, refused or interrupted."""
    seen: list[int] = []
    commits["C"] = lambda: seen.append(hub.pseudonymiser.remembers())  # during the run: remembered
    results = ingest_batches(hub, [people(tmp_path / "p", "P", range(6)), claims(tmp_path / "c", "C", range(6), 1)])
    assert statuses(results) == [("P", "accepted"), ("C", "accepted")]
    assert seen and seen[0] > 0
    assert hub.pseudonymiser.remembers() == 0 and len(hub.confirmed_nirs) == 0
    refused = claims(tmp_path / "r", "R", range(3), 1)  # claims already stored
    assert ingest_batches(hub, [refused])[0].status == "rejected"
    assert hub.pseudonymiser.remembers() == 0 and len(hub.confirmed_nirs) == 0
    commits["Q"] = lambda: (_ for _ in ()).throw(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        ingest_batches(hub, [people(tmp_path / "q", "Q", range(6, 9)), claims(tmp_path / "d", "D", range(3), 50)])
    assert hub.pseudonymiser.remembers() == 0 and len(hub.confirmed_nirs) == 0


def test_an_interrupted_run_commits_nothing_checked_after_the_interrupt(
    hub: Hub, tmp_path: Path, commits: dict[str, Callable[[], None]], checked: dict[str, threading.Event]
) -> None:
    """P's commit is interrupted once A and B were checked as if P were stored: neither A nor B is committed."""

    def interrupt() -> None:
        raise KeyboardInterrupt

    commits["P"] = held_until_checked(checked, "B", then=interrupt)
    run = [
        people(tmp_path / "p", "P", range(4)),
        claims(tmp_path / "a", "A", range(2), 1),
        claims(tmp_path / "b", "B", range(2, 4), 3),
    ]
    with pytest.raises(KeyboardInterrupt):
        ingest_batches(hub, run)
    assert collect(hub)["batches"] == 0
    with hub.session() as session:
        assert hub.warehouse.verify(session) == []
