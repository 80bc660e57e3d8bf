# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The DPO alone reads nobody's identity: a leak imported over HTTP is matched only once a second person confirms
it, review compares a row with its candidate by agreement (never a vault value), and seeing a candidate's identity
is asked with a reason, approved by a second person, shown once to the asker, recorded and alerted.

The attack of issue 12: the DPO imports a one-row "leak" holding a chosen NIR and a made-up name, then opens the
row in review to read the vault's name, first name, phone and address of that person."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from hygie.audit import AuditEvent
from hygie.audit.alerts import evaluate
from hygie.breach.models import BreachIncident, BreachNotice, BreachRow
from hygie.breach.service import Incidents
from hygie.breach.synthetic import HEADERS
from hygie.governance.accounts import ROLE_SCOPES, Actor
from hygie.governance.errors import Denied
from hygie.governance.models import Account
from hygie.governance.policy import Role
from hygie.identity.vault import Identity
from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.world import World, people

REASON = "Avis par courrier : la personne n'a pas d'espace en ligne (RGPD art. 34)"


@dataclass
class Probe:
    incident_id: int
    identity: Identity
    secrets: list[str]
    """The vault's values of the targeted person that review must never show."""


@pytest.fixture(scope="module")
def probe(shared_world: World) -> Probe:
    person = people(shared_world.delivery)[5]
    row = [person["BEN_NIR"], "INVENTÉ", "Personne", person["DATE_NAISSANCE"]]
    blob = ("\n".join(",".join(r) for r in [HEADERS[:4], row]) + "\n").encode()
    r = shared_world.call("dpo", "POST", "/breach/incidents", files={"file": ("leak.csv", blob)},
                          data={"incident": "probe"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"id": r.json()["id"], "incident": "probe", "status": "staged", "rows": 1}
    with shared_world.hub.session() as session:
        identity = shared_world.hub.vault(session).find(person["BEN_NIR"])
    assert identity is not None
    secrets = [identity.last_name, identity.first_name]
    secrets += [v for v in (identity.phone, identity.address, identity.email) if v]
    assert identity.phone and identity.address  # the attack reads these: the test population has them
    return Probe(r.json()["id"], identity, secrets)


def _page(w: World, name: str, path: str) -> str:
    r = w.client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={w.tokens.get(name) or w.login(name)}"})
    assert r.status_code == 200, (path, r.status_code)
    return r.text


def _post_form(w: World, name: str, path: str, form: dict[str, str]) -> int:
    token = w.tokens.get(name) or w.login(name)
    csrf = hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()
    r = w.client.post(path, data={"csrf": csrf, **form}, headers={"Cookie": f"{SESSION_COOKIE}={token}"},
                      follow_redirects=False)  # fmt: skip
    return r.status_code


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text)]


def test_an_unconfirmed_import_matches_nothing_and_notifies_nobody(shared_world: World, probe: Probe) -> None:
    w, path = shared_world, f"/breach/incidents/{probe.incident_id}"
    incident = w.call("dpo", "GET", path).json()
    assert incident["status"] == "staged" and incident["counts"] == {"rows": 1}
    assert w.call("dpo", "GET", f"{path}/review").json() == []
    assert w.call("dpo", "GET", f"{path}/review/1").status_code == 409
    assert w.call("dpo", "POST", f"{path}/review/1/reveal", json={"reason": REASON}).status_code == 409
    assert w.call("dpo", "PUT", f"{path}/mapping", json={"columns": {}}).status_code == 409
    assert w.call("dpo", "POST", f"{path}/notify").status_code == 409
    with w.hub.session() as session:
        rows = session.scalar(
            select(func.count()).select_from(BreachRow).where(BreachRow.incident_id == probe.incident_id)
        )
        notices = session.scalar(select(func.count()).select_from(BreachNotice)
                                 .where(BreachNotice.incident_id == probe.incident_id))  # fmt: skip
    assert rows == 0 and notices == 0
    # The second person's queue shows it to others, not to the importer.
    assert [i["id"] for i in w.call("auditor", "GET", "/breach/pending").json()["imports"]] == [probe.incident_id]
    assert w.call("dpo", "GET", "/breach/pending").json()["imports"] == []
    # The second person sees who staged what and how many rows, never the file's columns or their mapping.
    (staged,) = w.call("operator", "GET", "/breach/pending").json()["imports"]
    assert set(staged) == {"id", "name", "created_at", "created_by", "rows"}, staged
    assert w.call("researcher1", "GET", "/breach/pending").status_code == 403
    assert "probe" in _page(w, "operator", "/controle/violations/a-confirmer")


