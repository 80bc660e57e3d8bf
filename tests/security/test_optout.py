# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack (by omission): opt-out does not reach running projects.

An opted-out citizen stayed in every active view until it was rebuilt (1 beneficiary row and 21 care rows still
there). What must not happen: any query of an active project, run after the objection, still counting the person.
"""

from __future__ import annotations

from typing import Any

from tests.security.conftest import Served

COUNTS = "SELECT (SELECT count(*) FROM IR_BEN_R) AS people, (SELECT count(*) FROM ER_PRS_F) AS care"


def exact_counts(s: Served, pid: int) -> dict[str, Any]:
    """People and care rows of the project's view, exactly: an SQL output read by an output checker in the airlock
    (the only place exact counts exist before disclosure control)."""
    job = s.sql("researcher1", pid, COUNTS)
    assert job["status"] == "withheld", job  # awaiting checkers, who find it in the airlock
    release = next(
        int(i["release_id"]) for i in s.call("reviewer1", "GET", "/airlock").json() if i["job_id"] == job["id"]
    )
    r = s.call("reviewer1", "GET", f"/airlock/{release}")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["rows"]
    return rows[0]


def test_an_opted_out_citizen_leaves_active_projects_at_once(served: Served) -> None:
    s = served
    pid = s.active("researcher1")
    uses = s.call("citizen2", "GET", "/me/data-uses").json()["uses"]
    assert pid in [u["project_id"] for u in uses], uses  # the citizen is in the view: the attack has a target
    before = exact_counts(s, pid)
    try:
        assert s.call("citizen2", "POST", "/me/opt-out").status_code == 200
        after = exact_counts(s, pid)
        assert after["people"] == before["people"] - 1, (before, after)
        assert after["care"] < before["care"], (before, after)
        # An aggregate run now answers too (disclosure control rounds its cells: the exact count is checked above).
        job = s.aggregate("researcher1", pid, {"group_by": ["sex"]})
        assert job["status"] in ("released", "withheld"), job
    finally:
        s.call("citizen2", "DELETE", "/me/opt-out")
