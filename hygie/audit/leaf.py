# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What a log leaf holds: a salted commitment to the full event, and in clear only what the public register shows.

Two leaf formats, marked per leaf (``audit_leaf.format``):

- ``1`` (:data:`CLEAR`), leaves sequenced before migration 0008au: the leaf data is the whole canonical entry
  (:func:`hygie.audit.entry.canonical_entry`). A tamper-evident log is never rewritten, so these leaves stay;
  the public is served their leaf hash only, never the entry.
- ``2`` (:data:`SALTED`), every leaf since: ``leaf data = {"c": <commitment>, "v": 2}`` for an event the register
  does not show, ``{"action", "at", "c", "project_id", "v": 2}`` for one it does (:data:`REGISTER_ACTIONS`,
  outcome ``ok``, a project id), as canonical JSON (keys sorted, no whitespace, ASCII). ``commitment =
  SHA-256(COMMITMENT_TAG || salt || canonical entry)`` with a fresh 32-byte random ``salt`` per event, kept in
  ``audit_leaf.salt`` and served only to auditors and to the citizen the event is about. Leaf hash =
  SHA-256(0x00 || leaf data), as RFC 9162.

Without its salt a commitment cannot be matched by hashing guessed events (2**256 salts per guess); with it an
auditor recomputes the commitment from the full event. The public fields are a function of the event, so the
verifier (who holds events and salts) rebuilds the whole leaf.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from hygie.audit.entry import canonical_entry, utc_text

CLEAR = 1
SALTED = 2
FORMATS = (CLEAR, SALTED)
VERSION = 2
"""``v`` of a salted leaf's data."""
COMMITMENT_TAG = b"hygie-audit-commitment/v2\x00"
"""Domain separation: a commitment can never be mistaken for any other SHA-256 the hub computes."""
SALT_BYTES = 32

REGISTER_ACTIONS = frozenset(
    {
        "project.submit",  # the register lists submitted projects, with the date
        "project.activate",  # activated_at, status
        "project.suspend",  # status
        "project.resume",  # status
        "project.close",  # ended_at, status
        "project.expire",  # ended_at, status
        "project.view.build",  # view builds (count) and last access
        "analysis.submit",  # the register's list of jobs run, with submission time
        "analysis.release",  # released outputs, with dates
    }
)
"""Actions whose project id, action and time the public register already shows (hygie.governance.register and
hygie.portal.transparency): their leaves carry these three in clear. Every other event is a bare commitment."""

_sha256 = hashlib.sha256
_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def is_public(action: str, outcome: str, project_id: int | None) -> bool:
    """Whether the register shows this act: a lifecycle or release act that succeeded, on a project."""
    return action in REGISTER_ACTIONS and outcome == "ok" and project_id is not None


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def commitment(salt: bytes, entry: bytes) -> bytes:
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt has {SALT_BYTES} bytes")
    return _sha256(COMMITMENT_TAG + salt + entry).digest()


def leaf_data_parts(action: str, outcome: str, project_id: int | None, at: str) -> tuple[bytes, bytes]:
    """The leaf data written around the commitment's base64 (what the recorder prepares before the id is known)."""
    if is_public(action, outcome, project_id):
        head = '{"action":' + _json.encode(action) + ',"at":' + _json.encode(at) + ',"c":"'
        return head.encode("ascii"), f'","project_id":{int(project_id or 0)},"v":{VERSION}}}'.encode("ascii")
    return b'{"c":"', f'","v":{VERSION}}}'.encode("ascii")


def salted_leaf_data(row: Mapping[Any, Any], salt: bytes) -> bytes:
    """The leaf data of an event row (with :data:`hygie.audit.entry.COLUMNS`) and its salt."""
    head, tail = leaf_data_parts(row["action"], row["outcome"], row["project_id"], utc_text(row["at"]))
    return head + base64.b64encode(commitment(salt, canonical_entry(row))) + tail


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def new_leaf(row: Mapping[Any, Any]) -> tuple[int, bytes, bytes]:
    """``(event id, leaf hash, salt)`` for a new leaf of an event row: a fresh salt, format :data:`SALTED`."""
    salt = new_salt()
    return int(row["id"]), leaf_hash(salted_leaf_data(row, salt)), salt


def stored_leaf_hash(row: Mapping[Any, Any], fmt: int, salt: bytes | None) -> bytes:
    """Recompute a stored leaf's hash from its event, its format and its salt (ValueError when they do not fit)."""
    if fmt == CLEAR:
        return leaf_hash(canonical_entry(row))
    if fmt == SALTED:
        if salt is None:
            raise ValueError("a salted leaf without its salt")
        return leaf_hash(salted_leaf_data(row, bytes(salt)))
    raise ValueError(f"unknown leaf format {fmt}")


def parse_public(data: str) -> dict[str, Any]:
    """A salted leaf's data as a witness reads it: ``c`` (commitment, base64) and, for register acts, the
    ``action``, ``at`` and ``project_id``. ValueError if it is not exactly the canonical form."""
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ValueError("leaf data is not JSON") from None
    if (
        not isinstance(parsed, dict)
        or parsed.get("v") != VERSION
        or set(parsed)
        not in (
            {"c", "v"},
            {"action", "at", "c", "project_id", "v"},
        )
    ):
        raise ValueError("leaf data is not a salted leaf of format 2")
    if _json.encode(parsed) != data or len(base64.b64decode(parsed["c"], validate=True)) != 32:
        raise ValueError("leaf data is not canonical")
    return parsed
