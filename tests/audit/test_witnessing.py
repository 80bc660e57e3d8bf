# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Outside witnesses cosign the record (issue 20): C2SP tlog-witness against three witnesses on loopback.

The cosignature verifier at the top is written from c2sp.org/tlog-cosignature and c2sp.org/signed-note alone
(it imports nothing of hygie), so a cosignature that only hygie's own code accepts would fail here.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from hygie.audit import AuditEvent, record_now
from hygie.audit.checkpointer import start_checkpointer
from hygie.audit.log import TransparencyLog
from hygie.audit.note import cosigner_key
from hygie.audit.witness_server import CheckpointStore, Witness, create_app, load_or_create_key
from hygie.audit.witnessing import WitnessEndpoint, Witnessing, WitnessingThread, latest_cosigned
from hygie.config import Settings
from hygie.hub import Hub
from tests.audit import rfc9162
from tests.audit.helpers import check_note, fill
from tests.conftest import make_settings

# -- a verifier from the specs alone -------------------------------------------------------------------------


def spec_cosignature_time(note: str, cosigner_vkey: str) -> int | None:
    """The timestamp of a valid Ed25519 cosignature/v1 by this key on the note, else None (tlog-cosignature:
    key ID = SHA-256(name || 0x0A || 0x04 || key)[:4]; blob = key ID || u64 BE time || signature over
    "cosignature/v1\\ntime <t>\\n" || checkpoint body)."""
    name, kid_hex, key_b64 = cosigner_vkey.split("+", 2)
    raw = base64.b64decode(key_b64, validate=True)
    assert raw[0] == 0x04 and len(raw) == 33
    public = raw[1:]
    kid = hashlib.sha256(name.encode() + b"\n" + b"\x04" + public).digest()[:4]
    assert kid.hex() == kid_hex
    body, signatures = note.split("\n\n", 1)
    body += "\n"
    for line in signatures.rstrip("\n").split("\n"):
        dash, signer, b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(b64, validate=True)
        if signer != name or blob[:4] != kid or len(blob) != 76:
            continue
        t = int.from_bytes(blob[4:12], "big")
        message = b"cosignature/v1\ntime " + str(t).encode() + b"\n" + body.encode()
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)
        except Exception:
            return None
        return t
    return None


def spec_quorum(note: str, keys: list[str]) -> int:
    return sum(spec_cosignature_time(note, k) is not None for k in keys)


# -- three witnesses on loopback -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    witness: Witness
    port: int
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url} {self.witness.verifier_key}"

    def start(self) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(self.witness), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name=f"witness-{self.port}", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the witness did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.server = None


@dataclass
class World:
    dir: Path
    settings: Settings
    hub: Hub
    log: TransparencyLog
    witnesses: list[Running]

    @property
    def keys(self) -> list[str]:
        return [w.witness.verifier_key for w in self.witnesses]

    def witnessing(self, log: TransparencyLog | None = None, quorum: int = 2) -> Witnessing:
        return Witnessing(log or self.log, [WitnessEndpoint.parse(w) for w in self.settings.audit_witnesses], quorum)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("witnessing")
    names = [f"witness.example/w{i}" for i in range(3)]
    keys = [load_or_create_key(root / f"w{i}.key", name) for i, name in enumerate(names)]
    ports = [free_port() for _ in names]
    endpoints = [f"http://127.0.0.1:{p} {cosigner_key(n, k.public_key().public_bytes_raw())}"
                 for p, n, k in zip(ports, names, keys, strict=True)]  # fmt: skip
    settings = make_settings(root / "hub", audit_witnesses=endpoints, audit_witness_quorum=2)
    hub = Hub.init(settings)
    log = TransparencyLog.for_hub(hub)
    fill(hub, 5)
    witnesses = []
    for i, (name, key, port) in enumerate(zip(names, keys, ports, strict=True)):
        store = CheckpointStore(root / f"w{i}.json")
        w = Running(Witness(name, key, {log.signer.name: log.verifier_key}, store), port)
        w.start()
        witnesses.append(w)
    world = World(root, settings, hub, log, witnesses)
    yield world
    for w in witnesses:
        if w.server is not None:
            w.stop()
    world.hub.close()


