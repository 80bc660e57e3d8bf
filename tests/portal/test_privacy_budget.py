# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A project's privacy budget through the API and the pages: requested (absurd budgets refused with a clear
message), shown to reviewers with the population budget it is charged against and the projects sharing it, and
published in the register as spent and left, in JSON and in French."""

from __future__ import annotations

import json
import re
from typing import Any

from hygie.governance import privacy
from tests.portal.world import World, project_request

APPROVE = {"decision": "approve", "reason": "lawful purpose, minimal scope"}


def _raw(w: World, name: str, method: str, path: str, body: str) -> Any:
    """A request whose JSON body is written by hand (NaN, Infinity: what a client library would not send)."""
    headers = {**w.headers(name), "Content-Type": "application/json"}
    return w.client.request(method, path, content=body, headers=headers)


def _active(w: World, **overrides: object) -> int:
    r = w.call("researcher1", "POST", "/projects", json=project_request(**overrides))
    assert r.status_code == 200, r.text
    pid: int = r.json()["id"]
    assert w.call("researcher1", "POST", f"/projects/{pid}/submit").status_code == 200
    for reviewer in ("reviewer1", "reviewer2"):
        r = w.call(reviewer, "POST", f"/projects/{pid}/decisions", json=APPROVE)
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    return pid


def test_budget_requested_reviewed_and_published(shared_world: World) -> None:
    w = shared_world
    # Absurd budgets are refused with a message a person can act on (JSON allows NaN and Infinity in Python).
    for raw, why in (("NaN", "NaN"), ("Infinity", "infinite"), ("-0.5", "more than zero"), ("1e9", "population")):
        body = json.dumps(project_request(release_mode="dp"))[:-1] + f', "privacy_budget": {raw}}}'
        r = _raw(w, "researcher1", "POST", "/projects", body)
        assert r.status_code == 422 and why in r.json()["detail"], (raw, r.text)
    r = w.call("researcher1", "POST", "/projects", json=project_request(release_mode="dp"))
    assert r.status_code == 422 and "needs a privacy_budget" in r.json()["detail"]

    first = _active(w, release_mode="dp", privacy_budget=0.5)
    # A second project over the same people and purpose, in review: the reviewer sees the shared budget.
    second = w.call("researcher2", "POST", "/projects", json=project_request(release_mode="dp", privacy_budget=0.4))
    second_id = second.json()["id"]
    assert w.call("researcher2", "POST", f"/projects/{second_id}/submit").status_code == 200
    r = _raw(w, "researcher2", "PATCH", f"/projects/{second_id}", '{"privacy_budget": Infinity}')
    assert r.status_code == 422 and "infinite" in r.json()["detail"]
    shown = w.call("reviewer3", "GET", f"/projects/{second_id}").json()
    assert shown["release_mode"] == "dp" and shown["privacy_budget"] == 0.4
    budget = shown["privacy"]
    assert budget["total"] == 0.4 and budget["left"] == 0.4 and budget["projects_sharing"] == 2
    assert budget["sharing_project_ids"] == [first] and budget["population_total"] == 1.0
    sdc = w.call("reviewer3", "GET", f"/projects/{w.active_project()}").json()
    assert sdc["release_mode"] == "sdc" and sdc["privacy"] is None and sdc["privacy_budget"] is None

    # The first project spends 0.2 (as a release would), and holds 0.05 for a running job.
    with w.hub.session() as session:
        privacy.reserve(session, first, 900_001, 0.2, actor="account:1")
        privacy.settle(session, 900_001)
        privacy.reserve(session, first, 900_002, 0.05, actor="account:1")
        session.commit()
    public = {p["id"]: p for p in w.call(None, "GET", "/register?limit=200").json()["projects"]}
    assert (public[first]["privacy_budget"], public[first]["privacy_spent"], public[first]["privacy_left"]) == (
        0.5, 0.2, 0.25)  # fmt: skip
    assert public[first]["population_left"] == 0.75 and public[second_id]["population_left"] == 0.75
    assert public[second_id]["privacy_spent"] == 0 and public[second_id]["privacy_left"] == 0.4

    # The pages, in French: the register and the reviewer's page.
    register = w.call(None, "GET", "/registre").text
    assert "Budget de confidentialité" in register and "dépensé 0,200 sur 0,500" in register
    assert "reste 0,250" in register and "population partagée : reste 0,750" in register
    review = w.pages("reviewer3").get(f"/relecture/projets/{second_id}").text
    assert "confidentialité différentielle, budget de confidentialité de 0,400" in review
    assert f"partagé avec le projet {first}" in review and "Budget de la population" in review


def test_the_request_form_asks_for_the_mode_and_the_budget(shared_world: World) -> None:
    pages = shared_world.pages("researcher1")
    page = pages.get("/recherche/projets/nouveau")
    assert "Confidentialité différentielle" in page.text and 'name="budget"' in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf": csrf.group(1), "titre": "Statines", "organisme": "Université", "finalite": "research",
            "justification": "Décrire la délivrance des statines.", "resume": "Les statines après 60 ans.",
            "colonnes": "IR_BEN_R.BEN_SEX_COD", "debut": "2024-01-01", "fin": "2024-12-31", "duree": "90",
            "mode_publication": "dp", "budget": "nan"}  # fmt: skip
    r = pages.post("/recherche/projets/nouveau", data=form)
    assert r.status_code == 422 and "Donnez un budget de confidentialité" in r.text
    r = pages.post("/recherche/projets/nouveau", data={**form, "mode_publication": "sdc", "budget": "0,2"})
    assert r.status_code == 422 and "ne va qu&#39;avec la confidentialité différentielle" in r.text
    r = pages.post("/recherche/projets/nouveau", data={**form, "budget": "0,25"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    pid = int(r.headers["location"].split("/")[-1].split("?")[0])
    made = shared_world.call("researcher1", "GET", f"/projects/{pid}").json()
    assert made["release_mode"] == "dp" and made["privacy_budget"] == 0.25
    assert "budget de confidentialité de 0,250" in pages.get(f"/recherche/projets/{pid}").text
