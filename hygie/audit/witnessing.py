# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The log side of C2SP tlog-witness (c2sp.org/tlog-witness): new checkpoints sent to outside witnesses, their
cosignatures (c2sp.org/tlog-cosignature) verified and stored beside the checkpoint.

A background thread (:class:`WitnessingThread`, started by the checkpointer when witnesses are configured) holds
one slot, the latest checkpoint: the checkpointer drops each new checkpoint into it and goes on; the thread sends
the newest one to every witness at once (one request each, each with its timeout), and asks the ones it could not
reach again every ``audit_witness_retry_seconds`` until a newer checkpoint comes. Nothing on the write path
(``record``, the recorder, sequencing, signing) ever waits for it or touches the network: a dead witness costs a
timeout in this thread only, and a checkpoint issued meanwhile simply replaces the one waiting.

Per witness, ``POST <prefix>/add-checkpoint`` with ``old <size>`` (the size the witness last cosigned, as far as
the log knows: from the stored cosignatures, else 0), the consistency proof from that size, and the signed note:

- 200: the answer's signature lines are checked against the witness's configured cosigner key (lines of other
  keys ignored) and stored (``audit_cosignature``);
- 409 ``text/x.tlog.size``: the witness holds another size; resend once from it (a proof from that size). A size
  above the log's own, or the same size again (two roots for one size), means the witness saw a tree this log
  no longer has: a rollback or a fork, refused;
- 400, 403, 404, 422, or a witness whose history this log cannot extend: refused.

A refusal, or a witness becoming unreachable, is recorded (``audit.witness.refused`` /
``audit.witness.unreachable``, outcome ``failed``, by ``system:witnessing``) and logged at error level — once
per change of the witness's state, not once per checkpoint: each record grows the log, and recording every
round would feed a new checkpoint and a new refusal forever. A checkpoint is *cosigned* once
``audit_witness_quorum`` of the configured witnesses signed it.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.audit.events import Outcome, record
from hygie.audit.note import COSIGNATURE_V1, NoteError, cosignatures, key_hash, parse_cosigner_key
from hygie.audit.storage import checkpoint_table, cosignature_table

if TYPE_CHECKING:
    import httpx

    from hygie.audit.log import SignedCheckpoint, TransparencyLog
    from hygie.config import Settings

ACTOR = "system:witnessing"
SIZE_TYPE = "text/x.tlog.size"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WitnessEndpoint:
    """A configured witness: its submission URL prefix and its cosigner verifier key."""

    url: str
    key: str
    name: str
    key_id: bytes

    @classmethod
    def parse(cls, text: str) -> WitnessEndpoint:
        """``"<submission URL prefix> <cosigner verifier key>"``."""
        try:
            url, key = text.split()
        except ValueError:
            raise ValueError("a witness is '<submission URL prefix> <cosigner verifier key>'") from None
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"witness URL {url!r} is not http(s)")
        name, public = parse_cosigner_key(key)
        return cls(url.rstrip("/"), key, name, key_hash(name, public, COSIGNATURE_V1))


@dataclass(frozen=True)
class Result:
    """What one witness did with one checkpoint."""

    witness: str
    state: str
    """``cosigned``, ``refused`` or ``unreachable``."""
    status: int | None = None
    reason: str = ""


def cosignature_lines(engine: Any, checkpoint_id: int) -> list[str]:
    """The stored cosignature lines of one checkpoint, one per witness key, in the order received."""
    c = cosignature_table
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.c.witness, c.c.key_id, c.c.line).where(c.c.checkpoint_id == checkpoint_id).order_by(c.c.id)
        ).all()
    seen: set[tuple[str, bytes]] = set()
    out = []
    for witness, kid, line in rows:
        if (witness, bytes(kid)) not in seen:
            seen.add((witness, bytes(kid)))
            out.append(line)
    return out


def latest_cosigned(
    log: TransparencyLog, witness_keys: Sequence[str], quorum: int
) -> tuple[SignedCheckpoint, list[str]] | None:
    """The newest checkpoint whose stored cosignatures include ``quorum`` that verify under ``witness_keys``,
    with those verified names; None if there is none."""
    from hygie.audit.log import SignedCheckpoint

    c, cp = cosignature_table, checkpoint_table
    names = [parse_cosigner_key(k)[0] for k in witness_keys]
    with log.engine.connect() as conn:
        ids = conn.execute(
            select(c.c.checkpoint_id)
            .where(c.c.witness.in_(names))
            .group_by(c.c.checkpoint_id)
            .having(func.count(func.distinct(c.c.witness)) >= quorum)
            .order_by(c.c.checkpoint_id.desc())
            .limit(20)
        ).all()
        for (checkpoint_id,) in ids:
            row = conn.execute(select(cp).where(cp.c.id == checkpoint_id)).first()
            if row is None:
                continue
            lines = cosignature_lines(log.engine, checkpoint_id)
            signed = SignedCheckpoint(row.id, row.size, bytes(row.root_hash), row.note, row.issued_at, tuple(lines))
            found = cosignatures(signed.cosigned_note, list(witness_keys))
            if len(found) >= quorum:
                return signed, [f.name for f in found]
    return None


