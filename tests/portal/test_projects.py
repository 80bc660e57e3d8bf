# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The life of a project through the HTTP API: policy refusals, two distinct reviewers, activation with a
view, change of scope, suspension, expiry and closing; every transition on the record."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from hygie.audit import AuditEvent
from hygie.governance.models import Project
from hygie.governance.views import project_pseudonym_key, project_view_key
from tests.portal.world import SCOPE, World, project_request

APPROVE = {"decision": "approve", "reason": "lawful purpose, minimal scope"}


def actions(world: World, project_id: int) -> list[tuple[str, str]]:
    with world.hub.session() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.project_id == project_id).order_by(AuditEvent.id)
        ).all()
    return [(e.action, e.outcome) for e in rows]


@pytest.mark.parametrize(
    ("overrides", "status", "words"),
    [
        ({"purpose": "product_promotion"}, 403, "forbidden by law"),
        ({"purpose": "insurance_exclusion"}, 403, "forbidden by law"),
        ({"purpose": "marketing"}, 422, "not a lawful purpose"),
        ({"threshold": 5}, 422, "below the platform minimum of 11"),
        (
            {"scope": {**SCOPE, "potential_identifiers": ["care_dates", "birth_month"]}},
            422,
            "at most 1 potential identifier",
        ),
        (
            {"scope": {**SCOPE, "tables": {"IR_BEN_R": ["BEN_NAI_MOI"]}}},
            422,
            "IR_BEN_R.BEN_NAI_MOI is the potential identifier 'birth_month'",
        ),
        ({"scope": {**SCOPE, "tables": {"ER_PRS_F": ["FLX_EMT_NUM"]}}}, 422, "DCIR technical key"),
        ({"scope": {**SCOPE, "tables": {"ER_XXX_F": ["A"]}}}, 422, "unknown table"),
    ],
)
def test_policy_refusals_say_why_and_are_recorded(
    shared_world: World, overrides: dict[str, object], status: int, words: str
) -> None:
    r = shared_world.call("researcher1", "POST", "/projects", json=project_request(**overrides))
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    with shared_world.hub.session() as session:
        last = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (last.action, last.outcome) == ("project.create", "denied" if status == 403 else "failed")


def test_one_identifier_is_allowed_and_dates_are_coarse_by_default(shared_world: World) -> None:
    scope = {**SCOPE, "potential_identifiers": ["care_dates"]}
    r = shared_world.call("researcher1", "POST", "/projects", json=project_request(scope=scope))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "draft"


def test_two_distinct_independent_reviewers_activate_a_project(world: World) -> None:
    r = world.call("researcher1", "POST", "/projects", json=project_request())
    pid = r.json()["id"]
    # Not reviewable before submission; then the requester, a member, an operator and a researcher are refused.
    assert world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE).status_code == 409
    assert world.call("researcher1", "POST", f"/projects/{pid}/members",
                      json={"account_id": world.ids["researcher2"]}).status_code == 200  # fmt: skip
    assert world.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    for who in ("researcher1", "researcher2", "operator"):
        assert world.call(who, "POST", f"/projects/{pid}/decisions", json=APPROVE).status_code == 403, who
    # A reason is required; one reviewer twice is still one approval.
    short = {"decision": "approve", "reason": "ok"}
    assert world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=short).status_code == 422
    assert world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE).json()["status"] == "submitted"
    assert world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE).status_code == 409
    assert world.call("researcher1", "GET", f"/projects/{pid}").json()["status"] == "submitted"
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 403
    # The DPO oversees and does not review (setting dpo_may_review, off by default).
    r = world.call("dpo", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.status_code == 403 and "oversees" in r.json()["detail"]
    r = world.call("reviewer2", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert r.json()["expires_at"] is not None
    view = world.call("researcher2", "GET", f"/projects/{pid}/view").json()
    assert set(view["tables"]) == {"IR_BEN_R", "ER_PRS_F"}
    assert view["people"] > 0 and view["people"] % 5 == 0  # rounded like any released count
    assert ("project.activate", "ok") in actions(world, pid)
    recorded = actions(world, pid)
    assert recorded.count(("project.approve", "ok")) == 2
    assert ("project.approve", "denied") in recorded and ("project.approve", "failed") in recorded
    assert recorded.count(("project.approve", "denied")) == 4  # two researchers, the operator, the DPO


def test_a_rejection_sends_the_project_back_with_its_reason(world: World) -> None:
    pid = world.call("researcher1", "POST", "/projects", json=project_request()).json()["id"]
    world.call("researcher1", "POST", f"/projects/{pid}/submit")
    reason = "the population is wider than the question needs"
    r = world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json={"decision": "reject", "reason": reason})
    assert r.json()["status"] == "draft" and reason in r.json()["status_reason"]
    # Resubmitted unchanged, the project starts a new round of review on a new version: the rejection is voided
    # (kept on record) and the same reviewer decides again.
    r = world.call("researcher1", "POST", f"/projects/{pid}/submit")
    assert r.json()["scope_version"] == 2
    assert [(d["scope_version"], d["voided_at"] is not None) for d in r.json()["decisions"]] == [(1, True)]
    r = world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    assert world.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE).status_code == 409