def test_the_importer_or_their_creature_cannot_confirm(shared_world: World, probe: Probe) -> None:
    w, path = shared_world, f"/breach/incidents/{probe.incident_id}/confirm"
    assert w.call("dpo", "POST", path).status_code == 403
    assert w.call("researcher1", "POST", path).status_code == 403  # a role not allowed by the setting
    # An auditor account that the DPO made: refused too (checked at the service, in a transaction not committed).
    with w.hub.session() as session:
        auditor = session.get(Account, w.ids["auditor"])
        assert auditor is not None
        auditor.created_by = f"account:{w.ids['dpo']}"
        session.flush()
        actor = Actor(auditor.id, Role.AUDITOR, ROLE_SCOPES[Role.AUDITOR], None, "session")
        incidents = Incidents(w.hub, session)
        with pytest.raises(Denied, match="created by the one who asked"):
            incidents.confirm(actor, incidents.get(probe.incident_id))
        dpo = session.get(Account, w.ids["dpo"])
        assert dpo is not None
        # The asker's own creator, and an account made by the asker's creator: one creation lineage, refused.
        auditor.created_by, dpo.created_by = "console", f"account:{auditor.id}"
        session.flush()
        with pytest.raises(Denied, match="created by the same person"):
            incidents.confirm(actor, incidents.get(probe.incident_id))
        auditor.created_by = dpo.created_by = f"account:{w.ids['operator']}"
        session.flush()
        with pytest.raises(Denied, match="created by the same person"):
            incidents.confirm(actor, incidents.get(probe.incident_id))
        session.rollback()
    with w.hub.session() as session:
        assert session.get(BreachIncident, probe.incident_id).status == "staged"  # type: ignore[union-attr]
    r = w.call("auditor", "POST", path)
    assert r.status_code == 200, r.text
    assert r.json()["ambiguous"] == 1  # one person's NIR with a made-up name: a conflict, in review
    assert w.call("auditor", "POST", path).status_code == 409
    # Whoever may never confirm gets the same answer for a confirmed incident and an id nobody has (not a 409
    # telling the incident exists): the role is checked before the incident is looked up.
    for name in ("researcher1", "citizen1"):
        done, missing = (w.call(name, "POST", f"/breach/incidents/{n}/confirm") for n in (probe.incident_id, 987654))
        assert done.status_code == missing.status_code == 403 and done.json() == missing.json(), (name, done.text)
    confirmed = w.call("dpo", "GET", f"/breach/incidents/{probe.incident_id}").json()
    assert confirmed["status"] == "imported" and confirmed["confirmed_by"] == f"account:{w.ids['auditor']}"


def test_review_tells_which_fields_agree_never_the_vault_values(shared_world: World, probe: Probe) -> None:
    w, i = shared_world, probe.incident_id
    r = w.call("dpo", "GET", f"/breach/incidents/{i}/review/1")
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    agreement = {f["field"]: (f["agreement"], f["score"]) for f in r.json()["fields"]}
    assert agreement["nir"] == ("exact", 1.0) and agreement["birth_date"] == ("exact", 1.0)
    assert agreement["last_name"][0] == "differs" and agreement["first_name"][0] in ("differs", "close")
    bodies = {"api review row": r.text, "api queue": w.call("dpo", "GET", f"/breach/incidents/{i}/review").text,
              "api incident": w.call("dpo", "GET", f"/breach/incidents/{i}").text,
              "api report": w.call("dpo", "GET", f"/breach/incidents/{i}/report").text}  # fmt: skip
    for url in (f"/controle/violations/{i}/revue/1", f"/controle/violations/{i}", "/controle/violations"):
        bodies[url] = _page(w, "dpo", url)
    assert "identique" in bodies[f"/controle/violations/{i}/revue/1"]
    assert {where: _leaks(text, probe.secrets) for where, text in bodies.items() if _leaks(text, probe.secrets)} == {}
    inspected = w.call("dpo", "GET", "/audit/events?action=breach.review.inspect").json()["events"]
    assert inspected and inspected[0]["detail"] == {"row": 1}  # newest first


