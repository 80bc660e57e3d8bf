# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Drawing the improper-payment sample (issue 17, items 3 and 4): inside an active control project, from its view
only, sized from the target precision, seeded, on the record and reproducible; refused to everyone else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hygie.audit.events import AuditEvent
from hygie.control import sample as sampling
from hygie.control.estimate import design
from hygie.control.sample import ControlSample, SampledClaim, draw, read_frame, verify
from hygie.governance.access import NotVisible
from hygie.governance.accounts import Accounts
from hygie.governance.errors import Conflict, Denied
from hygie.governance.models import Project
from tests.portal.world import World

from .rate_world import (  # noqa: F401  (fixtures)
    actor,
    control_delivery,
    control_project,
    postgres_template,
    rate_world,
    sqlite_template,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from rate_world(request, tmp_path_factory.mktemp("control-sample"))


@pytest.fixture(scope="module")
def project_id(world: World) -> int:
    return control_project(world)


def test_a_member_draws_a_stratified_sample_sized_from_the_target_and_the_seed_is_on_the_record(
    world: World, project_id: int
) -> None:
    hub = world.hub
    sample = draw(hub, actor(world, "researcher1"), project_id)
    with hub.session() as s:
        project = s.get(Project, project_id)
        assert project is not None
        frame = read_frame(hub, s, project)
        claims = s.scalars(select(SampledClaim).where(SampledClaim.sample_id == sample.id)).all()
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "control.sample.draw")).one()
    # strata: care type x amount band, each sized by the Neyman design of the settings, at least 2 (or whole)
    planned = design(frame.summary(), half_width=0.06, expected_rate=0.05, min_per_stratum=2)
    assert {k: v["drawn"] for k, v in sample.strata.items()} == planned
    assert len(claims) == sum(planned.values()) > 10
    assert len({c.claim_key for c in claims}) == len(claims)
    assert {c.stratum for c in claims} == set(planned)
    assert all(c.stratum.startswith(c.care_type + "/") and c.amount > 0 and c.decision is None for c in claims)
    assert "pharmacie/0-20" in planned and any(k.startswith("consultation/") for k in planned)
    assert sample.design["allocation"] == "neyman" and sample.design["amount_column"] == "BSE_REM_MNT"
    # the record holds the seed, the frame's hash and the design: anyone auditing can draw it again
    assert event.project_id == project_id and event.purpose == "expenditure" and event.actor.startswith("account:")
    assert event.detail["seed"] == sample.seed and int(sample.seed) > 0
    assert event.detail["frame_sha256"] == sample.frame_sha256 == frame.digest()
    assert event.detail["drawn"] == len(claims) and event.detail["frame_claims"] == frame.keys.size
    again = sampling.draw_from(frame, {k: v["drawn"] for k, v in sample.strata.items()}, int(sample.seed))
    assert sorted(int(frame.keys[i]) for i in again) == sorted(c.claim_key for c in claims)
    assert verify(hub, actor(world, "researcher1"), sample.id) == sampling.Verification(True, True)
    # a stated seed gives the same claims twice; another seed, other claims
    first = draw(hub, actor(world, "researcher1"), project_id, seed=12345)
    second = draw(hub, actor(world, "researcher1"), project_id, seed=12345)
    third = draw(hub, actor(world, "researcher1"), project_id, seed=54321)
    with hub.session() as s:
        keys = [
            sorted(s.scalars(select(SampledClaim.claim_key).where(SampledClaim.sample_id == x.id)))
            for x in (first, second, third)
        ]
    assert keys[0] == keys[1] != keys[2]


def test_the_sample_is_refused_outside_an_active_control_project_and_says_why(world: World, project_id: int) -> None:
    hub = world.hub
    before = _count(world, ControlSample)
    # oversight roles never reach the data; a researcher outside the project sees no such project
    for name in ("reviewer1", "dpo", "operator", "auditor"):
        with pytest.raises(Denied, match="never reaches project data"):
            draw(hub, actor(world, name), project_id)
    with pytest.raises(NotVisible, match=f"no project {project_id}"):  # the 404 of a missing project
        draw(hub, actor(world, "researcher2"), project_id)
    # a data token bound to another project of the same researcher does not reach this one
    research = control_project(world, purpose="research")
    token = {"name": "bound", "scopes": ["data", "governance"], "days": 1, "project_id": research}
    r = world.call("researcher1", "POST", "/me/tokens", json=token)
    assert r.status_code == 200, r.text
    with world.hub.session() as s:
        bound = Accounts(s, hub.custody, hub.settings).authenticate(r.json()["token"])
    with pytest.raises(Denied, match=f"bound to project {research}"):
        draw(hub, bound, project_id)
    # a research project is not a control project, whatever its columns
    with pytest.raises(Denied, match="not one claims are controlled under"):
        draw(hub, actor(world, "researcher1"), research)
    # a view without a paid amount cannot be sampled
    narrow = control_project(world, scope={**_scope(), "tables": {"ER_PRS_F": ["CLE_DCI_JNT", "PRS_NAT_REF"]}})
    with pytest.raises(Conflict, match="needs ER_PRS_F with CLE_DCI_JNT, PRS_NAT_REF and a paid amount"):
        draw(hub, actor(world, "researcher1"), narrow)
    # an empty frame: a period without care has no paid claim to sample
    empty = control_project(
        world, scope={**_scope(), "population": {"period_start": "2019-01-01", "period_end": "2019-12-31"}}
    )
    with pytest.raises(Conflict, match="no paid claim: there is nothing to sample"):
        draw(hub, actor(world, "researcher1"), empty)
    # a suspended project's data is out of reach
    suspended = control_project(world)
    r = world.call("dpo", "POST", f"/projects/{suspended}/suspend", json={"reason": "checking an alert on it"})
    assert r.status_code == 200, r.text
    with pytest.raises(Denied, match="suspended"):
        draw(hub, actor(world, "researcher1"), suspended)
    # a precision that would need more than the maximum sample is refused, not silently cut
    hub.settings.control_max_sample = 5
    try:
        with pytest.raises(Conflict, match="more than control_max_sample"):
            draw(hub, actor(world, "researcher1"), project_id)
    finally:
        hub.settings.control_max_sample = 50_000
    assert _count(world, ControlSample) == before
    with hub.session() as s:
        refusals = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "control.sample.draw", AuditEvent.outcome != "ok")
        ).all()
    assert len(refusals) == 11 and all(e.detail["reason"] for e in refusals)


def _scope() -> dict[str, object]:
    from .rate_world import CONTROL_SCOPE

    return dict(CONTROL_SCOPE)


def _count(world: World, model: type) -> int:
    with world.hub.session() as s:
        return len(s.scalars(select(model.id)).all())  # type: ignore[attr-defined]