def test_a_change_of_scope_goes_back_to_review_and_keeps_pseudonyms(world: World) -> None:
    pid = world.active_project()
    wider = {**SCOPE, "tables": {**SCOPE["tables"], "IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN"]}}
    r = world.call("researcher1", "PATCH", f"/projects/{pid}", json={"scope": wider})
    assert r.status_code == 200 and r.json()["status"] == "submitted" and r.json()["scope_version"] == 2
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 403
    info = world.hub.custody.info(project_pseudonym_key(pid))
    assert info.current_version is not None  # kept, so re-approval gives the same pseudonyms
    for reviewer in ("reviewer1", "reviewer2"):  # the same reviewers may decide on the new version
        r = world.call(reviewer, "POST", f"/projects/{pid}/decisions", json=APPROVE)
    assert r.json()["status"] == "active"
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").json()["tables"]["IR_BEN_R"]["columns"]


def test_operator_suspends_only_the_dpo_resumes(world: World) -> None:
    pid = world.active_project()
    reason = {"reason": "unusual query volume under investigation"}
    assert world.call("operator", "POST", f"/projects/{pid}/suspend", json=reason).json()["status"] == "suspended"
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 403
    assert world.call("operator", "POST", f"/projects/{pid}/resume", json=reason).status_code == 403
    assert world.call("reviewer1", "POST", f"/projects/{pid}/suspend", json=reason).status_code == 403
    assert world.call("dpo", "POST", f"/projects/{pid}/resume", json=reason).json()["status"] == "active"
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 200


