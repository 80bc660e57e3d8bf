# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The canonical bytes of an audit event: what a log leaf commits to.

Format ``hygie-audit-entry/v1``: one JSON object, UTF-8, keys sorted, no whitespace (``,`` and ``:``
separators), every non-ASCII character escaped as ``\\uXXXX`` so that the bytes are plain ASCII and survive any
transport unchanged. Members: ``v`` (1), ``id`` (the event's row id), ``at`` (UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
microseconds always written), ``actor``, ``role``, ``action``, ``object``, ``project_id``, ``purpose``,
``outcome`` (strings, integers or null) and ``detail`` (a JSON object, itself canonical: sorted keys; floats as
Python's shortest round-trip repr). Leaves of format 1 hash these bytes (SHA-256(0x00 || entry), as RFC 9162);
leaves of format 2 hash a salted commitment to them (see :mod:`hygie.audit.leaf`).

The same function serves the sequencer (when the leaf is created) and the verifier (which re-reads the row and
re-serialises it), so any change to a stored column changes the leaf.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

VERSION = 1
COLUMNS = ("id", "at", "actor", "role", "action", "object", "project_id", "purpose", "outcome", "detail")
"""Columns of ``audit_event`` read to serialise an entry, in this order."""


def utc_text(at: datetime) -> str:
    """An instant as entries write it: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    # SQLite hands back naive datetimes (stored in UTC by record()); PostgreSQL hands back aware ones.
    if at.tzinfo is not None:
        at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(row: Mapping[Any, Any]) -> bytes:
    """Serialise one event row (a mapping with :data:`COLUMNS`)."""
    detail = row["detail"]
    if isinstance(detail, str):  # some drivers hand JSON back as text
        detail = json.loads(detail)
    document = {
        "v": VERSION,
        "id": int(row["id"]),
        "at": utc_text(row["at"]),
        "actor": row["actor"],
        "role": row["role"],
        "action": row["action"],
        "object": row["object"],
        "project_id": row["project_id"],
        "purpose": row["purpose"],
        "outcome": row["outcome"],
        "detail": detail if detail is not None else {},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
        "ascii"
    )
