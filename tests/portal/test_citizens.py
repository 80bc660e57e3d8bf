# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
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
        return world.hub.vault(session).pseudonyms_of([account.person_index], 1)[account.person_index]


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
    no_answer_tells_a_right_password_or_a_breach_flag(world)  # on the same hub (a fresh one costs seconds)


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


def no_answer_tells_a_right_password_or_a_breach_flag(world: World) -> None:
    """The review's attacks on the step-up: the new-device page was a password sign-in outside the throttle (a right
    password with any code signed an unflagged account in; a flagged one answered 401 for a wrong password, 403
    "Code refusé" for a right one); the API said "new device" only for a right password. Now every refusal reads
    the same, the page is throttled, and it opens a session only for a flagged account on a new device with its code.
    A NIR typed in fullwidth digits is just a NIR (it crashed the routes with 500)."""
    import re

    from markupsafe import escape

    from hygie.governance import limits
    from hygie.governance.accounts import REFUSED
    from hygie.portal.pages.citizen import DEVICE_REFUSED_FR
    from hygie.portal.pages.signin import REFUSED_FR
    from tests.portal.pages.test_journeys import notify_of_a_breach

    client, hub = world.client, world.hub
    notify_of_a_breach(world, "citizen1", ["social security number"])
    client.cookies.set("hygie_csrf", "c" * 64)
    client.cookies.set("hygie_device", "a-new-browser-of-someone-0001")

    def forget_throttle() -> None:
        for bucket in ("signin-source", "signin-pair"):
            limits.forget(hub, bucket)

    # The API: right password on a new device of a flagged account = wrong password (a letter goes, silently).
    answers = set()
    for name, password in (("citizen1", PASSWORD), ("citizen1", "wrong-password-1"), ("nobody", PASSWORD)):
        r = client.post("/auth/login", json={"username": name, "password": password, "device": "d" * 30})
        assert r.status_code == 401
        answers.add(r.text)
    assert answers == {f'{{"detail":"{REFUSED}"}}'}
    assert world.postal_code("citizen1", "device")  # the holder gets the code by post
    # The sign-in page: the same 401 and words; no step-up page that would say "your password was right".
    pages = []
    for password in (PASSWORD, "wrong-password-1"):
        r = client.post("/connexion", data={"csrf": "c" * 64, "username": "citizen1", "password": password})
        assert r.status_code == 401 and REFUSED_FR in r.text and "Confirmer ce nouvel appareil" not in r.text
        pages.append(re.sub(r'name="csrf" value="[^"]*"', "", r.text))
    assert pages[0] == pages[1]
    assert 'href="/citoyen/appareil"' in pages[0] and "fuite" in pages[0]  # everyone is told about the code by post

    def device(username: str, password: str, code: str) -> int:
        form = {"csrf": "c" * 64, "username": username, "password": password, "code": code}
        r = client.post("/citoyen/appareil", data=form, follow_redirects=False)
        if r.status_code == 401:
            assert str(escape(DEVICE_REFUSED_FR)) in r.text and "Code refusé" not in r.text
        return r.status_code

    forget_throttle()
    code = world.postal_code("citizen1", "device")
    junk = "ABCD-EFGH-JKMN-PQRS"
    # Unflagged account, right password, any code: refused (it used to open a session). Flagged: a wrong password
    # and a right password with a wrong code read the same.
    assert [device("citizen2", PASSWORD, junk), device("citizen1", "wrong-password-1", code),
            device("citizen1", PASSWORD, junk)] == [401, 401, 401]  # fmt: skip
    # Wrong codes typed under the victim's username without the password (from many sources: the throttle is
    # forgotten each time) spend nothing of theirs: the budget of codes is the account's, counted past the password.
    for _ in range(hub.settings.citizen_code_attempts_per_person + 1):
        forget_throttle()
        assert device("citizen1", "wrong-password-1", junk) == 401
    forget_throttle()
    # The page is behind the sign-in throttle: a source failing on and on waits.
    statuses = [device("citizen1", "wrong-password-1", junk) for _ in range(hub.settings.login_free_failures + 1)]
    assert statuses[-1] == 429
    forget_throttle()
    assert device("citizen1", PASSWORD, code) == 303  # the holder, with the letter, from this browser
    assert "hygie_session" in client.cookies
    client.cookies.delete("hygie_session")

    # Fullwidth digits: no 500, the same answers as for the ASCII NIR.
    person = people(world.delivery)[5]
    wide = "".join(chr(ord(c) + 0xFEE0) for c in person["BEN_NIR"])
    enrol = {"nir": wide, "last_name": person["NOM"], "birth_date": person["DATE_NAISSANCE"]}
    assert client.post("/citizens/enrol", json=enrol).status_code == 200
    activate = {"code": junk, "nir": wide, "username": "wide", "password": PASSWORD}
    assert client.post("/citizens/activate", json=activate).status_code == 403
    form = {"csrf": "c" * 64, "nir": wide, "nom": person["NOM"], "naissance": person["DATE_NAISSANCE"]}
    assert client.post("/citoyen/inscription", data=form).status_code == 200

    # Wrong birth dates with a victim's NIR spend its letter limit: past it the victim's request and a wrong one get
    # the same 429, and the victim's letter is queued all the same.
    victim = people(world.delivery)[6]
    ask = {"nir": victim["BEN_NIR"], "last_name": victim["NOM"], "birth_date": "1900-01-01"}
    for _ in range(hub.settings.citizen_letter_requests_per_nir):
        assert client.post("/citizens/enrol", json=ask).status_code == 200
    late = [client.post("/citizens/enrol", json=ask | b) for b in ({"birth_date": victim["DATE_NAISSANCE"]}, {})]
    assert [r.status_code for r in late] == [429, 429] and late[0].json() == late[1].json()
    from hygie.governance.letters import CitizenLetter

    with hub.session() as session:
        victim_index = hub.pseudonymiser.index(victim["BEN_NIR"])
        assert session.scalars(select(CitizenLetter).where(CitizenLetter.person_index == victim_index)).all()
