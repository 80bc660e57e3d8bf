# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A differential-privacy project attacked around its budget: by claim control, by the view's sizes, and by a
researcher probing other teams' population criteria through the budget's overlap lists."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from hygie.control import sample
from hygie.governance.accounts import Actor
from hygie.governance.errors import Denied
from hygie.governance.models import Project
from hygie.governance.policy import Role
from hygie.governance.privacy import project_budget
from tests.portal.conftest import sqlite_template  # noqa: F401
from tests.portal.world import SCOPE, Template, World, build_world, project_request


@pytest.fixture(scope="module")
def w(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Template) -> Iterator[World]:  # noqa: F811
    yield from build_world(tmp_path_factory.mktemp("dp-leaks"), sqlite_template, None)


def scope_with(**population: Any) -> dict[str, Any]:
    s = copy.deepcopy(SCOPE)
    s["population"].update(population)
    return s


def test_claim_control_never_runs_in_a_dp_project(w: World) -> None:
    refused = w.call("researcher1", "POST", "/projects",
                     json=project_request(purpose="expenditure", release_mode="dp", privacy_budget=0.5))  # fmt: skip
    assert refused.status_code == 422 and "sdc" in refused.json()["detail"]
    # A DP project whose purpose became a control one later (or any other way in) still cannot draw claims.
    pid = w.active_project(release_mode="dp", privacy_budget=0.5)
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        project.purpose = "expenditure"
        session.commit()
    researcher = Actor(account_id=w.ids["researcher1"], role=Role.RESEARCHER, scopes=frozenset({"data"}), via="test")
    with pytest.raises(Denied, match="differential privacy"):
        sample.draw(w.hub, researcher, pid)
    with w.hub.session() as session:
        budget = project_budget(session, pid)
        assert budget is not None and budget.spent == 0.0


def test_a_dp_projects_view_shows_no_sizes(w: World) -> None:
    pid = w.active_project(release_mode="dp", privacy_budget=0.3)
    view = w.call("researcher1", "GET", f"/projects/{pid}/view")
    assert view.status_code == 200, view.text
    assert view.json()["people"] is None and all(t["rows"] is None for t in view.json()["tables"].values())
    sdc = w.call("researcher1", "GET", f"/projects/{w.active_project()}/view").json()
    assert sdc["people"] is not None  # rounded sizes for disclosure-control projects, as before


def test_a_researcher_cannot_probe_other_teams_criteria_through_overlaps(w: World) -> None:
    r = w.call("researcher2", "POST", "/projects", json=project_request(
        release_mode="dp", privacy_budget=0.2, scope=scope_with(age_min=60, age_max=75, sexes=[2])))  # fmt: skip
    victim = r.json()["id"]
    assert w.call("researcher2", "POST", f"/projects/{victim}/submit").status_code == 200
    probe = w.call("researcher1", "POST", "/projects", json=project_request(release_mode="dp", privacy_budget=0.2))
    probe_id = probe.json()["id"]
    for sexes in ([1], [2]):
        changed = w.call("researcher1", "PATCH", f"/projects/{probe_id}", json={"scope": scope_with(sexes=sexes)})
        assert changed.status_code == 200, changed.text
        privacy = w.call("researcher1", "GET", f"/projects/{probe_id}").json()["privacy"]
        assert privacy["overlapping_project_ids"] is None and privacy["sharing_project_ids"] is None
    assert w.call("researcher1", "POST", f"/projects/{probe_id}/submit").status_code == 200
    judged = w.call("reviewer1", "GET", f"/projects/{probe_id}").json()["privacy"]
    assert victim in judged["overlapping_project_ids"]  # those who judge the project still see it
    with w.hub.session() as session:
        assert session.scalar(select(Project.id).where(Project.id == victim)) == victim
