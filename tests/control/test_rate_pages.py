# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The improper-payment pages in a real browser (issue 17, item 5): a control project's requester draws a sample
and designates a trained reviewer, who reviews a claim through the forms; the rate is released with its interval
drawn and its n. Every page is screenshotted and checked by axe-core, as the portal's other journeys are."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hygie.control.review import decide
from hygie.control.sample import ControlSample, SampledClaim
from hygie.i18n import N_, translate
from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.pages.conftest import browser, page  # noqa: F401  (fixtures)
from tests.portal.pages.test_journeys import check_page, sign_in, sign_out, watch_console
from tests.portal.world import World, build_world
from tests.serving import serving

from .rate_world import SMALL_DESIGN, actor, control_delivery, control_project, improper_across_people, sqlite_template  # noqa: F401


@pytest.fixture(scope="module")
def page_world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: object) -> Iterator[World]:  # noqa: F811
    for world in build_world(tmp_path_factory.mktemp("rate-pages"), sqlite_template, None):  # type: ignore[arg-type]
        for name, value in SMALL_DESIGN.items():
            setattr(world.hub.settings, name, value)
        yield world


@pytest.fixture(scope="module")
def server(page_world: World) -> Iterator[str]:
    with serving(page_world.hub) as url:
        yield url


def test_draw_review_and_release_through_the_pages(page: Page, server: str, page_world: World) -> None:  # noqa: F811
    w = page_world
    pid = control_project(w)
    r = w.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": w.ids["researcher2"]})
    assert r.status_code == 200, r.text
    errors = watch_console(page)
    sign_in(page, server, w, "researcher1")
    page.goto(f"{server}/recherche/projets/{pid}")
    page.locator("#paiements-indus").click()
    expect(page.locator("#pas-une-mesure-de-la-fraude")).to_contain_text("n'est pas une mesure de la fraude")
    check_page(page, "paiements-indus-vide")
    page.get_by_role("button", name="Tirer un échantillon").click()
    expect(page.get_by_role("status")).to_contain_text("graine est inscrite au journal")
    page.get_by_label("Membre du projet à désigner").select_option(str(w.ids["researcher2"]))
    page.get_by_label("Formation suivie").fill("Relecture médicale des dossiers, 2 jours, 2026")
    page.get_by_role("button", name="Désigner").click()
    expect(page.get_by_role("status")).to_contain_text("relecteur formé est désigné")
    check_page(page, "paiements-indus-tire")
    sign_out(page)

    sign_in(page, server, w, "researcher2")
    page.goto(f"{server}/recherche/projets/{pid}/paiements-indus")
    page.get_by_role("link", name="File de relecture").first.click()
    check_page(page, "paiements-indus-file")
    page.locator("#file-relecture tbody a").first.click()
    check_page(page, "paiements-indus-dossier")
    key = int(page.url.rsplit("/", 1)[1])
    page.locator("label[for=non-conforme]").click()  # DSFR draws the radio on its label
    page.get_by_label("Motif (si non conforme)").select_option("erreur-cotation")
    page.get_by_label(re.compile("Montant versé à tort")).fill("0,01")
    page.get_by_role("button", name="Enregistrer la décision").click()
    expect(page.get_by_role("status")).to_contain_text("décision est enregistrée")
    with w.hub.session() as s:
        sample = s.scalars(select(ControlSample).where(ControlSample.project_id == pid)).one()
        claim = s.scalars(
            select(SampledClaim).where(SampledClaim.sample_id == sample.id, SampledClaim.claim_key == key)
        ).one()
        pending = s.scalars(
            select(SampledClaim.claim_key).where(SampledClaim.sample_id == sample.id, SampledClaim.decision.is_(None))
        ).all()
    assert (claim.decision, claim.reason, claim.error_amount) == ("improper", "erreur-cotation", 0.01)
    me = actor(w, "researcher2")
    with w.hub.session() as s:
        amounts = dict(
            s.execute(
                select(SampledClaim.claim_key, SampledClaim.amount).where(SampledClaim.sample_id == sample.id)
            ).all()
        )
    improper = improper_across_people(w, pid, list(pending), 6)
    for k in pending:  # the rest of the queue through the service (the form is the same for each)
        if k in improper:
            decide(w.hub, me, sample.id, k, "improper", reason="documentation-absente", error_amount=amounts[k])
        else:
            decide(w.hub, me, sample.id, k, "proper")
    sign_out(page)

    sign_in(page, server, w, "researcher1")
    page.goto(f"{server}/recherche/projets/{pid}/paiements-indus")
    page.get_by_role("button", name="Calculer et publier l'estimation").click()
    expect(page.get_by_role("status")).to_contain_text("estimation est publiée")
    statement = page.locator(f"#taux-{sample.id}")
    expect(statement).to_contain_text(re.compile(r"Paiements indus estimés : \d+,\d\d\s% \(IC à 95 % : .*\), à partir "
                                                 r"de \d+ dossiers relus"))  # fmt: skip
    expect(page.locator("figure svg rect")).to_have_count(1)
    check_page(page, "paiements-indus-taux")
    assert errors == []


