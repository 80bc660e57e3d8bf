# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A module-scoped world for the improper-payment tests: the portal's small population, staff of every role, and
an active control project (purpose 'expenditure', approved by two reviewers) with researcher2 as a member."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hygie.governance.accounts import Accounts, Actor
from hygie.synth import generate
from tests.portal.world import Template, World, build_world, make_template

CONTROL_SCOPE: dict[str, Any] = {
    "tables": {"ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT"]},
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
}
SMALL_DESIGN = {"control_target_half_width": 0.06, "control_min_per_stratum": 2}
"""A coarse target so the test sample stays a few dozen claims (the defaults ask for about a thousand)."""


def control_project(world: World, requester: str = "researcher1", **overrides: Any) -> int:
    body = {
        "title": "Improper payments 2024",
        "purpose": "expenditure",
        "justification": "Estimate the share of 2024 reimbursements paid in error from a reviewed random sample.",
        "public_summary": "How much of 2024 spending was paid in error, with its uncertainty.",
        "scope": CONTROL_SCOPE,
        **overrides,
    }
    return world.active_project(requester, **body)


def actor(world: World, name: str) -> Actor:
    """The actor a signed-in session of ``name`` acts as (authenticated from a real token)."""
    token = world.headers(name)["Authorization"].removeprefix("Bearer ")
    with world.hub.session() as session:
        return Accounts(session, world.hub.custody, world.hub.settings).authenticate(token)


_built: dict[str, Any] = {}
"""What the session fixtures below built, per process: each test module imports them, which gives each module its
own fixture instance; the delivery and templates are built once all the same (they live until the session ends)."""


@pytest.fixture(scope="session")
def control_delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "delivery" not in _built:
        out = tmp_path_factory.mktemp("control-delivery")
        generate(out, people=300, years=1, seed=3, start_year=2024)
        _built["delivery"] = out
    path: Path = _built["delivery"]
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, control_delivery: Path) -> Template:
    if "sqlite" not in _built:
        _built["sqlite"] = make_template(tmp_path_factory.mktemp("control-sqlite"), control_delivery, None)
    template: Template = _built["sqlite"]
    return template


@pytest.fixture(scope="session")
def postgres_template(
    tmp_path_factory: pytest.TempPathFactory, control_delivery: Path, postgres_cluster: str
) -> Template:
    if "postgresql" not in _built:
        _built["postgresql"] = make_template(tmp_path_factory.mktemp("control-pg"), control_delivery, postgres_cluster)
    template: Template = _built["postgresql"]
    return template


def rate_world(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    if request.param == "sqlite":
        worlds = build_world(tmp, request.getfixturevalue("sqlite_template"), None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        worlds = build_world(tmp, request.getfixturevalue("postgres_template"), cluster)
    for world in worlds:
        for name, value in SMALL_DESIGN.items():
            setattr(world.hub.settings, name, value)
        yield world


__all__ = ["actor", "control_delivery", "control_project", "postgres_template", "rate_world", "sqlite_template"]


def improper_across_people(world: World, project_id: int, claim_keys: list[int], every: int) -> set[int]:
    """About one in ``every`` of ``claim_keys`` to mark improper, chosen so that they belong to at least the
    disclosure threshold's number of people (the sample's seed is random: every n-th claim alone may fall on too
    few people, and the release then rightly refuses)."""
    from hygie.governance.models import Project
    from hygie.governance.policy import CLAIM_KEY
    from hygie.governance.views import open_view
    from hygie.ingest.contract import CARE_TABLE, PSEUDONYM_COLUMN

    with world.hub.session() as session:
        project = session.get(Project, project_id)
        assert project is not None
        threshold = max(project.threshold, world.hub.settings.disclosure_threshold)
        con = open_view(world.hub, session, project)
        try:
            owner = dict(
                con.execute(f"SELECT {CLAIM_KEY}, min({PSEUDONYM_COLUMN}) FROM {CARE_TABLE} GROUP BY 1").fetchall()
            )
        finally:
            con.close()
    chosen: set[int] = set()
    people: set[str] = set()
    for key in claim_keys:  # first one claim per new person, up to the threshold
        if len(people) < threshold and owner[key] not in people:
            chosen.add(key)
            people.add(owner[key])
    assert len(people) >= threshold, "the sample's claims belong to too few people for this test"
    chosen |= set(claim_keys[::every])
    return chosen
