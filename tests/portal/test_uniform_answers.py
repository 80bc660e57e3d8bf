"""Uniform answers: a non-member cannot tell a foreign project from a missing one, on any project-scoped route of the
API (walked from the OpenAPI schema) or of the pages; refused input (422, 413) is recorded, a flood only so much."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from hygie.audit import AuditEvent
from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.world import World

REASON = {"reason": "a reason long enough to be one"}
BODIES: dict[str, Any] = {
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
}


def shape(r: Any, project_id: int) -> tuple[int, str]:
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
            body = BODIES.get(key)
            for who in ("researcher2", "citizen1"):
                answers = []
                for pid in (foreign, missing):
                    url = path.replace("{project_id}", str(pid)).replace("{job_id}", "1")
                    answers.append(shape(w.call(who, method.upper(), url, json=body), pid))
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


def refused(w: World) -> list[AuditEvent]:
    with w.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "request.refused")))


def test_refused_input_is_recorded_without_its_values_and_a_flood_only_so_much(shared_world: World) -> None:
    w = shared_world
    nir = "1850575123456"
    client = TestClient(w.client.app, client=("192.0.2.44", 5000))
    before = len(refused(w))
    r = client.post("/auth/login", json={"username": nir, "password": 12345})  # a number is not a password
    assert r.status_code == 422 and nir not in r.text
    assert {"loc", "msg", "type"} == set(r.json()["detail"][0])
    big = "x" * (w.hub.settings.request_body_max_kib * 1024 + 1)
    r = client.post("/auth/login", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    events = refused(w)[before:]
    assert [(e.detail["route"], e.detail["status"]) for e in events] == [("/auth/login", 422), ("/auth/login", 413)]
    assert events[0].detail["reason"].startswith("invalid ") and nir not in str(events[0].as_dict())
    # A page form sent back with its errors is a refusal too (the sign-in page without a password).
    client.cookies.set("hygie_csrf", "c" * 64)
    assert client.post("/connexion", data={"csrf": "c" * 64, "username": nir}).status_code == 422
    last = refused(w)[-1]
    assert (last.detail["route"], last.detail["status"]) == ("/connexion", 422) and nir not in str(last.as_dict())
    # A flood from one address leaves at most refused_records_per_minute events in the minute; answers stay clear.
    limit = w.hub.settings.refused_records_per_minute
    flood = TestClient(w.client.app, client=("192.0.2.45", 5000))
    seen = len(refused(w))
    for _ in range(limit + 20):
        r = flood.get("/projects/not-a-number", headers=w.headers("researcher1"))
        assert r.status_code == 422
    from_flood = [e for e in refused(w)[seen:] if e.detail["route"] == "/projects/{project_id}"]
    assert len(from_flood) == limit
    assert re.fullmatch(r"invalid [a-z_, ]+", from_flood[0].detail["reason"])
