"""Citizens: enrolment against the vault, who used my data (with delayed disclosure), opt-out, the register."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hygie.audit import AuditEvent
from hygie.governance.models import Account, Project
from hygie.governance.views import open_view, projects_including, rekey
from tests.portal.world import PASSWORD, World, people, project_request


def hub_pseudonym(world: World, name: str) -> str:
    with world.hub.session() as session:
        account = session.get(Account, world.ids[name])
        assert account is not None and account.person_index is not None
        return world.hub.vault(session).pseudonyms_of([account.person_index])[account.person_index]


def test_leaked_details_open_no_account_a_letter_by_post_does(world: World) -> None:
    """The attack of issue 14: NIR, family name and birth date from a leak. Every request gets the same answer;
    none opens an account; the activation code printed on the letter to the vault address does, once."""
    from hygie.governance import letters
    from hygie.governance.letters import CitizenLetter

    third = people(world.delivery)[2]
    body = {"nir": third["BEN_NIR"], "last_name": third["NOM"], "birth_date": third["DATE_NAISSANCE"]}
    answers = set()
    for wrong in ({"last_name": "NOBODY"}, {"nir": "1" * 15}, {"last_name": f"  {third['NOM'].lower()} "}):
        r = world.client.post("/citizens/enrol", json=body | wrong)
        assert r.status_code == 200, r.text
        answers.add(r.json()["detail"])
    assert len(answers) == 1  # says nothing about which detail matched
    # The old request (with a username and password) opens nothing either: it is refused as a malformed body.
    old = world.client.post("/citizens/enrol", json=body | {"username": "thief", "password": PASSWORD})
    assert old.status_code == 422
    with world.hub.session() as session:
        assert session.scalar(select(Account.id).where(Account.username == "thief")) is None
        [letter] = session.scalars(select(CitizenLetter).where(CitizenLetter.purpose == "activation")).all()
        code = letters.CODE.findall(letters.open_letter(world.hub.custody, letter).decode("latin-1"))[0]
    activate = {"code": code, "nir": third["BEN_NIR"], "username": "citizen3", "password": PASSWORD}
    refused = world.client.post("/citizens/activate", json=activate | {"code": "ABCD-EFGH-JKMN-PQRS"})
    assert refused.status_code == 403 and refused.json()["detail"] == letters.CODE_REFUSAL
    r = world.client.post("/citizens/activate", json=activate)
    assert r.status_code == 200, r.text
    assert world.client.post("/citizens/activate", json=activate | {"username": "again"}).status_code == 403
    token = world.client.post("/auth/login", json={"username": "citizen3", "password": PASSWORD}).json()["token"]
    mine = world.client.get("/me/reimbursements", headers={"Authorization": f"Bearer {token}"})
    assert mine.status_code == 200
    with world.hub.session() as session:
        recorded = " ".join(str(e.as_dict()) for e in session.scalars(select(AuditEvent)))
    assert third["BEN_NIR"] not in recorded and third["NOM"] not in recorded and code not in recorded


def test_who_used_my_data_and_opt_out(world: World) -> None:
    pid = world.active_project()
    uses = world.call("citizen1", "GET", "/me/data-uses").json()
    assert uses["total"] == 1 and uses["uses"][0]["project_id"] == pid
    assert uses["uses"][0]["purpose"] == "research" and uses["uses"][0]["organisation"] == "Université de Lyon"
    # Other people's data uses are their own business.
    assert world.call("researcher1", "GET", "/me/data-uses").status_code == 403

    assert world.call("citizen1", "POST", "/me/opt-out").json()["objecting"] is True
    assert world.call("researcher1", "POST", f"/projects/{pid}/refresh").status_code == 200
    second = world.active_project(requester="researcher2")
    me = hub_pseudonym(world, "citizen1")
    # The refreshed view and the new one both leave the objector out (the first generation of `pid`, built
    # before the objection, stays on the record); citizen2, who did not object, is in both.
    with world.hub.session() as session:
        assert projects_including(world.hub, session, me) == [pid]
        assert projects_including(world.hub, session, hub_pseudonym(world, "citizen2")) == [pid, second]
        view = open_view(world.hub, session, session.get(Project, pid))
        rekeyed = rekey(world.hub, pid, [me, hub_pseudonym(world, "citizen2")])
        present = view.sql("SELECT DISTINCT BEN_NIR_PSA FROM IR_BEN_R").fetchall()
        view.close()
    assert (rekeyed[0],) not in present and (rekeyed[1],) in present
    assert world.call("citizen1", "DELETE", "/me/opt-out").json()["objecting"] is False
    assert world.call("researcher2", "POST", f"/projects/{second}/refresh").status_code == 200
    with world.hub.session() as session:
        assert projects_including(world.hub, session, me) == [pid, second]


def test_a_delayed_disclosure_is_shown_as_such_never_hidden(world: World) -> None:
    pid = world.active_project()
    until = (datetime.now(UTC) + timedelta(days=90)).isoformat()
    body = {"until": until, "reason": "authorised fraud investigation, order 2026-117"}
    assert world.call("operator", "POST", f"/projects/{pid}/disclosure-delay", json=body).status_code == 403
    assert world.call("dpo", "POST", f"/projects/{pid}/disclosure-delay", json=body).status_code == 200
    [use] = world.call("citizen1", "GET", "/me/data-uses").json()["uses"]
    assert use["project_id"] is None and use["title"] is None and use["delayed_until"] is not None


def test_the_register_is_public_and_lists_reviewed_projects_only(world: World) -> None:
    active = world.active_project()
    world.call("researcher1", "POST", "/projects", json=project_request())
    r = world.client.get("/register")
    assert r.status_code == 200
    listed = r.json()["projects"]
    assert [p["id"] for p in listed] == [active]  # the draft is not public
    assert listed[0]["view_builds"] == 1 and listed[0]["status"] == "active"
    page = world.client.get("/registre")
    assert page.status_code == 200 and "Registre public des projets" in page.text
    assert "Statin use after 60" in page.text


def test_the_register_and_data_uses_show_jobs_and_releases(world: World) -> None:
    pid = world.active_project()
    r = world.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json={"group_by": ["sex"]})
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    for _ in range(200):  # runs are asynchronous: wait for this one to finish
        status = world.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}").json()["status"]
        if status not in ("queued", "running"):
            break
        time.sleep(0.05)
    register = world.client.get("/register").json()
    [job] = register["jobs"]
    assert job["project_id"] == pid and job["author"] == "researcher1 (Test)" and job["kind"] == "aggregate"
    released = [rel for rel in register["releases"] if rel["project_id"] == pid]
    assert register["releases_total"] == len(released) == 1
    uses = world.call("citizen1", "GET", "/me/data-uses").json()
    assert [rel["job_id"] for rel in uses["releases"]] == [job["id"]]
