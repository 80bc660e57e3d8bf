# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Who may do what: every role against every governance endpoint, allowed and denied.

A denied call answers 403 (401 without credentials; for a project the caller may not see, the 404 of a missing
project) and leaves a 'denied' event naming the actor; an allowed
call passes the authorisation layer (it may still fail on the object's state, e.g. 409, never on who asks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hygie.audit import AuditEvent
from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.world import World, project_request

ROLES = ["citizen1", "researcher1", "researcher2", "reviewer1", "dpo", "operator", "auditor", None]
"""researcher1 requests every project below; researcher2 is a researcher outside it; None is anonymous."""

APPROVE = {"decision": "approve", "reason": "lawful purpose, minimal scope"}
REASON = {"reason": "a reason long enough to be one"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[World], str]
    allowed: frozenset[str]
    body: Callable[[World], Any] | None = None


def draft(w: World) -> int:
    return int(w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"])


def submitted(w: World) -> int:
    pid = draft(w)
    w.call("researcher1", "POST", f"/projects/{pid}/submit")
    return pid


def active(w: World) -> int:
    return w.active_project()


def a_researcher(w: World) -> int:
    import secrets

    r = w.call("dpo", "POST", "/accounts",
               json={"username": f"r-{secrets.token_hex(4)}", "role": "researcher",
                     "email": "new.researcher@example.org"})  # fmt: skip
    return int(r.json()["account"]["id"])


def pending_release(w: World) -> int:
    sql = {"sql": "SELECT count(*) AS n FROM ER_PRS_F"}
    pid = active(w)
    job = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json=sql).json()
    for _ in range(3000):  # the run is queued: poll it, as a client does
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
        job = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}").json()
    assert job["status"] == "withheld", job  # its author never sees a release id: a checker finds it in the airlock
    return next(int(i["release_id"]) for i in w.call("reviewer3", "GET", "/airlock").json() if i["job_id"] == job["id"])


# Control of spending: researcher1 requests the control projects below; researcher2 is outside the first and the
# trained reviewer of the second (a member who did not draw its sample). reviewer2 approves the lifts (not in ROLES).
LIFT = {"reason": "an investigation of the insurer's control service, case 2026-17"}
TRAINING = "CERT-style medical review course, two days, 2026"


def control(w: World) -> int:
    """An active control project of researcher1's (researcher2 outside it)."""
    from tests.control.rate_world import control_project

    if "control_project" not in w.__dict__:
        w.__dict__["control_project"] = control_project(w)
    pid: int = w.__dict__["control_project"]
    return pid


def a_lead(w: World) -> int:
    """A new lead of the control project (stored as a run stores it: the rules need more data than this world's)."""
    from datetime import UTC, datetime

    from hygie.control.leads import ControlLead, ControlRun

    pid = control(w)
    with w.hub.session() as session:
        run = ControlRun(
            project_id=pid,
            view_generation=1,
            run_by=w.ids["researcher1"],
            run_at=datetime.now(UTC),
            rules=["volume"],
            thresholds={},
            counts={"volume": 1},
        )
        session.add(run)
        session.flush()
        lead = ControlLead(
            run_id=run.id,
            project_id=pid,
            rule="volume",
            subject_kind="beneficiary",
            subject="P" * 20,
            provider=None,
            score=1.0,
            evidence={"claims": [1], "claims_total": 1, "numbers": {"acts": 40}},
        )
        session.add(lead)
        session.commit()
        return lead.id


def requested_lift(w: World) -> int:
    from hygie.control import lifting
    from tests.control.rate_world import actor

    return lifting.request(w.hub, actor(w, "researcher1"), a_lead(w), LIFT["reason"]).id


def approved_lift(w: World) -> int:
    from hygie.control import lifting
    from tests.control.rate_world import actor

    lift = requested_lift(w)
    lifting.decide(w.hub, actor(w, "reviewer2"), lift, True, LIFT["reason"])
    return lift


