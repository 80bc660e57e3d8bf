# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Leaves of a hub from before salted leaves stay as they were (format 1); new leaves are salted (format 2); both
verify, and a witness checks the mixed tree from public data alone."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from sqlalchemy import select

from hygie.audit import AuditEvent
from hygie.audit.entry import COLUMNS, canonical_entry
from hygie.audit.leaf import CLEAR, SALTED
from hygie.audit.log import TransparencyLog
from hygie.audit.storage import appending
from hygie.audit.witness import check_consistency, check_entries
from hygie.hub import Hub
from tests.audit.helpers import fill


def _sequence_as_before(hub: Hub) -> None:
    """What the sequencer did before salted leaves: the leaf hashes the entry in clear."""
    events = AuditEvent.__table__.c
    with appending(hub.engine) as log:
        _, last = log.lock_state()
        rows: list[Any] = (
            log.conn.execute(select(*(events[c] for c in COLUMNS)).where(events.id > last).order_by(events.id))
            .mappings()
            .all()
        )
        log.append([(int(r["id"]), hashlib.sha256(b"\x00" + canonical_entry(r)).digest(), None) for r in rows])


def test_old_leaves_are_kept_and_new_ones_are_salted(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    fill(hub, 5)
    _sequence_as_before(hub)
    old = log.checkpoint()
    assert old.size == 5
    fill(hub, 6, start=5)
    new = log.checkpoint()
    assert new.size == 11 and log.verify().ok
    entries = log.entries(0, new.size)
    assert [e["format"] for e in entries] == [CLEAR] * 5 + [SALTED] * 6
    assert all(e["leaf"] is None and e["register"] is None for e in entries[:5])  # old leaves: the hash alone
    assert not any("needle" in str(e) for e in entries)
    key = log.verifier_key
    check_entries(entries, new.note, key)
    check_consistency(old.note, new.note, [base64.b64encode(p).decode() for p in log.consistency_proof(5, 11).proof],
                      key)  # fmt: skip
    full = log.full_entries(0, new.size)
    for e in full[:5]:
        assert e["salt"] is None
        assert hashlib.sha256(b"\x00" + e["entry"].encode()).digest() == base64.b64decode(e["leaf_hash"])
    assert all(len(base64.b64decode(e["salt"])) == 32 for e in full[5:])
