# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The DPO's breach-response pages in a real browser: import a leak built from the test population, read the
counts, correct the mapping (the file is matched again), decide rows in review, notify; the notices exist
afterwards, no NIR of the leak is ever in a URL or on a page, and other roles are refused."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Request, expect
from sqlalchemy import func, select

from hygie.breach.models import BreachFlag, BreachNotice, BreachOutbox
from hygie.breach.synthetic import make_leak
from tests.portal.pages.test_journeys import check_page, sign_in, sign_out, watch_console
from tests.portal.world import World, people

COMMENTS = 12
"""The leak's "Commentaires" column (from 0): free text, mapped to 'comment', which the DPO marks as ignored."""


def test_dpo_imports_a_leak_reviews_and_notifies(page: Page, server: str, page_world: World) -> None:
    w = page_world
    errors = watch_console(page)
    requested: list[str] = []

    def keep(request: Request) -> None:
        requested.append(request.url)

    page.on("request", keep)
    everyone = people(w.delivery)
    leak = make_leak(everyone[2:], [], seed=11, size=30, duplicates=2, conflicts=2)
    assert "conflict" in leak.truth
    nirs = {p["BEN_NIR"] for p in everyone}
    blob = leak.csv()

    sign_in(page, server, w, "dpo")
    page.locator("#navigation").get_by_role("link", name="Violations de données").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Violations de données")
    check_page(page, "controle-violations")

    # Neither a file nor a name: nothing is imported, each field says why.
    page.get_by_role("button", name="Importer et rapprocher").click()
    expect(page.locator("#nom")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#fichier")).to_have_attribute("aria-invalid", "true")
    check_page(page, "controle-violations-erreurs")
    assert w.call("dpo", "GET", "/breach/incidents").json() == []
    # A file the reader cannot read: refused in French (the API answers 422 too), nothing imported.
    page.get_by_label("Fichier divulgué").set_input_files(
        files=[{"name": "fuite.json", "mimeType": "application/json", "buffer": b'{"patients": ['}]
    )
    page.get_by_label("Nom de l'incident").fill("Illisible")
    page.get_by_role("button", name="Importer et rapprocher").click()
    expect(page.locator("#erreur-formulaire")).to_contain_text("n'a pas pu être lu comme un fichier JSON")
    r = w.call("dpo", "POST", "/breach/incidents", files={"file": ("f.json", b'{"patients": [')},
               data={"incident": "Illisible"})  # fmt: skip
    assert r.status_code == 422, r.text
    assert w.call("dpo", "GET", "/breach/incidents").json() == []

    page.get_by_label("Fichier divulgué").set_input_files(
        files=[{"name": "fuite.csv", "mimeType": "text/csv", "buffer": blob}]
    )
    page.get_by_label("Nom de l'incident").fill("Fuite du laboratoire de test")
    page.get_by_role("button", name="Importer et rapprocher").click()
    expect(page).to_have_url(re.compile(r"/controle/violations/\d+\?fait=import$"))
    incident_id = int(page.url.split("/")[-1].split("?")[0])
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Violation {incident_id} : Fuite du laboratoire de test")
    # Staged: nothing matched, nothing to review or notify, until a second person confirms the import.
    expect(page.locator("#en-attente")).to_contain_text("seconde personne")
    expect(page.locator("#comptages td[data-compte=matched]")).to_have_text("0")
    expect(page.get_by_role("button", name="Notifier les personnes concernées")).to_have_count(0)
    check_page(page, "controle-violation-en-attente")
    assert w.call("dpo", "POST", f"/breach/incidents/{incident_id}/confirm").status_code == 403
    assert w.call("auditor", "POST", f"/breach/incidents/{incident_id}/confirm").status_code == 200
    page.reload()
    expect(page.locator("#en-attente")).to_have_count(0)
    check_page(page, "controle-violation")
    api = w.call("dpo", "GET", f"/breach/incidents/{incident_id}").json()
    for key in ("rows", "matched", "ambiguous", "unmatched", "invalid", "people"):
        expect(page.locator(f"#comptages td[data-compte={key}]")).to_have_text(str(api["counts"][key]))
    assert api["counts"]["rows"] == len(leak.rows) and api["counts"]["ambiguous"] >= 1, api["counts"]
    expect(page.locator("#categories")).to_contain_text("texte libre")
    assert api["mapping"][COMMENTS]["field"] == "comment"

    # The same name again: the service's refusal, in French, above the form; the name is kept.
    page.goto(f"{server}/controle/violations")
    page.get_by_label("Fichier divulgué").set_input_files(
        files=[{"name": "fuite.csv", "mimeType": "text/csv", "buffer": blob}]
    )
    page.get_by_label("Nom de l'incident").fill("Fuite du laboratoire de test")
    page.get_by_role("button", name="Importer et rapprocher").click()
    expect(page.locator("#erreur-formulaire")).to_contain_text("Une violation porte déjà ce nom")
    expect(page.get_by_label("Nom de l'incident")).to_have_value("Fuite du laboratoire de test")
    assert len(w.call("dpo", "GET", "/breach/incidents").json()) == 1
    expect(page.locator("#incidents")).to_contain_text("Fuite du laboratoire de test")
    check_page(page, "controle-violations-liste")
    page.get_by_role("link", name="Fuite du laboratoire de test").click()

    # The DPO marks the free-text column as ignored: the file is matched again, the category is gone.
    page.locator(f"#colonne-{COMMENTS}").select_option("ignore")
    page.get_by_role("button", name="Enregistrer la correspondance et rapprocher de nouveau").click()
    expect(page.get_by_role("status")).to_contain_text("de nouveau rapproché")
    api = w.call("dpo", "GET", f"/breach/incidents/{incident_id}").json()
    assert api["mapping"][COMMENTS] | {"source": api["mapping"][COMMENTS]["source"]} == {
        "column": COMMENTS, "header": "Commentaires", "field": "ignore", "source": "dpo"
    }  # fmt: skip
    assert "free text (may hold health data)" not in api["categories"]
    expect(page.locator("#categories")).not_to_contain_text("texte libre")
    expect(page.locator(f"#colonne-{COMMENTS}")).to_have_value("ignore")
    check_page(page, "controle-violation-correspondance")

    # The review queue: the page shows the API's rows; the DPO inspects and confirms a row holding a NIR (a
    # conflict), and rejects another.
    queue = w.call("dpo", "GET", f"/breach/incidents/{incident_id}/review").json()
    assert len(queue) >= 1
    expect(page.locator("#file-revue tbody tr")).to_have_count(len(queue))
    first = next(r["row"] for r in queue if leak.rows[r["row"] - 1][0])
    others = [r["row"] for r in queue if r["row"] != first]

    # The row against its candidate, field by field (identical, close, different, absent): no value of the leak
    # or of the vault, recorded (row only), never cached; the health columns are not compared.
    page.locator(f"#ligne-{first}").get_by_role("link", name=re.compile(f"Ligne {first}")).click()
    expect(page).to_have_url(re.compile(rf"/controle/violations/{incident_id}/revue/{first}$"))
    check_page(page, "controle-violation-ligne")
    nir_line = page.locator("#comparaison tbody tr[data-champ=nir]")
    expect(nir_line.locator("td.accord")).to_have_attribute("data-accord", re.compile("^(exact|close|differs)$"))
    html = page.content()
    assert not [n for n in nirs if n in html]
    assert not [p["NOM"] for p in everyone if re.search(rf"\b{re.escape(p['NOM'])}\b", html)]
    expect(page.locator("#comparaison")).not_to_contain_text("Groupe sanguin")
    response = page.request.get(page.url)
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    inspected = w.call("dpo", "GET", "/audit/events?action=breach.review.inspect").json()["events"]
    assert inspected and all(e["detail"] == {"row": first} for e in inspected), inspected
    assert inspected[0]["object"] == f"breach:{incident_id}"

    # Seeing the candidate's identity: asked with a reason, approved by a second person, shown once.
    row_url = page.url
    page.get_by_role("button", name="Demander à voir l'identité").click()
    expect(page.locator("#motif")).to_have_attribute("aria-invalid", "true")  # no reason, no request
    check_page(page, "controle-violation-ligne-erreur")
    page.get_by_label("Raison de la demande").fill("Avis par courrier prévu par l'article 34 du RGPD")
    page.get_by_role("button", name="Demander à voir l'identité").click()
    expect(page.get_by_role("status")).to_contain_text("seconde personne")
    expect(page.locator("#mes-levees")).to_contain_text("en attente d'une seconde personne")
    page.goto(f"{server}/controle/violations/a-confirmer")  # the DPO's own request is not theirs to decide
    expect(page.locator("#levees ~ p").first).to_have_text("Aucune demande en attente.")
    check_page(page, "controle-violations-a-confirmer")
    reveal = w.call("dpo", "GET", f"/breach/reveals?incident_id={incident_id}").json()[-1]["id"]
    approve = {"decision": "approve", "reason": "Courrier de l'article 34, vérifié"}
    assert w.call("auditor", "POST", f"/breach/reveals/{reveal}/decision", json=approve).status_code == 200
    page.goto(row_url)
    page.get_by_role("button", name=re.compile("Voir l'identité une fois")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Identité du candidat de la ligne {first}")
    assert [n for n in nirs if n in page.locator("#identite").inner_text()], "the candidate's NIR, from the vault"
    check_page(page, "controle-violation-identite")
    assert w.call("dpo", "POST", f"/breach/reveals/{reveal}/identity").status_code == 409  # once
    page.goto(row_url)
    expect(page.locator("#mes-levees")).to_contain_text("montrée une fois")
    page.get_by_role("button", name=f"Confirmer la ligne {first}").click()
    expect(page).to_have_url(re.compile(rf"/controle/violations/{incident_id}\?fait=confirm"))
    expect(page.get_by_role("status")).to_contain_text("décision est enregistrée")
    expect(page.locator(f"#ligne-{first} td.decision")).to_have_text("confirmée")
    if others:
        second = others[0]
        page.locator(f"#ligne-{second}").get_by_role("button", name=f"Rejeter la ligne {second}").click()
        expect(page.locator(f"#ligne-{second} td.decision")).to_have_text("rejetée")
    decided = {r["row"]: r["decision"] for r in w.call("dpo", "GET", f"/breach/incidents/{incident_id}/review").json()}
    assert decided[first] == "confirmed" and (not others or decided[others[0]] == "rejected")
    check_page(page, "controle-violation-revue")

    # The report for the CNIL.
    page.get_by_role("link", name=re.compile("Ce qu'une notification à la CNIL demande")).click()
    report = w.call("dpo", "GET", f"/breach/incidents/{incident_id}/report").json()
    expect(page.locator("#rapport-personnes")).to_have_text(str(report["people_concerned"]["identified_in_vault"]))
    check_page(page, "controle-violation-rapport")
    page.go_back()

    # Notify: notices, outbox messages and flags for the people matched or confirmed.
    expect(page.locator("#notification")).to_be_visible()
    page.get_by_role("button", name="Notifier les personnes concernées").click()
    expect(page.locator("#resultat-notification")).to_be_visible()
    notified = int(page.locator("#resultat-notification").inner_text().split()[0])
    expect(page.locator("#statut-violation")).to_have_text("notifiée")
    expect(page.get_by_role("button", name="Notifier les personnes concernées")).to_have_count(0)
    expect(page.locator("#file-revue button")).to_have_count(0)  # decisions no longer offered
    check_page(page, "controle-violation-notifiee")
    assert w.call("dpo", "GET", f"/breach/incidents/{incident_id}").json()["status"] == "notified"
    with w.hub.session() as session:
        notices = session.scalar(select(func.count()).select_from(BreachNotice)
                                 .where(BreachNotice.incident_id == incident_id))  # fmt: skip
        flags = session.scalar(select(func.count()).select_from(BreachFlag)
                               .where(BreachFlag.incident_id == incident_id))  # fmt: skip
        outbox = session.scalar(select(func.count()).select_from(BreachOutbox).join(BreachNotice)
                                .where(BreachNotice.incident_id == incident_id))  # fmt: skip
    assert notices == flags == outbox == notified >= api["counts"]["people"] > 0

    # Nothing of the leak's identifiers in any address the browser asked for, nor on the pages.
    assert requested and not [u for u in requested if any(n in u for n in nirs)]
    for url in (f"/controle/violations/{incident_id}", "/controle/violations",
                f"/controle/violations/{incident_id}/rapport"):  # fmt: skip
        page.goto(server + url)
        html = page.content()
        assert not [n for n in nirs if n in html], url
    assert errors == []


def test_other_roles_are_refused_the_breach_pages(page: Page, server: str, page_world: World) -> None:
    w = page_world
    for name in ("researcher1", "operator"):
        sign_in(page, server, w, name)
        expect(page.locator("#navigation")).not_to_contain_text("Violations de données")
        for url in ("/controle/violations", "/controle/violations/1", "/controle/violations/1/rapport"):
            response = page.goto(server + url)
            assert response is not None and response.status == 403, (name, url)
            expect(page.get_by_role("alert")).to_contain_text("réservée")
        check_page(page, f"erreur-violations-{name}")
        # A form posted anyway (with the right CSRF token) is refused too, and changes nothing.
        token = page.locator("input[name=csrf]").first.get_attribute("value")
        assert token is not None
        r = page.request.post(f"{server}/controle/violations/envoi", form={"csrf": token})
        assert r.status == 403
        sign_out(page)