def events(hub: Hub, action: str) -> list[AuditEvent]:
    with hub.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# -- tests (they run in file order and share the world) ------------------------------------------------------


def test_two_of_three_cosign_when_one_is_down(world: World) -> None:
    witnessing = world.witnessing(quorum=2)
    world.witnesses[2].stop()  # the third witness is down
    try:
        checkpoint = world.log.checkpoint()
        results = witnessing.submit(checkpoint)
        assert [r.state for r in results] == ["cosigned", "cosigned", "unreachable"]
        assert witnessing.is_cosigned(checkpoint.id)
        found = latest_cosigned(world.log, world.keys, 2)
        assert found is not None
        served, names = found
        assert served.id == checkpoint.id and names == ["witness.example/w0", "witness.example/w1"]
        # From the specs alone: two valid cosignatures out of the three keys; the log's own signature intact.
        assert spec_quorum(served.cosigned_note, world.keys) == 2
        assert served.cosigned_note.startswith(checkpoint.note)
        # The unreachable witness is on the record, once.
        assert len(events(world.hub, "audit.witness.unreachable")) == 1
    finally:
        world.witnesses[2].start()  # back, same port, same store
    # The log grows; the next checkpoint goes out with consistency proofs from each witness's size. The log
    # wrongly believes the third witness holds size 3: the witness answers 409 with its size (0, it never
    # cosigned) and the log resends from there.
    fill(world.hub, 9, start=100)
    checkpoint = world.log.checkpoint()
    witnessing._sizes[world.witnesses[2].witness.name] = 3  # a wrong belief: the witness must correct it (409)
    results = witnessing.submit(checkpoint)
    assert [r.state for r in results] == ["cosigned"] * 3
    note = world.log.checkpoint().cosigned_note
    assert spec_quorum(note, world.keys) == 3
    for w in world.witnesses:
        assert w.witness.store.latest(world.log.signer.name) == (checkpoint.size, checkpoint.root)