def test_expiry_denies_access_at_once_and_the_sweep_destroys_key_and_view(world: World) -> None:
    pid = world.active_project()
    with world.hub.session() as session:
        session.execute(
            update(Project).where(Project.id == pid).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()
    r = world.call("researcher1", "GET", f"/projects/{pid}/view")
    assert r.status_code == 403 and "expired" in r.json()["detail"]
    from hygie.governance.accounts import CONSOLE
    from hygie.governance.acts import act
    from hygie.governance.projects import Projects

    with act(world.hub, CONSOLE, "project.sweep") as session:
        assert Projects(world.hub, session).expire_due(CONSOLE) == [pid]
    assert world.call("researcher1", "GET", f"/projects/{pid}").json()["status"] == "expired"
    assert world.hub.custody.info(project_pseudonym_key(pid)).current_version is None
    assert world.hub.custody.info(project_view_key(pid)).current_version is None
    assert ("project.expire", "ok") in actions(world, pid)


def test_annual_review_overdue_stops_access_until_recorded(world: World) -> None:
    pid = world.active_project(duration_days=730)
    project = world.call("researcher1", "GET", f"/projects/{pid}").json()
    assert project["review_due_at"] is not None
    with world.hub.session() as session:
        session.execute(
            update(Project).where(Project.id == pid).values(review_due_at=datetime.now(UTC) - timedelta(days=1))
        )
        session.commit()
    r = world.call("researcher1", "GET", f"/projects/{pid}/view")
    assert r.status_code == 403 and "annual review" in r.json()["detail"]
    assert world.call("researcher1", "POST", f"/projects/{pid}/annual-review", json=APPROVE).status_code == 403
    assert world.call("reviewer3", "POST", f"/projects/{pid}/annual-review", json=APPROVE).status_code == 200
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 200


def test_closing_destroys_the_project_key(world: World) -> None:
    pid = world.active_project()
    r = world.call("researcher1", "POST", f"/projects/{pid}/close", json={"reason": "study finished, results out"})
    assert r.json()["status"] == "closed"
    assert world.hub.custody.info(project_view_key(pid)).current_version is None
    assert world.call("researcher1", "GET", f"/projects/{pid}/view").status_code == 403


def test_free_text_holding_an_identifier_is_refused_and_never_stored(shared_world: World) -> None:
    from tests.portal.world import people

    nir = people(shared_world.delivery)[7]["BEN_NIR"]
    body = project_request(justification=f"Follow up the complaint of {nir} about statins.")
    r = shared_world.call("researcher1", "POST", "/projects", json=body)
    assert r.status_code == 422 and "NIR" in r.json()["detail"] and nir not in r.text
    pid = shared_world.active_project()
    r = shared_world.call("operator", "POST", f"/projects/{pid}/suspend", json={"reason": f"call 06 12 34 56 78 {nir}"})
    assert r.status_code == 422
    with shared_world.hub.session() as session:
        everything = " ".join(str(e.as_dict()) for e in session.scalars(select(AuditEvent)))
        stored = " ".join(p.justification + (p.status_reason or "") for p in session.scalars(select(Project)))
    assert nir not in everything and nir[:13] not in everything and nir not in stored


def test_the_review_page_shows_the_version_judged_and_refuses_a_stale_decision(shared_world: World) -> None:
    w = shared_world
    pid = w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"]
    w.call("researcher1", "POST", f"/projects/{pid}/submit")
    assert w.call("reviewer1", "POST", f"/projects/{pid}/decisions", json=APPROVE).status_code == 200
    judged = w.call("researcher1", "GET", f"/projects/{pid}").json()["scope_hash"]
    pages = w.pages("reviewer2")
    page = pages.get(f"/relecture/projets/{pid}")
    assert "version 1</strong>" in page.text and judged[:16] in page.text and f'value="{judged}"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    # The requester changes the request while reviewer 2 reads it: reviewer 1's approval is voided, and reviewer 2's
    # approval of what they read is refused instead of counting for a version they never saw.
    assert w.call("researcher1", "PATCH", f"/projects/{pid}", json={"title": "Statins after 65"}).status_code == 200
    form = {"csrf": csrf.group(1), "decision": "approve", "motif": "lawful purpose, minimal scope", "empreinte": judged}
    r = pages.post(f"/relecture/projets/{pid}/decision", data=form)
    assert r.status_code == 409 and "La demande a changé depuis que vous" in r.text
    assert "version 2</strong>" in r.text and "1 décision(s) antérieure(s) annulée(s)" in r.text
    project = w.call("researcher1", "GET", f"/projects/{pid}").json()
    assert project["status"] == "submitted" and project["scope_hash"] != judged
    assert [(d["reviewer_id"], d["voided_at"] is not None) for d in project["decisions"]] == [
        (w.ids["reviewer1"], True)
    ]
    # The DPO reads the request but has no decision form (dpo_may_review is off).
    assert "Enregistrer ma décision" not in w.pages("dpo").get(f"/relecture/projets/{pid}").text
