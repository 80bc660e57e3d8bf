# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""In the browser: asking for an activation letter (the same answer whatever was typed), opening the account with its
code, and a person named in a breach stepping up by post (a new browser, a contact change) instead of being locked
out."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from hygie.governance import letters
from hygie.portal.pages.citizen import LETTER_ANSWER_FR, STEP_UP_FR
from hygie.portal.pages.signin import REFUSED_FR
from tests.portal.pages.test_journeys import check_page, notify_of_a_breach, watch_console
from tests.portal.world import PASSWORD, World, people


def code_sent_to(w: World, person_index: bytes, purpose: str) -> str:
    """The code of the newest letter of this purpose in the sealed outbox (what the mail room prints)."""
    with w.hub.session() as session:
        letter = session.scalars(
            select(letters.CitizenLetter)
            .where(letters.CitizenLetter.person_index == person_index, letters.CitizenLetter.purpose == purpose)
            .order_by(letters.CitizenLetter.id.desc())
        ).first()
        assert letter is not None, f"no {purpose} letter"
        code: str = letters.CODE.findall(letters.open_letter(w.hub.custody, letter).decode("latin-1"))[0]
        return code


def ask_letter(page: Page, server: str, nir: str, name: str, born: str) -> None:
    page.goto(f"{server}/citoyen/inscription")
    page.get_by_label("Numéro de sécurité sociale").fill(nir)
    page.get_by_label("Nom de famille").fill(name)
    page.get_by_label("Date de naissance").fill(born)
    page.get_by_role("button", name="Recevoir mon code par courrier").click()
    expect(page.locator("#reponse")).to_contain_text(LETTER_ANSWER_FR)


def test_a_letter_by_post_opens_the_account_and_a_flagged_person_steps_up(
    page: Page, browser: Browser, server: str, page_world: World
) -> None:
    w = page_world
    errors = watch_console(page)
    person = people(w.delivery)[7]
    index = w.hub.pseudonymiser.index(person["BEN_NIR"])
    ask_letter(page, server, person["BEN_NIR"], "NOBODY", person["DATE_NAISSANCE"])  # wrong: the same answer
    ask_letter(page, server, person["BEN_NIR"], person["NOM"], person["DATE_NAISSANCE"])
    check_page(page, "citoyen-inscription")

    page.get_by_role("link", name="Saisir mon code d'activation").click()
    code = code_sent_to(w, index, "activation")
    page.get_by_label("Code d'activation").fill("ABCD-EFGH-JKMN-PQRS")
    page.get_by_label("Numéro de sécurité sociale").fill(person["BEN_NIR"])
    page.get_by_label("Identifiant de votre choix").fill("postal1")
    page.locator("#password").fill(PASSWORD)  # its label carries the length hint
    page.get_by_label("Mot de passe, une seconde fois").fill(PASSWORD)
    page.get_by_role("button", name="Ouvrir mon compte").click()
    expect(page.locator("#erreur")).to_contain_text("Ce code n'est pas valable")
    page.get_by_label("Code d'activation").fill(code)
    page.get_by_label("Numéro de sécurité sociale").fill(person["BEN_NIR"])
    page.locator("#password").fill(PASSWORD)  # its label carries the length hint
    page.get_by_label("Mot de passe, une seconde fois").fill(PASSWORD)
    page.get_by_role("button", name="Ouvrir mon compte").click()
    expect(page.locator("#reponse")).to_contain_text("Votre compte « postal1 » est ouvert")
    check_page(page, "citoyen-activation")

    # The leak names this person: another browser (a new device) is asked for a code sent by post.
    notify_of_a_breach(w, "postal1", ["social security number", "birth date"])
    other = browser.new_context(locale="fr-FR")
    thief_or_new_phone = other.new_page()
    thief_or_new_phone.goto(f"{server}/connexion")
    thief_or_new_phone.get_by_label("Identifiant", exact=True).fill("postal1")
    thief_or_new_phone.get_by_label("Mot de passe").fill(PASSWORD)
    thief_or_new_phone.get_by_role("button", name="Se connecter").click()
    # The one refusal (it never says the password was right, nor that the person is flagged); the page tells
    # everyone that a leak may mean a code by post from a new device, and links to where it is typed.
    expect(thief_or_new_phone.locator("#erreur-connexion")).to_contain_text(REFUSED_FR)
    assert "hygie_session" not in {c["name"] for c in other.cookies()}  # no session before the code
    thief_or_new_phone.locator("#nouvel-appareil").get_by_role("link").click()
    expect(thief_or_new_phone.locator("h1")).to_have_text("Confirmer ce nouvel appareil")
    expect(thief_or_new_phone.locator("main")).to_contain_text(STEP_UP_FR[:60])
    check_page(thief_or_new_phone, "citoyen-appareil")
    thief_or_new_phone.get_by_label("Identifiant", exact=True).fill("postal1")
    thief_or_new_phone.get_by_label("Mot de passe").fill(PASSWORD)
    thief_or_new_phone.locator("#code").fill(code_sent_to(w, index, "device"))
    thief_or_new_phone.get_by_role("button", name="Confirmer et me connecter").click()
    expect(thief_or_new_phone).to_have_url(re.compile(r"/citoyen/remboursements$"))
    other.close()

    # The browser the account was opened from is known; changing contact details waits for a postal code.
    page.goto(f"{server}/connexion")
    page.get_by_label("Identifiant", exact=True).fill("postal1")
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(re.compile(r"/citoyen/remboursements$"))
    page.goto(f"{server}/citoyen/coordonnees")
    page.get_by_label("Adresse électronique").fill("postal1@example.org")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#reponse")).to_contain_text("Un code à usage unique part par courrier")
    check_page(page, "citoyen-coordonnees")
    page.get_by_label("Adresse électronique").fill("postal1@example.org")
    page.locator("#code").fill(code_sent_to(w, index, "contact"))
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#reponse")).to_contain_text("Vos coordonnées sont enregistrées")
    page.goto(f"{server}/citoyen/coordonnees")
    expect(page.get_by_label("Adresse électronique")).to_have_value("postal1@example.org")
    assert errors == []
