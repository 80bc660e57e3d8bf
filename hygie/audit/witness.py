# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What anyone can check with public data alone: the public entries (GET /audit/entries) hash to the root of a
signed checkpoint, and a newer checkpoint extends an older one (GET /audit/proof/consistency).

These are checks anyone (a monitor, a journalist) can run on what the log serves. The witness that *cosigns*
checkpoints (C2SP tlog-witness) is :mod:`hygie.audit.witness_server`; the log's side of it,
:mod:`hygie.audit.witnessing`.

No event, no salt: a salted leaf's data (its commitment and, for acts the register shows, their project, action and
time) is hashed as served; a leaf of format 1 (from before salted leaves) is taken by its hash.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from hygie.audit import merkle
from hygie.audit.leaf import CLEAR, SALTED, leaf_hash, parse_public
from hygie.audit.note import Checkpoint, open_note


class WitnessError(ValueError):
    """The public data does not agree with what was signed."""


def public_leaf_hash(entry: Mapping[str, Any]) -> bytes:
    """The leaf hash of one public entry: recomputed from its data (format 2) or as served (format 1)."""
    served = base64.b64decode(entry["leaf_hash"], validate=True)
    if entry["format"] == CLEAR:
        return served
    if entry["format"] != SALTED:
        raise WitnessError(f"entry {entry.get('index')}: unknown leaf format {entry['format']!r}")
    data = entry["leaf"]
    try:
        parsed = parse_public(data)
    except ValueError as exc:
        raise WitnessError(f"entry {entry.get('index')}: {exc}") from None
    register = entry.get("register")
    if register is not None and register != {k: parsed.get(k) for k in ("action", "at", "project_id")}:
        raise WitnessError(f"entry {entry.get('index')}: its register fields are not those of its leaf")
    computed = leaf_hash(data.encode("ascii"))
    if computed != served:
        raise WitnessError(f"entry {entry.get('index')}: its leaf data does not hash to its leaf hash")
    return computed


def check_entries(entries: Sequence[Mapping[str, Any]], note: str, verifier_key: str) -> Checkpoint:
    """Check a signed checkpoint and that the public entries ``[0, size)`` hash to its root; returns it."""
    checkpoint = open_note(note, verifier_key)
    if [e["index"] for e in entries] != list(range(checkpoint.size)):
        raise WitnessError(f"give the public entries 0 to {checkpoint.size - 1}, in order")
    root = merkle.root_of([public_leaf_hash(e) for e in entries])
    if root != checkpoint.root:
        raise WitnessError(f"the public entries do not hash to the signed root of size {checkpoint.size}")
    return checkpoint


def check_consistency(old_note: str, new_note: str, proof: Sequence[str], verifier_key: str) -> None:
    """Check two signed checkpoints and the consistency proof (base64 hashes) from the older to the newer."""
    old, new = open_note(old_note, verifier_key), open_note(new_note, verifier_key)
    hashes = [base64.b64decode(p, validate=True) for p in proof]
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, hashes):
        raise WitnessError(f"the tree of size {new.size} does not extend the signed tree of size {old.size}")