def test_seeing_an_identity_takes_a_second_person_and_is_recorded_and_alerted(
    shared_world: World, probe: Probe
) -> None:
    w, i = shared_world, probe.incident_id
    ask = f"/breach/incidents/{i}/review/1/reveal"
    assert w.call("dpo", "POST", ask, json={"reason": "because"}).status_code == 422  # below the minimum
    r = w.call("dpo", "POST", ask, json={"reason": REASON})
    assert r.status_code == 200 and r.json()["status"] == "requested", r.text
    reveal = r.json()["id"]
    show, decide = f"/breach/reveals/{reveal}/identity", f"/breach/reveals/{reveal}/decision"
    approve = {"decision": "approve", "reason": "Courrier prévu par l'art. 34, vérifié"}

    # Without a second person's approval, nothing: the DPO alone, or approving their own request.
    assert w.call("dpo", "POST", show).status_code == 403
    assert w.call("dpo", "POST", decide, json=approve).status_code == 403
    assert w.call("researcher1", "POST", decide, json=approve).status_code == 403
    assert w.call("operator", "POST", decide, json=approve).status_code == 403  # not an approver role by default
    assert [x["id"] for x in w.call("auditor", "GET", "/breach/pending").json()["reveals"]] == [reveal]
    # The operator runs the platform: neither the requests nor the DPO's reasons, in the list, the queue or its page.
    assert w.call("operator", "GET", "/breach/reveals").status_code == 403
    assert w.call("operator", "GET", "/breach/pending").json()["reveals"] == []
    assert "Avis par courrier" not in _page(w, "operator", "/controle/violations/a-confirmer")
    # Whoever may never approve cannot tell an existing request from a missing one.
    for name in ("researcher1", "citizen1", "operator"):
        ours, missing = (w.call(name, "POST", f"/breach/reveals/{n}/decision", json=approve) for n in (reveal, 987654))
        assert ours.status_code == missing.status_code == 403 and ours.json() == missing.json(), (name, ours.text)
    r = w.call("auditor", "POST", decide, json=approve)
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert w.call("auditor", "POST", show).status_code == 403  # the approver sees nothing

    # The asker, once, not cached.
    r = w.call("dpo", "POST", show)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["last_name"] == probe.identity.last_name and r.json()["phone"] == probe.identity.phone
    assert "pseudonym" not in r.json()
    assert w.call("dpo", "POST", show).status_code == 409

    # Each step on the record, the showing before its answer; and alerts raised for the request and the showing.
    with w.hub.session() as session:
        steps = [(e.action, e.outcome) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("breach.reveal.%")).order_by(AuditEvent.id))]  # fmt: skip
    assert ("breach.reveal.request", "ok") in steps and ("breach.reveal.approve", "ok") in steps
    assert steps.count(("breach.reveal.show", "ok")) == 1 and ("breach.reveal.show", "denied") in steps
    raised = [a for a in evaluate(w.hub) if a.rule == "identity_reveal"]
    dpo = f"account:{w.ids['dpo']}"
    assert {a.evidence["step"] for a in raised if a.actor == dpo} >= {"request", "show"}

    # An approval older than the window is of no use.
    r = w.call("dpo", "POST", ask, json={"reason": REASON})
    late = r.json()["id"]
    # (approved through the second person's page this time)
    form = {"decision": "approve", "motif": approve["reason"]}
    assert _post_form(w, "auditor", f"/controle/violations/a-confirmer/levee/{late}", form) == 303
    assert w.call("auditor", "GET", f"/breach/reveals?incident_id={i}").json()[-1]["status"] == "approved"
    # A DPO whom the policy does not make an approver reads the requests they made, not others'.
    approvers = w.hub.settings.breach_reveal_approver_roles
    w.hub.settings.breach_reveal_approver_roles = ["auditor"]
    try:
        mine = w.call("dpo", "GET", "/breach/reveals").json()
        assert mine and {x["requested_by"] for x in mine} == {f"account:{w.ids['dpo']}"}
        assert w.call("operator", "GET", "/breach/reveals").status_code == 403
    finally:
        w.hub.settings.breach_reveal_approver_roles = approvers
    w.hub.settings.breach_reveal_window_minutes = 0
    try:
        assert w.call("dpo", "POST", f"/breach/reveals/{late}/identity").status_code == 409
    finally:
        w.hub.settings.breach_reveal_window_minutes = 10
