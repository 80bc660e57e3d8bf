# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The improper-payment pages in a real browser (issue 17, item 5): a control project's requester draws a sample
and designates a trained reviewer, who reviews a claim through the forms; the rate is released with its interval
drawn and its n. Every page is screenshotted and checked by axe-core, as the portal's other journeys are."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hygie.control.review import decide
from hygie.control.sample import ControlSample, SampledClaim
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
