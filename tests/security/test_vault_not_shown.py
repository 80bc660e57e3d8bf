# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack: the DPO reads anyone's identity from the vault.

The DPO imports a one-row "leak" holding a chosen person's NIR and a made-up name, then opens the row in review:
the vault's name, first name, phone and address were shown, and the record held only the row number. What must not
happen: a vault value in any answer the DPO gets about the incident; an identity shown on one person's word.
"""

from __future__ import annotations

import html
from typing import Any

import httpx

from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.world import people
from tests.security.conftest import Served

MADE_UP = ("Inventé-Dupontel", "Personne")


def import_leak(s: Served, name: str, nir: str) -> int:
    """The DPO imports a one-row leak (a chosen NIR, a made-up name); a second person confirms it where the hub asks
    for one (new API: ``POST /breach/incidents/{id}/confirm`` by the auditor). Returns the incident's id."""
    blob = f"N° Sécu,Nom,Prénom\n{nir},{MADE_UP[0]},{MADE_UP[1]}\n".encode()
    r = s.call("dpo", "POST", "/breach/incidents", files={"file": ("leak.csv", blob)}, data={"incident": name})
    assert r.status_code == 200, r.text
    incident = next(i for i in s.call("dpo", "GET", "/breach/incidents").json() if i["name"] == name)
    assert incident["status"] == "staged", incident  # an import over HTTP waits for a second person
    r = s.call("auditor", "POST", f"/breach/incidents/{incident['id']}/confirm")
    assert r.status_code == 200, r.text
    return int(incident["id"])


def vault_values(person: dict[str, str]) -> list[str]:
    """What the vault holds of the person beyond what the DPO typed (the NIR): names, address, phone, e-mail."""
    keys = ("NOM", "PRENOM", "ADRESSE", "TELEPHONE", "EMAIL")
    return [person[k] for k in keys if person.get(k) and len(person[k]) >= 4]


def page(s: Served, caller: str, path: str) -> httpx.Response:
    """A page of the portal as the person's browser gets it (the page session cookie holds the same session token
    as the API's bearer)."""
    return s.call(None, "GET", path, headers={"Cookie": f"{SESSION_COOKIE}={s.token(caller)}"})


def everything_the_dpo_reads(s: Served, incident: int) -> list[httpx.Response]:
    """Every answer about the incident and its rows the DPO can ask for, over the API and on the DPO's pages."""
    answers = [s.call("dpo", "GET", f"/breach/incidents/{incident}"),
               s.call("dpo", "GET", f"/breach/incidents/{incident}/review"),
               s.call("dpo", "GET", f"/breach/incidents/{incident}/report"),
               s.call("dpo", "GET", "/breach/incidents"),
               s.call("dpo", "GET", "/breach/pending"),
               s.call("dpo", "GET", "/breach/reveals")]  # fmt: skip
    for row in (1, 2):
        answers.append(s.call("dpo", "GET", f"/breach/incidents/{incident}/review/{row}"))
    for path in ("", f"/{incident}", f"/{incident}/revue/1", f"/{incident}/rapport", "/a-confirmer"):
        answers.append(page(s, "dpo", f"/controle/violations{path}"))
    return answers


def test_no_vault_value_in_review_answers(served: Served) -> None:
    s = served
    person = people(s.world.delivery)[5]
    incident = import_leak(s, "chosen NIR, made-up name", person["BEN_NIR"])
    review = s.call("dpo", "GET", f"/breach/incidents/{incident}/review")
    assert review.status_code == 200 and review.json(), review.text  # the row is in review: a conflict on the name
    answers = everything_the_dpo_reads(s, incident)
    assert answers[-3].status_code == 200, answers[-3].text[:300]  # the DPO's page of the row in review
    for answer in answers:
        for value in vault_values(person):
            assert value not in html.unescape(answer.text), (str(answer.request.url), "shows a vault value")


def request_reveal(s: Served, incident: int, row: int) -> httpx.Response:
    """New API (H3): the DPO asks to see a row's candidate's identity, with a reason."""
    return s.call("dpo", "POST", f"/breach/incidents/{incident}/review/{row}/reveal",
                  json={"reason": "the law needs this identity to notify the person by post"})  # fmt: skip


def show_identity(s: Served, caller: str, reveal: int) -> httpx.Response:
    """New API (H3): the identity itself, once approved by a second person."""
    return s.call(caller, "POST", f"/breach/reveals/{reveal}/identity")


def decide_reveal(s: Served, caller: str, reveal: int, decision: str) -> httpx.Response:
    return s.call(caller, "POST", f"/breach/reveals/{reveal}/decision",
                  json={"decision": decision, "reason": "checked against the incident's legal ground"})  # fmt: skip


def test_an_identity_is_never_shown_on_one_persons_word(served: Served) -> None:
    s = served
    person = people(s.world.delivery)[6]
    incident = import_leak(s, "reveal attempt", person["BEN_NIR"])
    asked = request_reveal(s, incident, 1)
    values = vault_values(person)
    assert not any(v in asked.text for v in values), asked.text
    assert asked.status_code == 200, asked.text  # asking is allowed; seeing is what needs a second person
    reveal: Any = asked.json()["id"]
    # The DPO alone: before any approval, approving his own request, then trying again.
    for r in (
        show_identity(s, "dpo", reveal),
        decide_reveal(s, "dpo", reveal, "approve"),
        show_identity(s, "dpo", reveal),
    ):
        assert not 200 <= r.status_code < 300, r.text
        assert not any(v in r.text for v in values), r.text
    # Nobody but the asker sees it, even once approved; and the asker sees it once.
    assert decide_reveal(s, "auditor", reveal, "approve").status_code == 200
    for caller in ("auditor", "operator", "reviewer1", "researcher1"):
        r = show_identity(s, caller, reveal)
        assert not any(v in r.text for v in values), (caller, r.text)
    first = show_identity(s, "dpo", reveal)
    assert first.status_code == 200 and person["NOM"] in first.text, first.text
    shown = [e for e in s.events(actor=f"account:{s.ids['dpo']}") if e["action"].startswith("breach.reveal")]
    assert any(e["outcome"] == "ok" and "show" in e["action"] for e in shown), shown  # on the record
    assert not any(v in str(shown) for v in values), "the record holds the identity"
    again = show_identity(s, "dpo", reveal)
    assert not 200 <= again.status_code < 300 and person["NOM"] not in again.text, again.text


def test_the_operator_never_reaches_an_incident(served: Served) -> None:
    s = served
    person = people(s.world.delivery)[7]
    incident = import_leak(s, "operator probe", person["BEN_NIR"])
    for path in (f"/breach/incidents/{incident}", f"/breach/incidents/{incident}/review",
                 f"/breach/incidents/{incident}/review/1", f"/breach/incidents/{incident}/report"):  # fmt: skip
        r = s.call("operator", "GET", path)
        assert not 200 <= r.status_code < 300, (path, r.text)
