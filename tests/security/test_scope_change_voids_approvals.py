# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack: an approval survives a change of scope.

Reviewer 1 approves a narrow project, reviewer 2 rejects it, the requester widens it while it is a draft (commune of
residence, everyone), resubmits, and one more approval would activate it: decisions on the narrow version counted
for the wide one. What must not happen: the wide scope active on fewer than two approvals of the wide scope.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.portal.world import SCOPE
from tests.security.conftest import APPROVE, REJECT, Served

NARROW: dict[str, Any] = copy.deepcopy(SCOPE)
NARROW["population"].update({"age_min": 60, "sexes": [2]})
WIDE: dict[str, Any] = {
    "tables": {
        "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN", "BEN_RES_DPT", "BEN_RES_COM"],
        "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"],
    },
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
    "potential_identifiers": ["residence_commune"],
}


def decide(s: Served, reviewer: str, pid: int, body: dict[str, str]) -> dict[str, Any]:
    r = s.call(reviewer, "POST", f"/projects/{pid}/decisions", json=body)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def widen(s: Served, pid: int) -> None:
    r = s.call("researcher1", "PATCH", f"/projects/{pid}", json={"scope": WIDE})
    assert r.status_code == 200, r.text


def assert_not_reachable(s: Served, pid: int) -> None:
    project = s.call("reviewer1", "GET", f"/projects/{pid}").json()
    assert project["status"] != "active", project
    r = s.call("researcher1", "GET", f"/projects/{pid}/view")
    assert not 200 <= r.status_code < 300, r.text


def test_a_widened_draft_needs_two_new_approvals(served: Served) -> None:
    s = served
    pid = s.submitted("researcher1", scope=NARROW)
    decide(s, "reviewer1", pid, APPROVE)
    decide(s, "reviewer2", pid, REJECT)  # back to the requester as a draft
    widen(s, pid)
    assert s.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    r = s.call("reviewer3", "POST", f"/projects/{pid}/decisions", json=APPROVE)  # one more approval, a third reviewer
    assert r.status_code == 200, r.text
    assert_not_reachable(s, pid)


def test_a_scope_widened_under_review_voids_the_approval_given(served: Served) -> None:
    s = served
    pid = s.submitted("researcher1", scope=NARROW)
    decide(s, "reviewer1", pid, APPROVE)
    widen(s, pid)  # while submitted
    if s.call("reviewer1", "GET", f"/projects/{pid}").json()["status"] == "draft":
        assert s.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    r = s.call("reviewer2", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.status_code == 200, r.text
    assert_not_reachable(s, pid)


def test_the_same_reviewer_approving_each_version_is_still_one_reviewer(served: Served) -> None:
    s = served
    pid = s.submitted("researcher1", scope=NARROW)
    decide(s, "reviewer1", pid, APPROVE)
    widen(s, pid)
    if s.call("reviewer1", "GET", f"/projects/{pid}").json()["status"] == "draft":
        assert s.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    s.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert_not_reachable(s, pid)
