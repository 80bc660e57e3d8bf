# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The anonymous "am I in it?" page in a real browser: the NIR is blinded by the page's own script (RFC 9497
VOPRF with @noble/curves), never sent, a forged answer is refused, and the rate limit is explained."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect

from hygie.portal.pages.citizen import WHAT_TO_DO_FR
from tests.portal.pages.test_journeys import check_page, watch_console
from tests.portal.world import World, notify_first_people


@pytest.fixture(scope="module")
def notified(page_world: World) -> list[dict[str, str]]:
    """An incident notified for the first 20 people of the population."""
    return notify_first_people(page_world, "p")


def spaced(nir: str) -> str:
    """As printed on a Vitale card."""
    return f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"


def check(page: Page, nir: str) -> None:
    page.get_by_label("Numéro de sécurité sociale").fill(nir)
    page.get_by_role("button", name="Vérifier").click()


def test_the_page_answers_without_sending_the_nir(server: str, page: Page, notified: list[dict[str, str]]) -> None:
    errors = watch_console(page)
    sent: list[str] = []

    def keep(request: Request) -> None:
        sent.append(request.url + " " + (request.post_data or ""))

    page.on("request", keep)
    page.goto(f"{server}/")
    page.get_by_role("link", name="Vérifiez si votre numéro est concerné").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Suis-je concerné par une fuite de données ?")
    check_page(page, "verification-fuite")
    result = page.locator("#resultat .fr-alert")

    inside, outside = notified[3]["BEN_NIR"], notified[250]["BEN_NIR"]
    check(page, spaced(inside))
    expect(result).to_have_attribute("data-result", "warning")
    expect(result).to_contain_text("Votre numéro figure parmi les personnes concernées")
    expect(result.locator("li")).to_have_count(len(WHAT_TO_DO_FR))
    check_page(page, "verification-fuite-concerne")

    check(page, outside)
    expect(result).to_have_attribute("data-result", "success")
    expect(result).to_contain_text("ne figure pas")
    check_page(page, "verification-fuite-non-concerne")

    # A mistyped number is caught in the page, before anything is sent: no honest-looking "not found".
    asked = sum("/breach-check/" in s for s in sent)
    check(page, inside[:13] + f"{(int(inside[13:]) % 97) + 1:02d}")
    expect(page.locator("#nir-erreur")).to_contain_text("La clé")
    expect(page.get_by_label("Numéro de sécurité sociale")).to_have_attribute("aria-invalid", "true")
    check(page, inside[:10])
    expect(page.locator("#nir-erreur")).to_contain_text("15 caractères")
    check_page(page, "verification-fuite-erreur")
    assert sum("/breach-check/" in s for s in sent) == asked

    # What the server (or anyone on the path) saw: never the NIR, whole or in part, in any URL or body.
    checks = [s for s in sent if "/breach-check/" in s]
    assert [s.split(" ")[0].rsplit("/", 1)[1] for s in checks] == ["key", "evaluate", "lookup"] * 2
    for nir in (inside, outside):
        for part in (nir, nir[:13], nir[5:13], spaced(nir)):
            assert not any(part in s for s in sent)
    bodies = [json.loads(s.split(" ", 1)[1]) for s in checks if s.split(" ", 1)[1]]
    assert all(set(b) in ({"blinded"}, {"attempt", "prefix"}) for b in bodies)
    assert errors == []


def _tamper(field: str, change: Any) -> Any:
    def handler(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body[field] = change(body[field])
        route.fulfill(response=response, body=json.dumps(body))

    return handler


def _flip_proof(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[5] ^= 1  # inside the proof's challenge c
    return base64.b64encode(bytes(raw)).decode()


def test_a_forged_or_unverifiable_answer_shows_no_result(
    server: str, page: Page, notified: list[dict[str, str]]
) -> None:
    page.goto(f"{server}/verification-fuite")
    result = page.locator("#resultat .fr-alert")
    inside = notified[4]["BEN_NIR"]
    # A server that evaluates with a key other than the one it publishes (to single one browser out) is caught
    # by the proof; so is a proof damaged on the way. Either way the page says it cannot answer.
    other_key = base64.b64encode(bytes.fromhex("c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"))
    page.route("**/breach-check/key", _tamper("public_key", lambda _: other_key.decode()))
    check(page, inside)
    expect(result).to_have_attribute("data-result", "error")
    expect(result).to_contain_text("aucune réponse n'est donc affichée")
    page.unroute("**/breach-check/key")
    page.route("**/breach-check/evaluate", _tamper("evaluated", _flip_proof))
    check(page, inside)
    expect(result).to_have_attribute("data-result", "error")
    check_page(page, "verification-fuite-invalide")
    page.unroute("**/breach-check/evaluate")
    check(page, inside)
    expect(result).to_have_attribute("data-result", "warning")


def test_the_rate_limit_is_explained(
    server: str, page: Page, page_world: World, notified: list[dict[str, str]]
) -> None:
    page.goto(f"{server}/verification-fuite")
    result = page.locator("#resultat .fr-alert")
    outside = notified[200]["BEN_NIR"]
    limit = page_world.hub.settings.breach_check_per_ip_per_hour
    for _ in range(limit + 1):  # the other tests of this module used some of the hour's allowance already
        check(page, outside)
        expect(result).not_to_have_attribute("data-result", "info")
        if result.get_attribute("data-result") == "warning":
            break
    expect(result).to_contain_text("Trop de vérifications")
    expect(result).to_contain_text("Réessayez dans")
    check_page(page, "verification-fuite-limite")
