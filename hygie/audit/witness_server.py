# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A witness anyone can run: the server side of C2SP tlog-witness (c2sp.org/tlog-witness), cosignatures per
c2sp.org/tlog-cosignature (Ed25519 ``cosignature/v1``).

An outside institution runs it alone: it imports nothing of the hub (no database, no custody), only the pure note
and Merkle code. It holds

- its own Ed25519 key (a file, generated at first use, readable by its owner only), and its name;
- the logs it witnesses: origin -> the log's note verifier key (for Hygie, the origin is the key name);
- its store: the latest checkpoint it cosigned per origin (one JSON file, replaced atomically under a lock held
  across the check and the write, so two requests can never roll it back: the spec's compare-and-set).

``POST <prefix>/add-checkpoint``, body ``old <size>\\n`` + consistency proof lines (base64) + ``\\n`` + the
checkpoint note. Answers, in the spec's order: 400 malformed (or old size above the checkpoint's), 404 unknown
origin, 403 no trusted signature, 409 ``text/x.tlog.size`` when the old size is not the size it last cosigned
(or same size, other root: a fork), 422 when the consistency proof does not verify, 200 with the cosignature line.
Every refusal of a known log is logged. A checkpoint validly signed by its log with the size the witness cosigned
and another root is kept beside the note the witness cosigned (:meth:`CheckpointStore.keep_evidence`): two notes
signed by the log's key, one size, two roots, are proof of a fork anyone can check. (A refusal for a bad proof or
an old size above the checkpoint's proves nothing by itself: anyone can replay a signed note with a wrong proof.)
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hygie.audit import merkle
from hygie.audit.note import (
    COSIGNATURE_V1,
    NoteError,
    cosign,
    cosigner_key,
    key_hash,
    parse_body,
    parse_verifier_key,
    signed_by,
    split_note,
)

MAX_BODY = 64 * 1024
"""Largest add-checkpoint body accepted (a checkpoint, a few signatures and at most 63 proof lines)."""
MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


def _bad(message: str) -> Answer:
    return Answer(400, message + "\n")


# -- the witness key -----------------------------------------------------------------------------------------


def _private_key_text(name: str, private: Ed25519PrivateKey) -> str:
    public = private.public_key().public_bytes_raw()
    kid = key_hash(name, public, COSIGNATURE_V1).hex()
    seed = base64.b64encode(COSIGNATURE_V1 + private.private_bytes_raw()).decode()
    return f"PRIVATE+KEY+{name}+{kid}+{seed}\n"


def load_or_create_key(path: Path, name: str) -> Ed25519PrivateKey:
    """The witness's key from ``path`` (note signer key format, type 0x04), created (mode 0600) if absent."""
    if not path.exists():
        private = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(_private_key_text(name, private))
        return private
    text = path.read_text().strip()
    try:
        prefix, word, key_name, kid, seed = text.split("+", 4)
        blob = base64.b64decode(seed, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"{path} is not a witness key file") from exc
    if (prefix, word) != ("PRIVATE", "KEY") or blob[:1] != COSIGNATURE_V1 or len(blob) != 33:
        raise ValueError(f"{path} is not a witness key file")
    if key_name != name:
        raise ValueError(f"{path} holds the key of witness {key_name!r}, not {name!r}")
    private = Ed25519PrivateKey.from_private_bytes(blob[1:])
    if key_hash(name, private.public_key().public_bytes_raw(), COSIGNATURE_V1).hex() != kid:
        raise ValueError(f"{path}: key ID does not match the key")
    return private


# -- the store -----------------------------------------------------------------------------------------------


class CheckpointStore:
    """The latest cosigned checkpoint per origin, ``{origin: {"size": n, "root": base64, "note": the log's signed
    note}}`` in one JSON file.

    :meth:`update` holds a thread lock and an exclusive ``flock`` on a sidecar lock file (other processes on the
    same store) while it reads, decides and writes; the file is replaced atomically (temp file, fsync, rename).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    @property
    def evidence_path(self) -> Path:
        """JSON lines, one per fork seen: ``{"at", "origin", "size", "cosigned_note", "fork_note"}``, two notes
        signed by the log's key for one size with two roots. Each fork note is kept once, however often sent."""
        return self.path.with_name(self.path.name + ".forks.jsonl")

    def keep_evidence(self, origin: str, cosigned_note: str | None, fork_note: str, size: int) -> None:
        try:
            kept = [json.loads(line)["fork_note"] for line in self.evidence_path.read_text().splitlines()]
        except FileNotFoundError:
            kept = []
        if fork_note in kept:
            return
        entry = {
            "at": int(time.time()),
            "origin": origin,
            "size": size,
            "cosigned_note": cosigned_note,
            "fork_note": fork_note,
        }
        with open(self.evidence_path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        entry = self._read().get(origin)
        return None if entry is None else (int(entry["size"]), base64.b64decode(entry["root"]))

    def latest_note(self, origin: str) -> str | None:
        """The log's signed note the witness last cosigned for this origin."""
        entry = self._read().get(origin)
        return None if entry is None else entry.get("note")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(
        self, origin: str, decide: Callable[[tuple[int, bytes] | None], tuple[Answer, tuple[int, bytes, str] | None]]
    ) -> Answer:
        """Compare-and-set: ``decide(current)`` returns the answer and the state to store (None: unchanged),
        all under the lock; the new state is durable before the answer is returned."""
        with self._locked():
            data = self._read()
            entry = data.get(origin)
            current = None if entry is None else (int(entry["size"]), base64.b64decode(entry["root"]))
            answer, new = decide(current)
            if new is not None:
                data[origin] = {"size": new[0], "root": base64.b64encode(new[1]).decode(), "note": new[2]}
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(data, f, sort_keys=True)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, self.path)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            return answer