def reviewed(w: World) -> tuple[int, int]:
    """A control project whose requester, researcher1, drew a sample that researcher2 is trained to review."""
    from hygie.control.review import designate
    from hygie.control.sample import draw
    from tests.control.rate_world import SMALL_DESIGN, actor, control_project

    if "control_sample" not in w.__dict__:
        pid = control_project(w)
        added = w.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": w.ids["researcher2"]})
        assert added.status_code == 200, added.text
        designate(w.hub, actor(w, "researcher1"), pid, w.ids["researcher2"], TRAINING)
        settings = w.hub.settings
        before = {name: getattr(settings, name) for name in SMALL_DESIGN}
        try:
            for name, value in SMALL_DESIGN.items():
                setattr(settings, name, value)
            drawn = draw(w.hub, actor(w, "researcher1"), pid, seed=7)
        finally:
            for name, value in before.items():
                setattr(settings, name, value)
        w.__dict__["control_sample"] = (pid, drawn.id)
    found: tuple[int, int] = w.__dict__["control_sample"]
    return found


def sampled(w: World) -> str:
    """The address of a claim of the sample not yet decided (each role's call gets its own)."""
    from sqlalchemy import select

    from hygie.control.sample import SampledClaim

    pid, sid = reviewed(w)
    taken = w.__dict__.setdefault("claims_taken", set())
    with w.hub.session() as session:
        keys = session.scalars(
            select(SampledClaim.claim_key).where(SampledClaim.sample_id == sid, SampledClaim.decision.is_(None))
        )
        key = next(k for k in keys if k not in taken)
    taken.add(key)
    return f"/projects/{pid}/control/samples/{sid}/claims/{key}"


