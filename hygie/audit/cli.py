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
) -> None:
    """Recompute the tree from the stored events and check every checkpoint; exit 1 naming the first bad entry."""
    with _log() as (hub, log):
        report = log.verify(key)
        outcome = Outcome.OK if report.ok else Outcome.FAILED
        _record(hub, "audit.verify", outcome, {"size": report.size, "first_bad_entry": report.first_bad_entry})
    print(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command()
def checkpoint() -> None:
    """Print the latest signed checkpoint, issuing one first if events were recorded since."""
    with _log() as (hub, log):
        _record(hub, "audit.checkpoint")
        note = log.checkpoint().note
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
