# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Keyboard only: a citizen signs in and uses the citizen pages without a mouse (RGAA 7.3, 12.7, 12.8; WCAG 2.1.1,
2.4.1, 2.4.7). Every move is a key press; each control reached shows a visible focus indicator."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.portal.pages.test_journeys import check_page, watch_console
from tests.portal.world import PASSWORD, World

MAX_TABS = 60
"""More Tab presses than any of these pages has controls before its main content's last one."""


def focused(page: Page) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        """() => {
            const e = document.activeElement;
            if (!e || e === document.body) return {tag: "", text: "", label: "", outline: "", visible: ""};
            const style = getComputedStyle(e);
            const box = e.getBoundingClientRect();
            return {tag: e.tagName.toLowerCase(), text: (e.innerText || e.value || "").trim(),
                    label: e.labels && e.labels.length ? e.labels[0].innerText.trim()
                                                       : (e.getAttribute("aria-label") || ""),
                    outline: style.outlineStyle === "none" && style.boxShadow === "none" ? "" : "shown",
                    visible: box.width > 0 && box.height > 0 ? "yes" : ""};
        }"""
    )
    return result


def tab_to(page: Page, wanted: re.Pattern[str], *, backwards: bool = False) -> dict[str, str]:
    """Press Tab until the focused control's text or label matches; it must show where the focus is."""
    seen = []
    for _ in range(MAX_TABS):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        now = focused(page)
        seen.append(now["text"] or now["label"] or now["tag"])
        if wanted.search(now["text"]) or wanted.search(now["label"]):
            assert now["visible"] == "yes", f"{wanted.pattern}: focused but not visible"
            assert now["outline"] == "shown", f"{wanted.pattern}: no visible focus indicator"
            return now
    raise AssertionError(f"{wanted.pattern!r} never reached with the keyboard; focus went through {seen}")


def skip_to_content(page: Page) -> None:
    """The first Tab stop of every page is the skip link; Enter moves the focus to the main content."""
    page.keyboard.press("Tab")
    first = focused(page)
    assert first["tag"] == "a" and first["text"] == "Contenu" and first["outline"] == "shown", first
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#contenu$"))


def test_a_citizen_signs_in_and_uses_the_citizen_pages_with_the_keyboard_only(
    page: Page, server: str, page_world: World
) -> None:
    errors = watch_console(page)
    page.goto(f"{server}/citoyen/remboursements")  # typed in the address bar
    expect(page).to_have_url(re.compile(r"/connexion"))

    skip_to_content(page)

    tab_to(page, re.compile("^Identifiant"))
    page.keyboard.type("citizen1")
    tab_to(page, re.compile("^Mot de passe"))
    page.keyboard.type(PASSWORD)
    tab_to(page, re.compile("^Se connecter$"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/citoyen/remboursements$"))
    check_page(page, "clavier-citoyen-remboursements")

    tab_to(page, re.compile("Qui a utilisé mes données"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/citoyen/utilisations"))
    check_page(page, "clavier-citoyen-utilisations")

    tab_to(page, re.compile("^M'opposer à l'usage de mes données$"))  # the menu's link
    page.keyboard.press("Enter")
    expect(page.locator("#etat-opposition")).to_contain_text("Vous ne vous opposez pas")
    skip_to_content(page)
    tab_to(page, re.compile("^M'opposer à l'usage de mes données$"))  # now the form's button
    page.keyboard.press("Space")
    expect(page.get_by_role("status")).to_contain_text("Votre opposition est enregistrée")
    tab_to(page, re.compile("^Retirer mon opposition$"))
    page.keyboard.press("Enter")
    expect(page.locator("#etat-opposition")).to_contain_text("Vous ne vous opposez pas")
    check_page(page, "clavier-citoyen-opposition")

    tab_to(page, re.compile("^Se déconnecter$"), backwards=True)  # the header's tools come before the content
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/connexion$"))
    assert errors == []
