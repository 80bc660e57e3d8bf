# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The review queue attacked: one person's accounts drawing and judging a sample, an estimate that describes a
single improper claim, and a claim page that would name a provider whose pseudonym takes two people to lift."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import select

from hygie.audit.events import AuditEvent
from hygie.control.review import claim_detail, decide, designate, queue, release
from hygie.control.sample import draw, verify
from hygie.governance.accounts import Actor
from hygie.governance.errors import Conflict, Denied, GovernanceError
from hygie.governance.models import Account
from tests.control.rate_world import (  # noqa: F401
    actor,
    control_delivery,
    control_project,
    rate_world,
    sqlite_template,
)
from tests.portal.world import World

TRAINING = "CERT-style medical review course, two days, 2026"
PROVIDER_SCOPE = {
    "tables": {"ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT",
                            "PFS_EXE_NUM", "PFS_PRE_NUM"]},
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
}  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from rate_world(request, tmp_path_factory.mktemp("review-attacks"))


def created_by(world: World, name: str, creator: str) -> None:
    with world.hub.session() as session:
        account = session.scalars(select(Account).where(Account.username == name)).one()
        account.created_by = f"account:{world.ids[creator]}"
        session.commit()


def test_one_persons_accounts_neither_designate_nor_judge_each_others_samples(world: World) -> None:
    pid = control_project(world, scope=PROVIDER_SCOPE)
    added = world.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": world.ids["researcher2"]})
    assert added.status_code == 200, added.text
    designate(world.hub, actor(world, "researcher1"), pid, world.ids["researcher2"], TRAINING)  # independent: fine
    drawn = draw(world.hub, actor(world, "researcher1"), pid, seed=11)
    items = queue(world.hub, actor(world, "researcher2"), drawn.id).items
    # Now both accounts turn out to come from one creator (the operator made both): one person's accounts.
    created_by(world, "researcher1", "operator")
    created_by(world, "researcher2", "operator")
    with pytest.raises(Denied, match="created by the same person"):
        decide(world.hub, actor(world, "researcher2"), drawn.id, items[0].claim_key, "proper")
    with pytest.raises(Denied, match="created by the same person"):
        queue(world.hub, actor(world, "researcher2"), drawn.id)
    with pytest.raises(Denied, match="independent of the project's requester"):
        designate(world.hub, actor(world, "researcher1"), control_project(world), world.ids["researcher2"], TRAINING)
    with world.hub.session() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(["control.review.decide", "control.reviewer.designate"]),
                                     AuditEvent.outcome != "ok")
        ).all()  # fmt: skip
    assert len(refused) >= 2  # each refusal is on the record
    world.__dict__["attack"] = (pid, drawn.id, items)


def test_an_estimate_never_describes_fewer_improper_people_than_the_threshold(world: World) -> None:
    pid, sample_id, items = world.__dict__["attack"]
    with world.hub.session() as session:  # the lineage of the previous test undone: independent accounts again
        for name in ("researcher1", "researcher2"):
            account = session.scalars(select(Account).where(Account.username == name)).one()
            account.created_by = "console"
        session.commit()
    reviewer = actor(world, "researcher2")
    first = items[0]
    decide(world.hub, reviewer, sample_id, first.claim_key, "improper", reason="doublon", error_amount=first.amount)
    for item in items[1:]:
        decide(world.hub, reviewer, sample_id, item.claim_key, "proper")
    # One improper claim (one person's care) expanded by its stratum's weight would be the released amount.
    with pytest.raises(Conflict, match="improper belong to fewer than"):
        release(world.hub, reviewer, sample_id)
    # The claim page names providers by their project pseudonym, never their number.
    shown = claim_detail(world.hub, reviewer, sample_id, first.claim_key)
    with world.hub.session() as session:
        from hygie.governance.models import Project
        from hygie.governance.views import open_view

        project = session.get(Project, pid)
        assert project is not None
        con = open_view(world.hub, session, project)
        numbers = {str(n) for (n,) in con.execute("SELECT DISTINCT PFS_EXE_NUM FROM ER_PRS_F").fetchall()}
        con.close()
    for row in shown["rows"]:
        assert str(row["PFS_EXE_NUM"]) not in numbers and str(row["PFS_PRE_NUM"]) not in numbers


def test_a_sample_id_tells_nobody_outside_its_project_that_it_exists(world: World) -> None:
    """Probing sample ids from outside the project: an existing sample and a missing one give the same answer, so
    nobody learns that a project drew samples, how many, nor which project a sample belongs to (review finding
    R2-F4: the sample was looked up first, and its project's gate then answered with the project's number)."""
    pid = control_project(world)
    drawn = draw(world.hub, actor(world, "researcher1"), pid, seed=5)
    missing = drawn.id + 10_000
    other = control_project(world, requester="researcher2")  # researcher2's own project: a member elsewhere
    outsiders = {
        "a researcher of another project": actor(world, "researcher2"),
        "a reviewer": actor(world, "reviewer1"),
        "the DPO": actor(world, "dpo"),
        "the operator": actor(world, "operator"),
        "the requester with a token bound to another project": replace(actor(world, "researcher1"), project_id=other),
    }
    calls: dict[str, Callable[[Actor, int], object]] = {
        "queue": lambda who, sid: queue(world.hub, who, sid),
        "claim": lambda who, sid: claim_detail(world.hub, who, sid, 1),
        "decide": lambda who, sid: decide(world.hub, who, sid, 1, "proper"),
        "release": lambda who, sid: release(world.hub, who, sid),
        "verify": lambda who, sid: verify(world.hub, who, sid),
        "queue at the project's address": lambda who, sid: queue(world.hub, who, sid, project_id=pid),
        "queue at the asker's own project's address": lambda who, sid: queue(world.hub, who, sid, project_id=other),
    }
    for name, who in outsiders.items():
        for what, call in calls.items():
            answers = []
            for sid in (drawn.id, missing):
                with pytest.raises(GovernanceError) as caught:
                    call(who, sid)
                refusal = caught.value
                said = refusal.message.replace(f"sample {sid}", "sample N")
                answers.append((type(refusal).__name__, refusal.status, said))
            assert answers[0] == answers[1], (name, what, answers)
            named = re.search(rf"\b{pid}\b", answers[0][2])
            assert not named or what == "queue at the project's address", (name, what, answers)