def _signed_in(world: World, name: str) -> tuple[TestClient, str]:
    """A browser without a window: ``name``'s session cookie and the CSRF token its forms carry."""
    client = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    token = world.login(name)
    client.cookies.set(SESSION_COOKIE, token)
    return client, hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()


def test_a_refused_review_reads_in_french_on_its_page_and_in_english_in_the_api(page_world: World) -> None:
    """An amount in error above what was paid: the service's one refusal, in English in the API's JSON (for
    programs), in French on the claim's page (from the catalogue); the page's own check of the amount's writing is
    French too. Neither is the other's language."""
    w = page_world
    pid = control_project(w, title="Improper payments 2024, refusals")
    assert w.call("researcher1", "POST", f"/projects/{pid}/members",
                  json={"account_id": w.ids["researcher2"]}).status_code == 200  # fmt: skip
    sid = w.call("researcher1", "POST", f"/projects/{pid}/control/samples").json()["id"]
    training = {"account_id": w.ids["researcher2"], "training": "Relecture médicale des dossiers, 2026"}
    r = w.call("researcher1", "POST", f"/projects/{pid}/control/reviewers", json=training)
    assert r.status_code == 200, r.text
    first = w.call("researcher2", "GET", f"/projects/{pid}/control/samples/{sid}/claims").json()["claims"][0]
    key, too_much = first["claim_key"], round(first["amount"] + 100, 2)

    api = w.call("researcher2", "POST", f"/projects/{pid}/control/samples/{sid}/claims/{key}/decision",
                 json={"decision": "improper", "reason": "doublon", "error_amount": too_much})  # fmt: skip
    assert api.status_code == 422, api.text
    english = api.json()["detail"]
    assert english == f"the amount in error must be above 0 and at most the amount paid ({first['amount']:.2f} EUR)"
    french = translate(N_("the amount in error must be above 0 and at most the amount paid ({amount:.2f} EUR)",
                          amount=first["amount"]), "fr")  # fmt: skip
    assert french is not None and french.startswith("Le montant en erreur doit être supérieur à 0")
    reviewer, csrf = _signed_in(w, "researcher2")
    url = f"/recherche/projets/{pid}/paiements-indus/echantillons/{sid}/dossiers/{key}"
    form = {
        "csrf": csrf,
        "decision": "non-conforme",
        "motif": "doublon",
        "montant": f"{too_much:.2f}".replace(".", ","),
    }
    refused = reviewer.post(url, data=form)
    text = html.unescape(refused.text)
    assert refused.status_code == 422 and 'lang="fr"' in text and french in text, text[:3000]
    assert f'<span lang="en">{english}</span>' in text  # the service's words kept below, marked as English
    garbled = html.unescape(reviewer.post(url, data={**form, "montant": "douze euros"}).text)
    assert "le montant en erreur s'écrit en euros, par exemple 12,50" in garbled
    assert "for example" not in garbled and "en anglais" not in garbled  # the page's own check: no English below
    with w.hub.session() as s:
        claim = s.scalars(
            select(SampledClaim).where(SampledClaim.sample_id == sid, SampledClaim.claim_key == key)
        ).one()
    assert claim.decision is None  # nothing was recorded by either refusal