EVERYONE = frozenset(r for r in ROLES if r)
CASES = [
    Case("whoami", "GET", lambda w: "/me", EVERYONE),
    Case("create a researcher account", "POST", lambda w: "/accounts", frozenset({"dpo", "operator"}),
         lambda w: {"username": f"new-{len(w.tokens)}-{id(w)}", "role": "researcher",
                    "email": "new.researcher@example.org"}),
    Case("create a reviewer account", "POST", lambda w: "/accounts", frozenset({"dpo"}),
         lambda w: {"username": f"rev-{len(w.tokens)}-{id(w)}", "role": "reviewer",
                    "email": "new.reviewer@example.org"}),
    Case("list staff accounts", "GET", lambda w: "/accounts", frozenset({"dpo", "operator", "auditor"})),
    Case("disable a researcher", "POST", lambda w: f"/accounts/{a_researcher(w)}/disable",
         frozenset({"dpo", "operator"})),
    Case("request a project", "POST", lambda w: "/projects", frozenset({"researcher1", "researcher2"}),
         lambda w: project_request()),
    Case("list projects", "GET", lambda w: "/projects",
         frozenset({"researcher1", "researcher2", "reviewer1", "dpo", "operator", "auditor"})),
    Case("read a project request", "GET", lambda w: f"/projects/{draft(w)}",
         frozenset({"researcher1", "reviewer1", "dpo", "operator", "auditor"})),
    Case("change a project", "PATCH", lambda w: f"/projects/{draft(w)}", frozenset({"researcher1"}),
         lambda w: {"title": "A better title"}),
    Case("submit a project", "POST", lambda w: f"/projects/{draft(w)}/submit", frozenset({"researcher1"})),
    Case("approve a project", "POST", lambda w: f"/projects/{submitted(w)}/decisions",
         frozenset({"reviewer1"}), lambda w: APPROVE),  # the DPO oversees, not reviews (dpo_may_review off)
    Case("add a member", "POST", lambda w: f"/projects/{draft(w)}/members", frozenset({"researcher1"}),
         lambda w: {"account_id": w.ids["researcher2"]}),
    Case("operator joins a project", "POST", lambda w: f"/projects/{draft(w)}/members", frozenset(),
         lambda w: {"account_id": w.ids["operator"]}),
    Case("suspend a project", "POST", lambda w: f"/projects/{active(w)}/suspend", frozenset({"operator", "dpo"}),
         lambda w: REASON),
    Case("close a project", "POST", lambda w: f"/projects/{draft(w)}/close", frozenset({"researcher1", "dpo"}),
         lambda w: REASON),
    Case("read a project's view", "GET", lambda w: f"/projects/{active(w)}/view", frozenset({"researcher1"})),
    Case("refresh a project's view", "POST", lambda w: f"/projects/{active(w)}/refresh",
         frozenset({"researcher1"})),
    Case("download a draft's dummy data", "GET", lambda w: f"/projects/{draft(w)}/dummy-data",
         frozenset({"researcher1"})),
    Case("mint a data token", "POST", lambda w: "/me/tokens", frozenset({"researcher1"}),
         lambda w: {"name": "t", "scopes": ["data"], "days": 1, "project_id": active(w)}),
    Case("object to data use", "POST", lambda w: "/me/opt-out", frozenset({"citizen1"})),
    Case("read my reimbursements", "GET", lambda w: "/me/reimbursements", frozenset({"citizen1"})),
    Case("search the audit record", "GET", lambda w: "/audit/events?action=project.*", frozenset({"dpo", "auditor"})),
    Case("submit an aggregate", "POST", lambda w: f"/projects/{active(w)}/analyses/aggregate",
         frozenset({"researcher1"}), lambda w: {"group_by": ["sex"]}),
    Case("submit SQL", "POST", lambda w: f"/projects/{active(w)}/analyses/sql", frozenset({"researcher1"}),
         lambda w: {"sql": "SELECT count(*) AS n FROM ER_PRS_F"}),
    Case("list analyses", "GET", lambda w: f"/projects/{active(w)}/analyses", frozenset({"researcher1"})),
    # The DPO oversees and does not check outputs either (dpo_may_review off).
    Case("read the airlock", "GET", lambda w: "/airlock", frozenset({"reviewer1"})),
    Case("check an output", "POST", lambda w: f"/airlock/{pending_release(w)}/decisions",
         frozenset({"reviewer1"}), lambda w: APPROVE),
    Case("list breach incidents", "GET", lambda w: "/breach/incidents", frozenset({"dpo"})),
    Case("send breach notices", "POST", lambda w: "/breach/outbox/send", frozenset({"dpo"})),
    Case("read one's breach notices", "GET", lambda w: "/me/breach-notices", frozenset({"citizen1"})),
    # Control of spending: released numbers for the project's researchers and its overseers, never the operator.
    Case("list control runs", "GET", lambda w: f"/projects/{active(w)}/control/runs",
         frozenset({"researcher1", "reviewer1", "dpo", "auditor"})),
    Case("read improper-payment estimates", "GET", lambda w: f"/projects/{active(w)}/control/estimates",
         frozenset({"researcher1", "reviewer1", "dpo", "auditor"})),
    # The acts on a control project's view: its members who pass the data gate; lifts decided by second persons.
    Case("run control rules", "POST", lambda w: f"/projects/{control(w)}/control/runs", frozenset({"researcher1"}),
         lambda w: {"rules": ["volume"]}),
    Case("read control leads", "GET", lambda w: f"/projects/{control(w)}/control/leads", frozenset({"researcher1"})),
    Case("ask to lift a lead's pseudonym", "POST",
         lambda w: f"/projects/{control(w)}/control/leads/{a_lead(w)}/lift", frozenset({"researcher1"}),
         lambda w: LIFT),
    Case("list lifts awaiting a second person", "GET", lambda w: "/control/lifts", frozenset({"reviewer1", "dpo"})),
    Case("decide a lift", "POST", lambda w: f"/control/lifts/{requested_lift(w)}/decision",
         frozenset({"reviewer1", "dpo"}), lambda w: {"decision": "refuse", **LIFT}),
    Case("see a lifted identity", "POST",
         lambda w: f"/projects/{control(w)}/control/lifts/{approved_lift(w)}/identity", frozenset({"researcher1"})),
    Case("list control samples", "GET", lambda w: f"/projects/{reviewed(w)[0]}/control/samples",
         frozenset({"researcher1", "researcher2", "reviewer1", "dpo", "auditor"})),
    Case("draw a control sample", "POST", lambda w: f"/projects/{control(w)}/control/samples",
         frozenset({"researcher1"})),
    Case("designate a claim reviewer", "POST", lambda w: f"/projects/{control(w)}/control/reviewers",
         frozenset({"researcher1"}), lambda w: {"account_id": w.ids["researcher2"], "training": TRAINING}),
    Case("read a review queue", "GET", lambda w: "/projects/{}/control/samples/{}/claims".format(*reviewed(w)),
         frozenset({"researcher2"})),
    Case("read a sampled claim", "GET", sampled, frozenset({"researcher2"})),
    Case("decide a sampled claim", "POST", lambda w: sampled(w) + "/decision", frozenset({"researcher2"}),
         lambda w: {"decision": "proper"}),
    Case("release an estimate", "POST", lambda w: "/projects/{}/control/samples/{}/estimate".format(*reviewed(w)),
         frozenset({"researcher1", "researcher2"})),
]  # fmt: skip


