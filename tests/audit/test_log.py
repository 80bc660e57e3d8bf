# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from cryptography.exceptions import InvalidSignature
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from hygie.audit import AuditEvent, record_now
from hygie.audit.checkpointer import start_checkpointer
from hygie.audit.cli import audit_app
from hygie.audit.http import router
from hygie.audit.log import TransparencyLog
from hygie.audit.recorder import BatchRecorder
from hygie.hub import Hub
from tests.audit import rfc9162
from tests.audit.helpers import check_note, env_for, fill


def _leaves(log: TransparencyLog) -> list[bytes]:
    return [rfc9162.leaf(e["leaf"].encode("ascii")) for e in log.entries(0, log.size())]


def test_proofs_for_every_size_and_index(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    # Sequence in uneven steps so stored subtrees are completed across several sequencer runs.
    for step in (5, 11, 1, 16, 3):
        fill(hub, step, start=log.size())
        log.sequence()
    n = log.size()
    assert n == 36
    leaves = _leaves(log)
    assert log.leaf_hashes(0, n) == leaves
    for size in range(1, n + 1):
        root = rfc9162.mth(leaves[:size])
        assert log.root(size) == root
        for index in range(size) if size in (1, 16, 17, 31, 32, n) else (0, size // 2, size - 1):
            p = log.inclusion_proof(index, size)
            assert (p.leaf_hash, p.root) == (leaves[index], root)
            assert p.proof == rfc9162.path(index, leaves[:size])
            assert rfc9162.root_from_inclusion(index, size, leaves[index], p.proof) == root
        for old in range(0, size + 1):
            c = log.consistency_proof(old, size)
            assert c.proof == (rfc9162.proof(old, leaves[:size]) if 0 < old < size else [])
            assert c.new_root == root and c.old_root == rfc9162.mth(leaves[:old])
            if 0 < old < size:
                assert rfc9162.roots_from_consistency(old, size, c.old_root, c.proof) == (c.old_root, root)
    with pytest.raises(ValueError):
        log.inclusion_proof(n, n)
    with pytest.raises(ValueError):
        log.consistency_proof(3, n + 1)


def test_signed_checkpoint_verifies_and_fails_after_any_change(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    fill(hub, 20)
    cp = log.checkpoint()
    assert check_note(cp.note, log.verifier_key) == (log.signer.name, 20, rfc9162.mth(_leaves(log)))
    assert log.checkpoint().id == cp.id  # nothing new: the same checkpoint
    body_end = cp.note.index("\n\n")
    for i in list(range(body_end)) + list(range(len(cp.note) - 20, len(cp.note) - 1)):
        changed = cp.note[:i] + ("A" if cp.note[i] != "A" else "B") + cp.note[i + 1 :]
        with pytest.raises((InvalidSignature, AssertionError, ValueError)):
            check_note(changed, log.verifier_key)
    fill(hub, 1, start=20)
    assert log.checkpoint().size == 21
    # The key survives reopening: it is stored wrapped by custody, not regenerated.
    assert TransparencyLog.for_hub(hub).verifier_key == log.verifier_key


def test_a_new_hub_signs_the_empty_tree_then_extends_it(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    empty = log.checkpoint()  # failed with "empty range [0, 0)" before: the checkpointer logged an error
    assert (empty.size, empty.root) == (0, rfc9162.mth([]))
    assert check_note(empty.note, log.verifier_key)[1] == 0
    fill(hub, 3)
    assert log.checkpoint().size == 3
    assert log.verify().ok


def test_checkpointer_and_batch_recorder(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    checkpointer = start_checkpointer(log, interval=0.05)
    recorder = BatchRecorder(hub.engine)
    threads = [
        threading.Thread(
            target=lambda t=t: [recorder.record(actor=f"account:{t}", action="query.run") for _ in range(25)]
        )
        for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recorder.close()
    deadline = time.monotonic() + 10
    while (latest := log.latest_checkpoint()) is None or latest.size < 100:
        assert time.monotonic() < deadline, "no checkpoint covering every event"
        time.sleep(0.05)
    checkpointer.stop()
    with hub.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 100
    report = log.verify()
    assert report.ok, report.summary()


def test_concurrent_writers_and_sequencers(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)

    def write(t: int) -> None:
        for i in range(15):
            record_now(hub.session, actor=f"account:{t}", action="query.run", detail={"i": i})

    def sequence() -> None:
        for _ in range(10):
            log.sequence()

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)] + [
        threading.Thread(target=sequence) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.sequence() == 60
    assert log.verify().ok


def test_cli(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(hub, monkeypatch)
    fill(hub, 9)
    runner = CliRunner()
    key = runner.invoke(audit_app, ["public-key"])
    assert key.exit_code == 0, key.output
    verifier = key.stdout.strip()
    cp = runner.invoke(audit_app, ["checkpoint"])
    assert cp.exit_code == 0, cp.output
    _, size, root = check_note(cp.stdout, verifier)
    assert size == 11  # the nine events, public-key's and checkpoint's own
    inc = runner.invoke(audit_app, ["prove", "--index", "4", "--size", str(size)])
    assert inc.exit_code == 0, inc.output
    p = json.loads(inc.stdout)
    assert set(p) == {"index", "size", "leaf_hash", "proof", "root"} and (p["index"], p["size"]) == (4, size)
    assert base64.b64decode(p["root"]) == root
    proof = [base64.b64decode(x) for x in p["proof"]]
    assert rfc9162.root_from_inclusion(4, size, base64.b64decode(p["leaf_hash"]), proof) == root
    con = runner.invoke(audit_app, ["prove", "--from", "5", "--to", str(size)])
    assert con.exit_code == 0, con.output
    c = json.loads(con.stdout)
    assert set(c) == {"from", "to", "proof", "old_root", "new_root"} and base64.b64decode(c["new_root"]) == root
    old_root = base64.b64decode(c["old_root"])
    assert rfc9162.roots_from_consistency(5, size, old_root, [base64.b64decode(x) for x in c["proof"]]) == (
        old_root,
        root,
    )
    assert runner.invoke(audit_app, ["prove", "--index", "999"]).exit_code != 0
    ok = runner.invoke(audit_app, ["verify"])
    assert ok.exit_code == 0 and "intact" in ok.stdout
    with hub.session() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "cli:operator")).all()
    assert sorted(set(actions)) == ["audit.checkpoint", "audit.prove", "audit.public-key", "audit.verify"]
    assert actions.count("audit.prove") == 3


def test_http(hub: Hub) -> None:
    app = FastAPI()
    app.include_router(router)
    app.state.hub = hub
    fill(hub, 18)
    client = TestClient(app)
    verifier = client.get("/audit/public-key").text.strip()
    note = client.get("/audit/checkpoint")
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    _, size, root = check_note(note.text, verifier)
    assert size == 18
    entries = client.get("/audit/entries", params={"start": 0, "end": size}).json()["entries"]
    leaves = [rfc9162.leaf(e["leaf"].encode("ascii")) for e in entries]
    assert rfc9162.mth(leaves) == root
    assert not any("needle" in json.dumps(e) or "account:" in json.dumps(e) for e in entries)  # commitments only
    p = client.get("/audit/proof/inclusion", params={"index": 17, "size": size}).json()
    proof = [base64.b64decode(x) for x in p["proof"]]
    assert rfc9162.root_from_inclusion(17, size, leaves[17], proof) == root
    c = client.get("/audit/proof/consistency", params={"from": 7, "to": size}).json()
    assert base64.b64decode(c["old_root"]) == rfc9162.mth(leaves[:7])
    assert client.get("/audit/proof/inclusion", params={"index": 18, "size": size}).status_code == 400
    assert client.get("/audit/entries", params={"start": 0, "end": 5000}).status_code == 400
