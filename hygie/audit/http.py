# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The log over HTTP for outside witnesses: checkpoints, the verification key, proofs and the public form of
entries (commitments, and in clear only what the public register shows). No login, the same answer for everyone.

Reads of the public log are not themselves recorded: they reveal nothing that is not already public, and
recording them would let any anonymous caller grow the log (and keep every checkpoint stale) at will.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from hygie.audit.log import TransparencyLog
from hygie.hub import Hub

MAX_ENTRIES = 1_000
"""Entries served per request."""
UNRECORDED = {"x-hygie-audit": "not recorded: a public read of the transparency log"}

router = APIRouter(prefix="/audit", tags=["audit"])


class RegisterFieldsOut(BaseModel):
    action: str
    at: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ, as in the leaf.")
    project_id: int


class PublicEntryOut(BaseModel):
    """A leaf as anyone sees it (GET /audit/entries)."""

    index: int
    format: int = Field(description="2: a salted commitment; 1: a leaf from before salted leaves (hash only).")
    leaf_hash: str = Field(description="RFC 9162 leaf hash, base64.")
    leaf: str | None = Field(description="Format 2: the leaf data (ASCII JSON); SHA-256(0x00 || leaf) = leaf_hash.")
    register_: RegisterFieldsOut | None = Field(
        alias="register", description="The clear fields of an act the public register shows, else null."
    )


class PublicEntriesOut(BaseModel):
    start: int
    end: int
    entries: list[PublicEntryOut]


async def get_hub(request: Request) -> Hub:
    """The application's open hub (``app.state.hub``); async, so that FastAPI does not send it to its thread pool.

    Not through ``app.dependency_overrides``: while that mapping is not empty, FastAPI analyses every dependency of
    every request again (``get_dependant``, signatures included), a tenth of a citizen read's time in the portal.
    """
    hub: Hub | None = getattr(request.app.state, "hub", None)
    if hub is None:
        raise RuntimeError("no hub: the application must set app.state.hub")
    return hub


def get_log(hub: Annotated[Hub, Depends(get_hub)]) -> TransparencyLog:
    return TransparencyLog.for_hub(hub)


Log = Annotated[TransparencyLog, Depends(get_log)]


@router.get("/checkpoint", response_class=PlainTextResponse, openapi_extra=UNRECORDED)
def checkpoint(log: Log) -> str:
    """The latest signed checkpoint (C2SP tlog-checkpoint signed note), with the cosignature lines (C2SP
    tlog-cosignature) of the witnesses that cosigned it so far."""
    return log.checkpoint().cosigned_note


@router.get("/checkpoint/cosigned", response_class=PlainTextResponse, openapi_extra=UNRECORDED)
def cosigned_checkpoint(hub: Annotated[Hub, Depends(get_hub)], log: Log) -> str:
    """The newest checkpoint cosigned by the configured quorum of outside witnesses (C2SP tlog-cosignature
    lines after the log's signature); 404 while there is none."""
    from hygie.audit.witnessing import witnessed

    found = witnessed(log, hub.settings)
    if found is None:
        raise HTTPException(404, "no checkpoint is cosigned by enough witnesses yet")
    return found[0].cosigned_note


@router.get("/public-key", response_class=PlainTextResponse, openapi_extra=UNRECORDED)
def public_key(log: Log) -> str:
    """The verifier key of checkpoint signatures (C2SP signed-note verifier key)."""
    return log.verifier_key + "\n"


@router.get("/proof/inclusion", openapi_extra=UNRECORDED)
def inclusion(log: Log, index: Annotated[int, Query(ge=0)], size: Annotated[int | None, Query(ge=1)] = None) -> Any:
    try:
        return log.inclusion_proof(index, size).as_json()
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/proof/consistency", openapi_extra=UNRECORDED)
def consistency(
    log: Log,
    old: Annotated[int, Query(alias="from", ge=0)],
    new: Annotated[int | None, Query(alias="to", ge=0)] = None,
) -> Any:
    try:
        return log.consistency_proof(old, new).as_json()
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/entries", openapi_extra=UNRECORDED)
def entries(log: Log, start: Annotated[int, Query(ge=0)], end: Annotated[int, Query(ge=1)]) -> PublicEntriesOut:
    """The public form of leaves [start, end) (at most 1,000), to recompute leaf hashes and roots.

    Each entry: ``index``, ``format`` (2: salted commitment; 1: a leaf from before salted leaves, served by its
    hash only), ``leaf_hash`` (base64), ``leaf`` (format 2: the leaf data, ASCII JSON; SHA-256(0x00 || leaf) is the
    leaf hash) and ``register`` (``action``, ``at``, ``project_id`` of acts the public register shows, else null).
    Nothing else: no actor, object, detail or count; events and salts are for auditors (GET /audit/entries/full).
    """
    if end <= start or end - start > MAX_ENTRIES:
        raise HTTPException(400, f"ask for 1 to {MAX_ENTRIES} entries with start < end")
    size = log.size()
    if end > size:
        raise HTTPException(400, f"the log holds {size} entries")
    return PublicEntriesOut(
        start=start, end=end, entries=[PublicEntryOut.model_validate(e) for e in log.entries(start, end)]
    )
