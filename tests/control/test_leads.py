# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Control runs are governed like any use of the data (issue 17, item 4): only inside an active project approved
for control of spending, only for its members, from its view only, each run and each read of leads recorded
before the answer; the leads page (French, DSFR) shows leads by rule with their evidence, by pseudonym."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hygie import apiclient
from hygie.audit.events import AuditEvent
from hygie.control import leads as leads_mod
from hygie.control.cli import control_app
from hygie.control.leads import ControlLead, leads, run
from hygie.governance.access import NotVisible
from hygie.governance.errors import Conflict, Denied, GovernanceError
from hygie.portal.pages.web import SESSION_COOKIE
from tests.control.rate_world import actor
from tests.portal.world import World

from .leads_world import LEADS_SCOPE, anomalous_delivery, leads_project, leads_template, leads_world  # noqa: F401


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, leads_template: object) -> Iterator[World]:  # noqa: F811
    yield from leads_world(tmp_path_factory.mktemp("control-leads"), leads_template)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def project_id(world: World) -> int:
    return leads_project(world)


def browser(world: World, name: str) -> tuple[TestClient, str]:
    """A browser signed in as ``name`` (the session cookie) and the CSRF token its forms carry."""
    client = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    token = world.login(name)
    client.cookies.set(SESSION_COOKIE, token)
    return client, hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()