def denied_events(world: World, actor: str) -> int:
    with world.hub.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.actor == actor, AuditEvent.outcome == "denied")
            )
            or 0
        )


# Who may call a route is decided above the database: the matrix runs on SQLite only (every other test of this module
# runs on both), which halves the suite's longest module.
@pytest.mark.parametrize("shared_world", ["sqlite"], indirect=True)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_authorisation_matrix(shared_world: World, case: Case) -> None:
    w = shared_world
    refused: tuple[str, Any] | None = None
    for role in ROLES:
        # Each allowed role gets its own object (its call may change it); the refused roles share one, which none
        # of them may change (making one can run an analysis: once instead of six times per route).
        if role in case.allowed:
            path, body = case.path(w), case.body(w) if case.body else None
        else:
            if refused is None:
                refused = (case.path(w), case.body(w) if case.body else None)
            path, body = refused
        if role is None:
            r = w.client.request(case.method, path, json=body)
            assert r.status_code == 401, (case.name, r.text)
            continue
        actor = f"account:{w.ids[role]}"
        before = denied_events(w, actor)
        r = w.call(role, case.method, path, json=body)
        if role in case.allowed:
            assert r.status_code not in (401, 403), (case.name, role, r.text)
            assert r.status_code < 500, (case.name, role, r.text)
        else:
            # 403, or for a project the caller may not see the very 404 of a missing one (no project N).
            assert r.status_code in (403, 404), (case.name, role, r.status_code, r.text)
            if r.status_code == 404:
                assert r.json()["detail"] == f"no project {path.split('/')[2]}", (case.name, role, r.text)
            assert denied_events(w, actor) == before + 1, (case.name, role, "refusal not recorded")


def test_operator_cannot_reach_data_approve_join_or_grant_itself(shared_world: World) -> None:
    """The seed's fear, spelled out: the people who run the platform cannot read it or grant themselves access."""
    w = shared_world
    pid = w.active_project()
    op = "operator"
    assert w.call(op, "GET", f"/projects/{pid}/view").status_code == 403
    assert w.call(op, "POST", f"/projects/{submitted(w)}/decisions", json=APPROVE).status_code == 403
    assert w.call(op, "POST", "/me/tokens", json={"name": "x", "scopes": ["data"], "days": 1,
                                                   "project_id": pid}).status_code == 403  # fmt: skip
    reviewer = {"username": "op-reviewer", "role": "reviewer", "email": "op.reviewer@example.org"}
    assert w.call(op, "POST", "/accounts", json=reviewer).status_code == 403
    assert w.call(op, "POST", "/projects", json=project_request()).status_code == 403
    assert w.call(op, "POST", f"/accounts/{w.ids[op]}/enable").status_code == 403


def test_account_ids_cannot_be_enumerated(shared_world: World) -> None:
    """A role that may never act on accounts gets the same refusal for an existing account and a missing one; an
    operator (who lists staff accounts) cannot find citizen accounts out either."""
    w = shared_world
    existing, missing = w.ids["reviewer2"], 987_654
    for suffix in ("confirm", "enrolment-mail", "disable", "enable"):
        body = {"email": "someone@example.org"} if suffix == "confirm" else None
        for who, target, status in [
            ("researcher1", existing, 403),
            ("reviewer1", existing, 403),
            ("citizen1", existing, 403),
            ("operator", w.ids["citizen1"], 404),
        ]:
            answers = [blanked(w.call(who, "POST", f"/accounts/{i}/{suffix}", json=body), i) for i in (target, missing)]
            assert answers[0] == answers[1] and answers[0][0] == status, (suffix, who, answers)


def test_a_researcher_cannot_reach_another_project_even_with_a_token(shared_world: World) -> None:
    w = shared_world
    mine = w.active_project(requester="researcher2")
    theirs = w.active_project(requester="researcher1")
    r = w.call("researcher2", "GET", f"/projects/{theirs}/view")
    assert (r.status_code, r.json()) == (404, {"detail": f"no project {theirs}"})  # as if it did not exist
    r = w.call("researcher2", "POST", "/me/tokens", json={"name": "x", "scopes": ["data"], "days": 1,
                                                          "project_id": mine})  # fmt: skip
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    assert w.client.get(f"/projects/{mine}/view", headers=token).status_code == 200
    assert w.client.get(f"/projects/{theirs}/view", headers=token).status_code == 403


