# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack: the public log tells what people did.

Anonymous ``GET /audit/entries`` returned every event in clear: a citizen's opt-out, breach-notice reads, the DPO's
searches, alert dismissals, SQL job row counts never released; the operator, refused at /audit/events, read the same
there. What must not happen: any of these acts, their actors or their details readable by anyone but auditors (and
each citizen for their own entries), while the log stays verifiable.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from tests.security.conftest import Served

SECRETS_OF_ACTS = ("citizen.opt_out", "breach.notices", "audit.search", "alert.dismiss", "alert.acknowledge",
                   "output_rows", "rows_scanned", "citizen.data_uses")  # fmt: skip
"""Action names and detail keys of the acts above: none may be readable in the public entries."""


def log_size(s: Served) -> int:
    """The log's current size, from what any witness can read: the 400 answer past the end, else the checkpoint."""
    r = s.call(None, "GET", "/audit/entries", params={"start": 0, "end": 10**9}, source="127.0.0.9")
    found = re.search(r"holds (\d+) entries", r.text)
    if found:
        return int(found.group(1))
    note = s.call(None, "GET", "/audit/checkpoint").text.splitlines()
    return int(note[1])


def public_entries(s: Served, caller: str | None, start: int) -> list[dict[str, Any]]:
    end = log_size(s)
    out: list[dict[str, Any]] = []
    while start < end:
        stop = min(end, start + 1000)
        r = s.call(caller, "GET", "/audit/entries", params={"start": start, "end": stop})
        assert r.status_code == 200, r.text
        out.extend(r.json()["entries"])
        start = stop
    return out


def make_private_acts(s: Served) -> dict[str, Any]:
    """The acts of the issue, as their people do them; returns what must stay private about them."""
    citizen = s.ids["citizen1"]
    assert s.call("citizen1", "POST", "/me/opt-out").status_code == 200
    assert s.call("citizen1", "DELETE", "/me/opt-out").status_code == 200  # object, then withdraw: two acts
    assert s.call("citizen1", "GET", "/me/breach-notices").status_code == 200
    assert s.call("dpo", "GET", "/audit/events", params={"actor": f"account:{citizen}"}).status_code == 200
    pid = s.active("researcher2")  # approved by new reviewers: a fresh_approver alert
    alert = s.open_alert()
    assert alert is not None, "no alert to dismiss"
    r = s.call("dpo", "POST", f"/alerts/{alert['id']}/dismiss", json={"note": "known: a test"})
    assert r.status_code == 200, r.text
    job = s.sql("researcher2", pid, "SELECT count(*) AS n FROM ER_PRS_F")  # goes to the airlock, never released
    return {"citizen": f"account:{citizen}", "job": job}


def test_anonymous_and_the_operator_read_nothing_the_register_does_not_show(served: Served) -> None:
    s = served
    start = log_size(s)
    private = make_private_acts(s)
    for caller in (None, "operator"):
        text = json.dumps(public_entries(s, caller, start), ensure_ascii=False)
        assert private["citizen"] not in text, (caller, "a citizen's account is named in the public log")
        shown = [word for word in SECRETS_OF_ACTS if word in text]
        assert not shown, (caller, f"the public log shows {shown}")


def test_the_operator_cannot_read_the_record_by_another_door(served: Served) -> None:
    s = served
    for path, params in (("/audit/events", {}), ("/audit/entries/full", {"start": 0, "end": 1}), ("/alerts", {})):
        r = s.call("operator", "GET", path, params=params)
        assert not 200 <= r.status_code < 300, (path, r.text[:300])
    r = s.call("operator", "GET", "/me/audit-entries")  # their own entries, if any: never a citizen's
    assert f"account:{s.ids['citizen1']}" not in r.text, r.text[:300]


def test_a_citizen_sees_their_own_entries_and_nobody_elses(served: Served) -> None:
    """New API (H4): ``GET /me/audit-entries`` gives a citizen their own entries with proofs."""
    s = served
    assert s.call("citizen1", "POST", "/me/opt-out").status_code == 200
    assert s.call("citizen1", "DELETE", "/me/opt-out").status_code == 200
    other = s.call("citizen2", "GET", "/me/audit-entries")
    assert f"account:{s.ids['citizen1']}" not in other.text, other.text[:300]
    mine = s.call("citizen1", "GET", "/me/audit-entries")
    assert mine.status_code == 200, mine.text
    assert "citizen.opt_out" in mine.text, mine.text[:300]


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2, written out here as an outside witness would (not the hub's own code)."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def test_a_witness_still_checks_the_log(served: Served) -> None:
    """From public data alone (checkpoint, entries, proofs), leaves hash to what the signed root commits to."""
    s = served
    make_private_acts(s)
    body = s.call(None, "GET", "/audit/checkpoint").text.splitlines()
    size, root = int(body[1]), base64.b64decode(body[2])
    for index in sorted({0, size // 2, size - 1}):
        r = s.call(None, "GET", "/audit/entries", params={"start": index, "end": index + 1})
        assert r.status_code == 200, r.text
        entry = r.json()["entries"][0]
        assert entry["format"] == 2 and entry["leaf"], entry  # a salted leaf: the public data that hashes to it
        leaf_hash = base64.b64decode(entry["leaf_hash"])
        assert hashlib.sha256(b"\x00" + entry["leaf"].encode()).digest() == leaf_hash, entry
        r = s.call(None, "GET", "/audit/proof/inclusion", params={"index": index, "size": size})
        assert r.status_code == 200, r.text
        proof = [base64.b64decode(p) for p in r.json()["proof"]]
        assert root_from_inclusion(leaf_hash, index, size, proof) == root, (index, size)