def witnessed(log: TransparencyLog, settings: Settings) -> tuple[SignedCheckpoint, list[str]] | None:
    """The newest checkpoint cosigned by the configured quorum of the configured witnesses, and their names;
    None when no witness is configured or none reached the quorum yet."""
    if not settings.audit_witnesses:
        return None
    keys = [WitnessEndpoint.parse(w).key for w in settings.audit_witnesses]
    return latest_cosigned(log, keys, settings.audit_witness_quorum)


def _printable(text: str) -> str:
    """An outside server's words, as they go into the record: printable characters only."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


class Witnessing:
    """Sends checkpoints to the configured witnesses and stores what they cosign (one round at a time)."""

    def __init__(
        self,
        log: TransparencyLog,
        witnesses: Sequence[WitnessEndpoint],
        quorum: int = 1,
        timeout: float = 5.0,
        client: httpx.Client | None = None,
        retry_seconds: float = 30.0,
    ) -> None:
        import httpx

        if not 1 <= quorum <= max(1, len(witnesses)):
            raise ValueError(f"a quorum of {quorum} out of {len(witnesses)} witnesses cannot be met")
        self.log = log
        self.witnesses = list(witnesses)
        self.quorum = quorum
        self.retry_seconds = retry_seconds
        """How often the witnessing thread asks again a witness it could not reach."""
        self.client = client or httpx.Client(timeout=timeout)
        self._sizes: dict[str, int] = {}
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, log: TransparencyLog, settings: Settings) -> Witnessing | None:
        if not settings.audit_witnesses:
            return None
        return cls(
            log,
            [WitnessEndpoint.parse(w) for w in settings.audit_witnesses],
            settings.audit_witness_quorum,
            settings.audit_witness_timeout_seconds,
            retry_seconds=settings.audit_witness_retry_seconds,
        )

    def close(self) -> None:
        self.client.close()

    # -- one round -------------------------------------------------------------------------------------------

    def submit(self, checkpoint: SignedCheckpoint, only: Sequence[WitnessEndpoint] | None = None) -> list[Result]:
        """Send one checkpoint to every witness (or ``only`` these), all at once, each request with its own
        timeout; returns what each did, in the order of the witnesses."""
        targets = list(self.witnesses if only is None else only)
        with self._lock:
            if len(targets) == 1:
                results = [self._submit(targets[0], checkpoint)]
            else:
                with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="audit-witness") as pool:
                    results = list(pool.map(lambda w: self._submit(w, checkpoint), targets))
        for r in results:
            self._note_state(r)
        return results

    def cosigners(self, checkpoint_id: int) -> set[str]:
        """Names of the configured witnesses whose cosignature of this checkpoint is stored (each was verified
        under the witness's configured key before being stored)."""
        c = cosignature_table
        with self.log.engine.connect() as conn:
            rows = conn.execute(select(c.c.witness, c.c.key_id).where(c.c.checkpoint_id == checkpoint_id)).all()
        configured = {(w.name, w.key_id) for w in self.witnesses}
        return {name for name, kid in rows if (name, bytes(kid)) in configured}

    def is_cosigned(self, checkpoint_id: int) -> bool:
        return len(self.cosigners(checkpoint_id)) >= self.quorum

    def _known_size(self, w: WitnessEndpoint) -> int:
        if w.name not in self._sizes:
            c, cp = cosignature_table, checkpoint_table
            with self.log.engine.connect() as conn:
                size = conn.execute(
                    select(func.max(cp.c.size))
                    .select_from(c.join(cp, cp.c.id == c.c.checkpoint_id))
                    .where(c.c.witness == w.name, c.c.key_id == w.key_id)
                ).scalar()
            self._sizes[w.name] = int(size or 0)
        return self._sizes[w.name]

    def _submit(self, w: WitnessEndpoint, checkpoint: SignedCheckpoint) -> Result:
        import httpx

        old = self._known_size(w)
        for _attempt in range(2):
            if old > checkpoint.size:
                return Result(
                    w.name, "refused", None, f"the witness holds size {old}, above this log's {checkpoint.size}"
                )
            proof = self.log.consistency_proof(old, checkpoint.size).proof if 0 < old < checkpoint.size else []
            body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n"
            try:
                answer = self.client.post(w.url + "/add-checkpoint", content=(body + checkpoint.note).encode())
            except httpx.HTTPError as exc:
                return Result(w.name, "unreachable", None, type(exc).__name__)
            if answer.status_code == 200:
                return self._store(w, checkpoint, answer.text)
            if answer.status_code == 409 and answer.headers.get("content-type", "").startswith(SIZE_TYPE):
                text = answer.text
                if not (text.endswith("\n") and text[:-1].isdigit()):
                    return Result(w.name, "refused", 409, "a size answer that does not parse")
                theirs = int(text[:-1])
                self._sizes[w.name] = theirs
                if theirs == old:
                    return Result(w.name, "refused", 409, f"the witness holds another tree of size {theirs} (a fork)")
                old = theirs
                continue
            return Result(w.name, "refused", answer.status_code, _printable(answer.text[:200]))
        return Result(w.name, "refused", 409, "the witness's size keeps changing")

    def _store(self, w: WitnessEndpoint, checkpoint: SignedCheckpoint, answer: str) -> Result:
        try:
            found = cosignatures(checkpoint.note + answer, [w.key])
        except NoteError:
            found = []
        if not found:
            return Result(w.name, "refused", 200, "no valid cosignature by its configured key in the answer")
        cosig = found[0]
        with self.log.engine.begin() as conn:
            conn.execute(
                cosignature_table.insert().values(
                    checkpoint_id=checkpoint.id,
                    witness=w.name,
                    key_id=w.key_id,
                    timestamp=cosig.timestamp,
                    line=cosig.line,
                    received_at=datetime.now(UTC),
                )
            )
        self._sizes[w.name] = checkpoint.size
        return Result(w.name, "cosigned", 200)

    def _note_state(self, result: Result) -> None:
        """Record a witness's refusal or loss once per change of its state (see the module docstring)."""
        previous = self._states.get(result.witness)
        self._states[result.witness] = result.state
        if result.state == "cosigned":
            if previous is not None and previous != "cosigned":
                _log.info("witness %s cosigns again", result.witness)
            return
        _log.error("witness %s %s the checkpoint: %s %s", result.witness, result.state, result.status, result.reason)
        if previous == result.state:
            return
        with Session(self.log.engine) as session:
            record(
                session,
                actor=ACTOR,
                action=f"audit.witness.{result.state}",
                outcome=Outcome.FAILED,
                object=f"witness:{result.witness}",
                detail={"status": result.status, "reason": result.reason},
            )
            session.commit()


class WitnessingThread:
    """The background sender: :meth:`offer` drops the latest checkpoint and returns at once. Witnesses that
    were unreachable are asked again every ``witnessing.retry_seconds`` until they answer or a newer checkpoint
    comes."""

    def __init__(self, witnessing: Witnessing) -> None:
        self.witnessing = witnessing
        self._latest: SignedCheckpoint | None = None
        self._sent_id: int | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="audit-witnessing", daemon=True)
        self._thread.start()

    def offer(self, checkpoint: SignedCheckpoint) -> None:
        with self._wake:
            if self._latest is None or checkpoint.id > self._latest.id:
                self._latest = checkpoint
                self._wake.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout)
        self.witnessing.close()

    def _run(self) -> None:
        retry: list[WitnessEndpoint] = []  # witnesses unreachable for the checkpoint last sent
        while True:
            with self._wake:
                while not self._stop and (self._latest is None or self._latest.id == self._sent_id):
                    if not retry:
                        self._wake.wait()
                    elif not self._wake.wait(self.witnessing.retry_seconds):
                        break  # time to ask the unreachable ones again
                if self._stop:
                    return
                checkpoint = self._latest
            assert checkpoint is not None
            targets = retry if checkpoint.id == self._sent_id else list(self.witnessing.witnesses)
            try:
                results = self.witnessing.submit(checkpoint, targets)
            except Exception:  # a database hiccup: the next checkpoint tries again
                _log.exception("witnessing round failed")
                results = []
            retry = [w for w, r in zip(targets, results, strict=False) if r.state == "unreachable"]
            self._sent_id = checkpoint.id