def test_public_endpoint_and_cli_show_cosignatures(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from hygie.audit.cli import audit_app
    from hygie.governance.accounts import Actor, Scope
    from hygie.governance.policy import Role
    from hygie.portal.app import create_app as portal_app
    from hygie.portal.transparency import my_entries
    from tests.audit.helpers import env_for

    client = TestClient(portal_app(world.hub))  # no lifespan: no background threads
    fill(world.hub, 2, start=700)  # a newer checkpoint, not witnessed yet
    newest = world.log.checkpoint()
    served = client.get("/audit/checkpoint").text
    assert served == newest.note and spec_quorum(served, world.keys) == 0
    cosigned = client.get("/audit/checkpoint/cosigned")
    assert cosigned.status_code == 200 and spec_quorum(cosigned.text, world.keys) == 3
    assert cosigned.text.split("\n")[1] != str(newest.size)
    page = client.get("/journal").text
    assert "Dernier point de contrôle cosigné" in page and "witness.example/w2" in page
    # A citizen's receipt: the checkpoint of the proofs, and the newest cosigned one with a consistency proof to it.
    citizen = Actor(account_id=424242, role=Role.CITIZEN, scopes=frozenset({Scope.CITIZEN}))
    record_now(world.hub.session, actor=citizen.ref, role="citizen", action="citizen.opt_out")
    with world.hub.session() as session:
        receipt = my_entries(world.hub, session, citizen)
    assert receipt.cosigned is not None and receipt.cosigned_consistency is not None
    assert spec_quorum(receipt.cosigned.cosigned_note, world.keys) == 3
    old_size, new_size = receipt.cosigned.size, receipt.checkpoint.size
    proof = [base64.b64decode(p) for p in receipt.cosigned_consistency]
    assert rfc9162.roots_from_consistency(old_size, new_size, receipt.cosigned.root, proof) == (
        receipt.cosigned.root, receipt.checkpoint.root)  # fmt: skip
    [entry] = receipt.entries
    audit_path = [base64.b64decode(p) for p in entry["proof"]]
    leaf = base64.b64decode(entry["leaf_hash"])
    assert rfc9162.root_from_inclusion(entry["index"], new_size, leaf, audit_path) == receipt.checkpoint.root
    env_for(world.hub, monkeypatch)
    runner = CliRunner()
    args = ["verify", *(a for k in world.keys for a in ("--witness-key", k))]
    result = runner.invoke(audit_app, [*args, "--quorum", "2"])
    assert result.exit_code == 0, result.output
    assert "cosigned by witness.example/w0, witness.example/w1, witness.example/w2" in result.output
    stranger = Witness("stranger.example/w", Ed25519PrivateKey.generate(), {}, CheckpointStore(world.dir / "x.json"))
    result = runner.invoke(audit_app, ["verify", "--witness-key", stranger.verifier_key])
    assert result.exit_code == 1 and "no checkpoint is cosigned" in result.output


def test_a_dead_witness_never_touches_the_write_path(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural: while a witness request hangs, record() and signing go on in this thread, which never
    opens a connection."""
    entered, release = threading.Event(), threading.Event()

    class Hanging(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            entered.set()
            release.wait(30)
            raise httpx.ConnectError("witness down", request=request)

    dead = WitnessEndpoint.parse(f"http://127.0.0.1:9 {world.witnesses[0].witness.verifier_key}")
    sender = WitnessingThread(Witnessing(world.log, [dead], 1, client=httpx.Client(transport=Hanging())))
    connects: list[str] = []
    real_connect = socket.socket.connect

    def watched(self: socket.socket, address: Any) -> Any:
        connects.append(threading.current_thread().name)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", watched)
    try:
        sender.offer(world.log.checkpoint())
        assert entered.wait(30)  # the witness request is in flight, and hangs
        fill(world.hub, 3, start=200)  # writes commit meanwhile
        checkpoint = world.log.checkpoint()  # and a new checkpoint is signed
        sender.offer(checkpoint)  # handed over without waiting
        assert not release.is_set() and entered.is_set()
        assert threading.current_thread().name not in connects
    finally:
        release.set()
        sender.stop()


def snapshot(world: World, name: str) -> Settings:
    """A copy of the hub's data dir as it is now (same signing key, same history): a backup, or where a fork
    starts. The hub is closed for the copy and reopened."""
    world.hub.close()
    shutil.copytree(world.settings.data_dir, world.dir / name)
    world.hub = Hub.open(world.settings)
    world.log = TransparencyLog.for_hub(world.hub)
    return make_settings(world.dir / name)


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[Hub, TransparencyLog]]:
    hub = Hub.open(settings)
    try:
        yield hub, TransparencyLog.for_hub(hub)
    finally:
        hub.close()


def test_forked_and_rolled_back_logs_get_no_cosignature(world: World) -> None:
    world.witnessing().submit(world.log.checkpoint())  # every witness holds the current tree
    fork_settings, twin_settings = snapshot(world, "fork"), snapshot(world, "twin")
    witnessing = world.witnessing()
    # The honest log grows and is cosigned.
    fill(world.hub, 6, start=300)
    honest = world.log.checkpoint()
    assert [r.state for r in witnessing.submit(honest)] == ["cosigned"] * 3
    with opened(fork_settings) as (fork, fork_log), opened(twin_settings) as (twin_hub, twin_log):
        # The fork rewrites what came after the copy (other events, a longer tree) under the same key.
        fill(fork, 8, start=900)
        forked = fork_log.checkpoint()
        assert forked.size > honest.size and fork_log.verifier_key == world.log.verifier_key
        results = Witnessing(fork_log, witnessing.witnesses, 2).submit(forked)
        assert [(r.state, r.status) for r in results] == [("refused", 422)] * 3
        # Same size as the honest tree, another root: two views of one size.
        fill(twin_hub, honest.size - twin_log.sequence() - 1, start=500)
        record_now(twin_hub.session, actor="account:forger", action="query.run")
        twin = twin_log.checkpoint()
        assert twin.size == honest.size and twin.root != honest.root
        results = Witnessing(twin_log, witnessing.witnesses, 2).submit(twin)
        assert [(r.state, r.status) for r in results] == [("refused", 409)] * 3
        # Nothing was cosigned, and each refusal is on the forked log's own record.
        for log in (fork_log, twin_log):
            latest = log.latest_checkpoint()
            assert latest is not None and spec_quorum(latest.cosigned_note, world.keys) == 0
        assert len(events(fork, "audit.witness.refused")) == 3
        assert len(events(twin_hub, "audit.witness.refused")) == 3
    # A rolled-back log: a backup restored after the witnesses saw more, which then grows a little.
    backup_settings = snapshot(world, "backup")
    witnessing = world.witnessing()
    fill(world.hub, 4, start=400)
    newest = world.log.checkpoint()
    assert [r.state for r in witnessing.submit(newest)] == ["cosigned"] * 3
    with opened(backup_settings) as (rolled, rolled_log):
        record_now(rolled.session, actor="account:restorer", action="query.run")
        back = rolled_log.checkpoint()
        assert back.size < newest.size
        results = Witnessing(rolled_log, witnessing.witnesses, 2).submit(back)
        assert [r.state for r in results] == ["refused"] * 3
        assert spec_quorum(rolled_log.checkpoint().cosigned_note, world.keys) == 0
        assert len(events(rolled, "audit.witness.refused")) == 3
        # Sent as the spec's client would after learning the witness's size: the witness itself refuses it.
        answer = httpx.post(world.witnesses[0].url + "/add-checkpoint", content=f"old {newest.size}\n\n{back.note}")
        assert answer.status_code == 400
    for w in world.witnesses:
        assert w.witness.store.latest(world.log.signer.name) == (newest.size, newest.root)
        # Each witness kept the proof of the fork of one size: the note it cosigned and the other, both signed
        # by the log's key (checked here from the spec), same size, two roots.
        [kept] = [json.loads(line) for line in w.witness.store.evidence_path.read_text().splitlines()]
        assert kept["fork_note"] == twin.note and kept["size"] == twin.size
        for signed in (kept["cosigned_note"], kept["fork_note"]):
            assert check_note(signed, world.log.verifier_key)[1] == twin.size
        assert kept["cosigned_note"].split("\n")[2] != kept["fork_note"].split("\n")[2]


def test_bad_input_gets_the_specs_error(world: World) -> None:
    url = world.witnesses[1].url + "/add-checkpoint"
    log = world.log
    fill(world.hub, 2, start=600)
    current = log.checkpoint()
    held, _root = world.witnesses[1].witness.store.latest(log.signer.name) or (0, b"")
    assert held < current.size
    proof = log.consistency_proof(held, current.size).proof
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)

    def post(body: str | bytes) -> httpx.Response:
        return httpx.post(url, content=body.encode() if isinstance(body, str) else body)

    # Malformed: no old line, a non-canonical size, a body that is not a note, a bad proof line, not UTF-8.
    for body in ("hello", f"old 0{held}\n{lines}\n{current.note}", f"old {held}\n{lines}\nnot a note",
                 f"old {held}\n!!!!\n\n{current.note}", b"old 0\n\n\xff\xfe\n\n"):  # fmt: skip
        assert post(body).status_code == 400, body
    # Unknown origin: a checkpoint of another log.
    other = Ed25519PrivateKey.generate()
    from hygie.audit.note import Checkpoint, sign

    stranger = sign(Checkpoint("other.example/log", current.size, current.root), "other.example/log", other)
    assert post(f"old {held}\n{lines}\n{stranger}").status_code == 404
    # Known origin, signed by another key (the operator's key is not that one): 403.
    forged = sign(Checkpoint(log.signer.name, current.size, current.root), log.signer.name, other)
    assert post(f"old {held}\n{lines}\n{forged}").status_code == 403
    # Old size larger than the checkpoint's: 400.
    assert post(f"old {current.size + 1}\n\n{current.note}").status_code == 400
    # Wrong old size: 409 with the witness's size as text/x.tlog.size.
    answer = post(f"old 0\n\n{current.note}")
    assert answer.status_code == 409 and answer.headers["content-type"].startswith("text/x.tlog.size")
    assert answer.text == f"{held}\n"
    # A proof that does not verify: 422 (one hash changed).
    broken = [*proof[:-1], hashlib.sha256(b"not a node").digest()]
    bad_lines = "".join(base64.b64encode(h).decode() + "\n" for h in broken)
    assert post(f"old {held}\n{bad_lines}\n{current.note}").status_code == 422
    # Nothing of that moved the witness; the right request is cosigned, from the specs' point of view too.
    answer = post(f"old {held}\n{lines}\n{current.note}")
    assert answer.status_code == 200
    assert spec_cosignature_time(current.note + answer.text, world.witnesses[1].witness.verifier_key) is not None


def test_an_unreachable_witness_is_asked_again(world: World) -> None:
    world.witnesses[0].stop()
    witnessing = world.witnessing()
    witnessing.retry_seconds = 0.05
    sender = WitnessingThread(witnessing)
    try:
        fill(world.hub, 1, start=800)
        checkpoint = world.log.checkpoint()
        sender.offer(checkpoint)
        deadline = time.monotonic() + 30
        while witnessing.cosigners(checkpoint.id) != {"witness.example/w1", "witness.example/w2"}:
            assert time.monotonic() < deadline, "the reachable witnesses did not cosign"
            time.sleep(0.02)
        world.witnesses[0].start()
        while "witness.example/w0" not in witnessing.cosigners(checkpoint.id):
            assert time.monotonic() < deadline, "the witness back up was not asked again"
            time.sleep(0.02)
    finally:
        sender.stop()
        if world.witnesses[0].server is None:
            world.witnesses[0].start()


def hygie_imports(roots: list[str]) -> set[str]:
    """Every hygie module the roots import, at any depth, their packages' ``__init__`` included, read from the
    source (imports under ``if TYPE_CHECKING:`` do not run and are left out; imports inside functions count)."""
    base = Path(__file__).resolve().parents[2]
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages' __init__ run first
        if name in seen:
            continue
        seen.add(name)
        path = base.joinpath(*parts).with_suffix(".py")
        if not path.exists():
            path = base.joinpath(*parts, "__init__.py")
        if not path.exists():
            continue
        tree = ast.parse(path.read_text())
        guarded = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
        skip = {id(n) for g in guarded for n in ast.walk(g)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hygie"):
                todo.append(node.module)
                todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.startswith("hygie"))
    return {m for m in seen if base.joinpath(*m.split(".")).with_suffix(".py").exists()
            or base.joinpath(*m.split("."), "__init__.py").exists()}  # fmt: skip


def test_the_witness_runs_without_a_hub(world: World) -> None:
    """An outside institution runs the witness alone: its modules import nothing of the hub, and the CLI prints
    the key it generated."""
    closure = hygie_imports(["hygie.audit.witness_server", "hygie.audit.witness_cli"])
    assert not {m for m in closure if m.startswith(("hygie.hub", "hygie.portal", "hygie.keys", "hygie.governance"))}
    assert "hygie.audit.log" not in closure and "hygie.audit.witness_server" in closure
    from typer.testing import CliRunner

    from hygie.audit.witness_cli import witness_app

    key_file = world.dir / "cli.key"
    result = CliRunner().invoke(witness_app, ["key", "--name", "court.example/w", "--key-file", str(key_file)])
    assert result.exit_code == 0, result.output
    vkey = result.output.strip()
    assert vkey.startswith("court.example/w+") and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert (
        CliRunner()
        .invoke(witness_app, ["key", "--name", "court.example/w", "--key-file", str(key_file)])
        .output.strip()
        == vkey
    )


def test_the_checkpointer_gets_its_checkpoints_cosigned(world: World) -> None:
    """The server's wiring: start_checkpointer with the hub's settings starts the witnessing thread."""
    checkpointer = start_checkpointer(world.log, interval=0.05, settings=world.settings)
    try:
        fill(world.hub, 3, start=1000)
        size = world.log.sequence()
        deadline = time.monotonic() + 30
        while (found := latest_cosigned(world.log, world.keys, 3)) is None or found[0].size < size:
            assert time.monotonic() < deadline, "the checkpointer's checkpoints were not cosigned"
            time.sleep(0.02)
    finally:
        checkpointer.stop()


def test_witness_serve_wires_the_command_line(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient
    from typer.testing import CliRunner

    from hygie.audit.witness_cli import witness_app

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    files = ["--key-file", str(world.dir / "dpa.key"), "--store", str(world.dir / "dpa.json")]
    args = [
        "serve",
        "--name",
        "dpa.example/w",
        *files,
        "--log",
        world.log.verifier_key,
        "--port",
        "9999",
        "--prefix",
        "/w",
    ]
    result = CliRunner().invoke(witness_app, args)
    assert result.exit_code == 0, result.output
    assert served["port"] == 9999 and "dpa.example/w+" in result.output
    client = TestClient(served["app"])
    checkpoint = world.log.checkpoint()
    answer = client.post("/w/add-checkpoint", content=f"old 0\n\n{checkpoint.note}")
    assert answer.status_code == 200
    vkey = result.output.split()[1]
    assert spec_cosignature_time(checkpoint.note + answer.text, vkey) is not None
    assert client.post("/w/add-checkpoint", content=b"x" * 70_000).status_code == 400  # too large
    bad = CliRunner().invoke(witness_app, ["serve", "--name", "dpa.example/w", *files, "--log", "not-a-key"])
    assert bad.exit_code == 2


def test_cosignatures_are_stored_append_only(hub: Hub) -> None:
    """On SQLite and PostgreSQL: a cosignature is stored once verified, and cannot be altered or removed."""
    from sqlalchemy import delete, update

    from hygie.audit.storage import cosignature_table

    log = TransparencyLog.for_hub(hub)
    fill(hub, 3)
    witness = Witness("registry.example/w", Ed25519PrivateKey.generate(), {log.signer.name: log.verifier_key},
                      CheckpointStore(hub.settings.data_dir / "w.json"))  # fmt: skip

    def handler(request: httpx.Request) -> httpx.Response:
        answer = witness.add_checkpoint(request.content)
        return httpx.Response(answer.status, text=answer.body, headers={"content-type": answer.content_type})

    endpoint = WitnessEndpoint.parse(f"http://witness.invalid {witness.verifier_key}")
    witnessing = Witnessing(log, [endpoint], 1, client=httpx.Client(transport=httpx.MockTransport(handler)))
    checkpoint = log.checkpoint()
    assert [r.state for r in witnessing.submit(checkpoint)] == ["cosigned"]
    assert witnessing.is_cosigned(checkpoint.id)
    assert spec_cosignature_time(log.checkpoint().cosigned_note, witness.verifier_key) is not None
    for statement in (update(cosignature_table).values(line="forged\n"), delete(cosignature_table)):
        with pytest.raises(Exception, match="append-only"), hub.engine.begin() as conn:
            conn.execute(statement)