def _events(world: World, action: str) -> list[AuditEvent]:
    with world.hub.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_a_run_and_a_read_are_recorded_before_their_answer(
    world: World, project_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = actor(world, "researcher1")

    # If recording fails, no run and no lead come back (the record commits with them, before the return).
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(leads_mod, "record", broken)
    with pytest.raises(RuntimeError):
        run(world.hub, who, project_id, ["duplicate"])
    with world.hub.session() as s:
        assert s.scalars(select(ControlLead)).first() is None
    monkeypatch.undo()

    done = run(world.hub, who, project_id, ["duplicate", "after_death"])
    [event] = [e for e in _events(world, "control.leads.run") if e.outcome == "ok"]
    assert event.object == f"control-run:{done.id}" and event.project_id == project_id
    assert event.detail["leads"] == done.counts and done.counts["duplicate"] > 0
    assert event.purpose == "expenditure" and event.detail["thresholds"]["duplicate_natures"] == [[1100, 1299]]
    seen = leads(world.hub, who, project_id)
    assert seen.run is not None and seen.run.id == done.id
    assert {rule: len(v) for rule, v in seen.by_rule.items()} == {k: v for k, v in done.counts.items() if v}
    assert _events(world, "control.leads.read")[-1].detail == {"leads": sum(done.counts.values())}


def test_runs_are_listed_with_counts_only_to_people_who_may_see_them(
    world: World, project_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hygie control leads runs` asks the API with its holder's token; counts leave as any count leaving a project
    does (rounded, none under the threshold), and the operator, who runs the platform, gets none of them."""
    as_who = {"who": "researcher1"}

    def in_process(server: str) -> TestClient:
        return TestClient(world.client.app, headers=world.headers(as_who["who"]))

    monkeypatch.setattr(apiclient, "client", in_process)
    settings = world.hub.settings
    shown = CliRunner().invoke(control_app, ["leads", "runs", str(project_id), "--json"])
    assert shown.exit_code == 0, shown.output
    first = json.loads(shown.output.splitlines()[0])
    assert set(first) == {"run", "at", "view_generation", "leads"} and "duplicate" in first["leads"]
    threshold, base = settings.disclosure_threshold, settings.disclosure_rounding_base
    assert all(n is None or n == 0 or (n >= threshold and n % base == 0) for n in first["leads"].values())
    assert any(n is None for n in first["leads"].values())  # some rule fired for fewer than the threshold
    text = CliRunner().invoke(control_app, ["leads", "runs", str(project_id)])
    assert text.exit_code == 0 and f"run {first['run']} (" in text.output and "fewer than the threshold" in text.output
    assert world.call("dpo", "GET", f"/projects/{project_id}/control/runs").json()[0] == first
    as_who["who"] = "operator"
    refused = CliRunner().invoke(control_app, ["leads", "runs", str(project_id)])
    assert refused.exit_code == 1 and "error 403" in refused.output and "duplicate" not in refused.output
    missing = world.call("researcher1", "GET", f"/projects/{project_id + 999}/control/runs")
    assert missing.status_code == 404
    reads = _events(world, "control.runs.read")
    me, operator = f"account:{world.ids['researcher1']}", f"account:{world.ids['operator']}"
    assert [(e.actor, e.outcome) for e in reads] == [
        (me, "ok"), (me, "ok"), (f"account:{world.ids['dpo']}", "ok"), (operator, "denied"), (me, "failed")
    ]  # fmt: skip


def test_nobody_outside_an_active_control_project_runs_or_reads(world: World, project_id: int) -> None:
    outsider = actor(world, "researcher2")  # not a member
    with pytest.raises((Denied, NotVisible)):
        run(world.hub, outsider, project_id)
    with pytest.raises((Denied, NotVisible)):
        leads(world.hub, outsider, project_id)
    for name in ("reviewer1", "dpo", "operator"):
        with pytest.raises(GovernanceError):
            run(world.hub, actor(world, name), project_id)
    # A project approved for research, not for control of spending, runs no rule.
    research = leads_project(world, purpose="research", title="Research, not control")
    with pytest.raises(Denied, match="not one claims are controlled under"):
        run(world.hub, actor(world, "researcher1"), research)
    refused = [e for e in _events(world, "control.leads.run") if e.outcome == "denied"]
    assert len(refused) >= 5


def test_rules_read_the_view_only_and_say_what_it_lacks(world: World) -> None:
    # A control project whose scope leaves out the provider: the rules needing it say so; nothing falls back on
    # the warehouse, which holds the column.
    narrow = {**LEADS_SCOPE, "tables": {"ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT"]}}
    pid = leads_project(world, scope=narrow, title="Narrow control")
    with pytest.raises(Conflict, match="rule volume needs ER_PRS_F with PFS_EXE_NUM"):
        run(world.hub, actor(world, "researcher1"), pid, ["volume"])


def test_the_leads_page_lists_leads_by_rule_with_their_evidence_for_members_only(
    world: World,
    project_id: int,
    anomalous_delivery: tuple[Path, Path],  # noqa: F811
) -> None:
    lead, csrf = browser(world, "researcher1")
    base = f"/recherche/projets/{project_id}/pistes"
    assert 'id="pistes"' in lead.get(f"/recherche/projets/{project_id}").text  # linked from the project's page
    assert lead.post(f"{base}/analyse", data={"csrf": csrf}).status_code == 303  # the rules run from the page
    page = lead.get(f"{base}?fait=analyse")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'lang="fr"' in html and "fr-table" in html and "inscrite au journal" in html
    for label in ("Soins ou délivrances après le décès", "Volume journalier impossible", "Double facturation",
                  "Atypie par spécialité et région", "Patients qui n&#39;existent que sur le papier"):  # fmt: skip
        assert label in html, label
    with world.hub.session() as s:
        newest = s.scalars(select(ControlLead).where(ControlLead.project_id == project_id)
                           .order_by(ControlLead.id.desc())).first()  # fmt: skip
    assert newest is not None and newest.subject in html and str(newest.evidence["claims"][0]) in html
    assert "pas une mesure de la fraude" in html
    for item in json.loads(anomalous_delivery[1].read_text())["anomalies"]:
        assert item.get("nir", "\x00") not in html and item.get("provider", "\x00") not in html
    assert browser(world, "researcher2")[0].get(base).status_code in (403, 404)  # not a member
    assert browser(world, "citizen1")[0].get(base).status_code in (403, 404)
    assert lead.post(f"{base}/analyse", data={"csrf": "forged"}).status_code in (400, 403)