# -- the protocol --------------------------------------------------------------------------------------------


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    """``(old size, proof hashes, note)`` of an add-checkpoint body; ValueError says what is malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("the body is an old size line, proof lines, an empty line, then the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise ValueError("the first line must be 'old <size>'")
    size_text = first[4:]
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ValueError("the old size is not a canonical decimal")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise ValueError("a consistency proof line is not base64") from None
        if len(h) != 32 or base64.b64encode(h).decode() != line:
            raise ValueError("a consistency proof line is not one base64 SHA-256 hash")
        proof.append(h)
    return int(size_text), proof, note


class Witness:
    """One witness: its name and key, the logs it follows, its store."""

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        logs: Mapping[str, str],
        store: CheckpointStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``logs``: origin -> the log's note verifier key (Ed25519, type 0x01)."""
        for origin, vkey in logs.items():
            parse_verifier_key(vkey)  # refuse a bad configuration at start, not per request
            if not origin or "\n" in origin:
                raise ValueError(f"bad origin {origin!r}")
        self.name = name
        self._private = private_key
        self.logs = dict(logs)
        self.store = store
        self.clock = clock

    @property
    def verifier_key(self) -> str:
        """This witness's cosigner verifier key (``name+keyid+base64(0x04 || key)``): what logs and clients pin."""
        return cosigner_key(self.name, self._private.public_key().public_bytes_raw())

    def add_checkpoint(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY:
            return _bad("body too large")
        try:
            old, proof, note = parse_request(body)
            checkpoint_body, signatures = split_note(note)
            checkpoint = parse_body(checkpoint_body)
        except (ValueError, NoteError) as exc:
            return _bad(f"malformed request: {exc}")
        origin = checkpoint.origin
        vkey = self.logs.get(origin)
        if vkey is None:
            return Answer(404, "unknown log origin\n")
        try:
            trusted = signed_by(checkpoint_body, signatures, vkey)
        except NoteError:
            trusted = False
        if not trusted:
            _log.warning("witness: checkpoint of %s without a valid signature of its key refused", origin)
            return Answer(403, "no signature by a key trusted for this origin\n")
        if old > checkpoint.size:
            _log.warning("witness: %s sent old size %d above its checkpoint size %d", origin, old, checkpoint.size)
            return _bad("the old size is larger than the checkpoint size")

        def decide(current: tuple[int, bytes] | None) -> tuple[Answer, tuple[int, bytes, str] | None]:
            size, root = current if current is not None else (0, merkle.EMPTY_ROOT)
            if old != size:
                return Answer(409, f"{size}\n", SIZE_TYPE), None
            if old == checkpoint.size:
                if root != checkpoint.root:
                    _log.error("witness: %s shows two roots for size %d (a fork)", origin, old)
                    self.store.keep_evidence(origin, self.store.latest_note(origin), note, old)
                    return Answer(409, f"{size}\n", SIZE_TYPE), None
                if proof:
                    return Answer(422, "the consistency proof between equal sizes must be empty\n"), None
            elif not merkle.verify_consistency(old, checkpoint.size, root, checkpoint.root, proof):
                _log.error("witness: %s tree of size %d does not extend size %d", origin, checkpoint.size, old)
                return Answer(422, "the consistency proof does not verify\n"), None
            line = cosign(checkpoint_body, self.name, self._private, int(self.clock()))
            return Answer(200, line), (checkpoint.size, checkpoint.root, note)

        return self.store.update(origin, decide)


def create_app(witness: Witness, prefix: str = "") -> Any:
    """A tiny ASGI application (Starlette) serving ``POST <prefix>/add-checkpoint``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return PlainTextResponse("body too large\n", status_code=400)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse("body too large\n", status_code=400)
        answer = await run_in_threadpool(witness.add_checkpoint, body)  # fsync and file lock: off the loop
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    return Starlette(routes=[Route(prefix + "/add-checkpoint", add_checkpoint, methods=["POST"])])
