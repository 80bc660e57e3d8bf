"""Attack: the public log tells what people did.

Anonymous ``GET /audit/entries`` returned every event in clear: a citizen's opt-out, breach-notice reads, the DPO's
searches, alert dismissals, SQL job row counts never released; the operator, refused at /audit/events, read the same
there. What must not happen: any of these acts, their actors or their details readable by anyone but auditors (and
each citizen for their own entries), while the log stays verifiable.
"""

from __future__ import annotations

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
    alerts = s.call("dpo", "GET", "/alerts", params={"status": "open"}).json().get("alerts", [])
    if alerts:
        r = s.call("dpo", "POST", f"/alerts/{alerts[0]['id']}/dismiss", json={"note": "known: a test"})
        assert r.status_code == 200, r.text
    pid = s.active("researcher2")
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


def test_a_witness_still_checks_the_log(served: Served) -> None:
    """The public form still commits to every event: inclusion proofs answer for every leaf from public data."""
    s = served
    size = log_size(s)
    entries = public_entries(s, None, max(0, size - 50))
    assert entries and all(e.get("leaf_hash") for e in entries), entries[:2]
    checkpoint = s.call(None, "GET", "/audit/checkpoint")
    assert checkpoint.status_code == 200
    checked = int(checkpoint.text.splitlines()[1])
    r = s.call(None, "GET", "/audit/proof/inclusion", params={"index": checked - 1, "size": checked})
    assert r.status_code == 200, r.text
