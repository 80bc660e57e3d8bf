# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""``hygie audit``: verify the log, print checkpoints, the verification key and proofs.

Every command records its own use (actor ``cli:operator``) before printing its result.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from hygie.audit.events import Outcome, record
from hygie.audit.log import TransparencyLog
from hygie.config import get_settings

audit_app = typer.Typer(help="The tamper-evident audit log: verify, checkpoints, proofs.", no_args_is_help=True)
ACTOR = "cli:operator"


@contextmanager
def _log() -> Iterator[tuple[Any, TransparencyLog]]:
    from hygie.hub import Hub, HubNotInitialised
    from hygie.keys import CustodyLocked

    try:
        hub = Hub.open(get_settings())
    except (HubNotInitialised, CustodyLocked) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    try:
        yield hub, TransparencyLog.for_hub(hub)
    finally:
        hub.close()


def _record(hub: Any, action: str, outcome: Outcome = Outcome.OK, detail: dict[str, Any] | None = None) -> None:
    with hub.session() as session:
        record(session, actor=ACTOR, action=action, outcome=outcome, object="audit-log", detail=detail)
        session.commit()


@audit_app.command()
def verify(
    key: Annotated[
        str | None, typer.Option(help="Verifier key to check signatures with (default: the stored one).")
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option(help="A witness's cosigner verifier key (name+keyid+key, type 0x04). Repeat per witness."),
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(min=1, help="Cosignatures needed among --witness-key (default: all of them).")
    ] = None,
) -> None:
    """Recompute the tree from the stored events and check every checkpoint; exit 1 naming the first bad entry.

    With --witness-key: also find the newest checkpoint cosigned by --quorum of those witnesses (C2SP
    tlog-cosignature, each cosignature verified), check that it is one this log signed and that the log extends
    it; exit 1 if there is none."""
    from hygie.audit.note import NoteError, parse_cosigner_key

    keys = list(witness_key or [])
    k = quorum if quorum is not None else len(keys)
    try:
        for text in keys:
            parse_cosigner_key(text)
    except NoteError as exc:
        print(f"error: --witness-key: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if keys and k > len(keys):
        print(f"error: a quorum of {k} out of {len(keys)} witness keys cannot be met", file=sys.stderr)
        raise typer.Exit(2)
    with _log() as (hub, log):
        report = log.verify(key)
        witnessed = _witnessed(log, keys, k, key) if keys else None
        ok = report.ok and (not keys or (witnessed is not None and witnessed[0]))
        outcome = Outcome.OK if ok else Outcome.FAILED
        detail: dict[str, Any] = {"size": report.size, "first_bad_entry": report.first_bad_entry}
        if keys:
            detail["witness_quorum"] = f"{k}/{len(keys)}"
        _record(hub, "audit.verify", outcome, detail)
    print(report.summary())
    if witnessed is not None:
        print(witnessed[1])
    if not ok:
        raise typer.Exit(1)


def _witnessed(log: TransparencyLog, keys: list[str], quorum: int, log_key: str | None) -> tuple[bool, str]:
    """``(ok, sentence)``: the newest checkpoint cosigned by ``quorum`` of ``keys``, checked."""
    from hygie.audit import merkle
    from hygie.audit.note import NoteError, open_note
    from hygie.audit.witnessing import latest_cosigned

    found = latest_cosigned(log, keys, quorum)
    if found is None:
        return False, f"witnesses: no checkpoint is cosigned by {quorum} of the {len(keys)} witness keys given"
    checkpoint, names = found
    try:
        signed = open_note(checkpoint.cosigned_note, log_key or log.verifier_key)
    except NoteError as exc:
        return False, f"witnesses: cosigned checkpoint #{checkpoint.id} is not signed by the log's key: {exc}"
    size = log.size()
    proof = log.consistency_proof(signed.size, size)
    if proof.old_root != signed.root or not merkle.verify_consistency(
        signed.size, size, signed.root, proof.new_root, proof.proof
    ):
        return False, f"witnesses: the log no longer extends the cosigned tree of size {signed.size}"
    return True, (
        f"witnesses: checkpoint #{checkpoint.id} (size {signed.size} of {size}) cosigned by "
        f"{', '.join(names)} ({len(names)} of {len(keys)} keys, quorum {quorum}); the log extends it"
    )


@audit_app.command()
def checkpoint() -> None:
    """Print the latest signed checkpoint, issuing one first if events were recorded since."""
    with _log() as (hub, log):
        _record(hub, "audit.checkpoint")
        note = log.checkpoint().cosigned_note
    sys.stdout.write(note)


@audit_app.command("public-key")
def public_key() -> None:
    """Print the checkpoint verification key (C2SP note verifier key)."""
    with _log() as (hub, log):
        key = log.verifier_key
        _record(hub, "audit.public-key")
    print(key)


@audit_app.command()
def prove(
    index: Annotated[int | None, typer.Option(min=0, help="0-based leaf index: an inclusion proof.")] = None,
    size: Annotated[
        int | None, typer.Option(min=1, help="Tree size of the inclusion proof (default: current).")
    ] = None,
    old: Annotated[int | None, typer.Option("--from", min=0, help="Older tree size: a consistency proof.")] = None,
    new: Annotated[int | None, typer.Option("--to", min=0, help="Newer tree size (default: current).")] = None,
) -> None:
    """Print an inclusion proof (--index N [--size M]) or a consistency proof (--from M --to N) as JSON."""
    if (index is None) == (old is None):
        print("error: give either --index or --from", file=sys.stderr)
        raise typer.Exit(2)
    with _log() as (hub, log):
        log.sequence()
        try:
            if index is not None:
                result = log.inclusion_proof(index, size).as_json()
            else:
                assert old is not None
                result = log.consistency_proof(old, new).as_json()
        except ValueError as exc:
            _record(hub, "audit.prove", Outcome.FAILED, {"index": index, "from": old})
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        _record(
            hub, "audit.prove", Outcome.OK, {k: v for k, v in result.items() if k in ("index", "size", "from", "to")}
        )
    print(json.dumps(result))