# A non-member cannot tell a foreign project from a missing one, on any project-scoped route (walked from the
# OpenAPI schema) or page.
HIDDEN_BODIES: dict[str, Any] = {
    "PATCH /projects/{project_id}": {"title": "A better title"},
    "POST /projects/{project_id}/decisions": {"decision": "approve", "reason": "lawful purpose, minimal scope"},
    "POST /projects/{project_id}/annual-review": {"decision": "approve", "reason": "lawful purpose, minimal scope"},
    "POST /projects/{project_id}/members": {"account_id": 1},
    "POST /projects/{project_id}/suspend": REASON,
    "POST /projects/{project_id}/resume": REASON,
    "POST /projects/{project_id}/close": REASON,
    "POST /projects/{project_id}/disclosure-delay": {"until": "2099-01-01T00:00:00Z", "reason": "x" * 20},
    "POST /projects/{project_id}/analyses/aggregate": {"group_by": ["sex"]},
    "POST /projects/{project_id}/analyses/sql": {"sql": "SELECT count(*) AS n FROM ER_PRS_F"},
    "POST /projects/{project_id}/dummy-data/aggregate": {"group_by": ["sex"]},
    "POST /projects/{project_id}/dummy-data/sql": {"sql": "SELECT count(*) AS n FROM ER_PRS_F"},
    "POST /projects/{project_id}/control/runs": {"rules": ["volume"]},
    "POST /projects/{project_id}/control/leads/{lead_id}/lift": LIFT,
    "POST /projects/{project_id}/control/reviewers": {"account_id": 1, "training": TRAINING},
    "POST /projects/{project_id}/control/samples/{sample_id}/claims/{claim_key}/decision": {"decision": "proper"},
}
OTHER_IDS = ("job_id", "lead_id", "lift_id", "sample_id", "claim_key")
"""Path parameters besides the project, set to 1 (an object of another project, or none)."""


def blanked(r: Any, project_id: int) -> tuple[int, str]:
    """The answer with the asked id blanked: what must not differ between a foreign and a missing project."""
    return r.status_code, r.text.replace(str(project_id), "N")


def test_a_foreign_project_answers_exactly_as_a_missing_one(shared_world: World) -> None:
    w = shared_world
    foreign = w.active_project(requester="researcher1")
    missing = foreign + 10_000
    schema = w.client.get("/openapi.json").json()["paths"]
    walked = 0
    for path, item in schema.items():
        if "{project_id}" not in path:
            continue
        for method in item:
            key = f"{method.upper()} {path}"
            body = HIDDEN_BODIES.get(key)
            for who in ("researcher2", "citizen1"):
                answers = []
                for pid in (foreign, missing):
                    url = path.replace("{project_id}", str(pid))
                    for name in OTHER_IDS:
                        url = url.replace("{" + name + "}", "1")
                    answers.append(blanked(w.call(who, method.upper(), url, json=body), pid))
                assert answers[0] == answers[1], (key, who, answers)
                assert answers[0][0] in (403, 404, 422), (key, who, answers)
            walked += 1
    assert walked >= 18
    # The pages too: the researcher's project pages and the dummy data download.
    browser = TestClient(w.client.app, base_url="https://testserver", follow_redirects=False)
    browser.cookies.set(SESSION_COOKIE, w.login("researcher2"))
    for page in ("/recherche/projets/{}", "/recherche/projets/{}/analyses", "/recherche/projets/{}/analyses/1",
                 "/recherche/projets/{}/donnees-fictives"):  # fmt: skip
        pages = [browser.get(page.format(pid)) for pid in (foreign, missing)]
        assert pages[0].status_code == pages[1].status_code == 404, (page, pages[0].text[:300])
    # The owner still sees it; the oversight roles see the request (never its data).
    assert w.call("researcher1", "GET", f"/projects/{foreign}").status_code == 200
    assert w.call("dpo", "GET", f"/projects/{foreign}").status_code == 200
    # On the record the foreign attempt is a denial (the DPO's scope alert counts it), the missing one a failure.
    with w.hub.session() as session:
        reads = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "project.read", AuditEvent.actor == f"account:{w.ids['researcher2']}"
            )
        )
        outcomes = {(e.project_id, e.outcome) for e in reads}  # fmt: skip
    assert {(foreign, "denied"), (missing, "failed")} <= outcomes
