# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The OpenID Connect path in a real browser, against a real provider (panva's certified ``oidc-provider``, run by
node on loopback): enrolment opens an account only when the provider vouches for exactly one insured person, and
the attacks are refused with a French page and nothing opened: a forged ID token (signed by a key the provider
does not publish), a wrong ``nonce`` (a genuine signature over another login's nonce), a replayed ``state`` (the
callback URL submitted again, from the same browser and from another one), an identity matching nobody, and a
step-up at a level weaker than the one asked.

The hub's relying party is the real code path: discovery, PKCE, the token endpoint, the provider's keys, userinfo.
The provider's test-only twist is at its own token endpoint (tests/oidc/provider/provider.mjs): on request of the
test's login, it re-signs the ID token it was about to return.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import func, select

from hygie.audit.events import AuditEvent
from hygie.breach.models import BreachFlag, BreachIncident
from hygie.governance.models import Account
from hygie.governance.oidc import OidcFlow, step_up_acr
from tests.oidc.idp import Provider, pivot_claims, running_provider
from tests.portal.pages.test_journeys import check_page, watch_console
from tests.portal.world import PASSWORD, World, people

ALICE, BOB, CAROL, ERIN = 30, 31, 32, 34
"""Positions in the delivery of the test identities (people not enrolled by the world)."""


@pytest.fixture(scope="module")
def provider(page_world: World, server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    everyone = people(page_world.delivery)
    identities = {
        "alice": {"level": "eidas2", "claims": pivot_claims(everyone[ALICE])},
        "bob": {"level": "eidas2", "claims": pivot_claims(everyone[BOB])},
        "carol": {"level": "eidas1", "claims": pivot_claims(everyone[CAROL])},
        "erin": {"level": "eidas2", "claims": pivot_claims(everyone[ERIN])},
        # Someone the vault does not hold: Alice's pivot with another birth date.
        "nobody": {"level": "eidas2", "claims": {**pivot_claims(everyone[ALICE]), "birthdate": "1901-01-01"}},
    }
    redirect_uri = f"{server}/citoyen/connexion-fc/retour"
    with running_provider(tmp_path_factory.mktemp("idp"), redirect_uri, identities) as idp:
        settings = page_world.hub.settings
        settings.oidc_issuer = idp.issuer
        settings.oidc_client_id = idp.client_id
        settings.oidc_client_secret_file = idp.secret_file
        settings.oidc_redirect_uri = redirect_uri
        yield idp
        settings.oidc_issuer = None


def accounts(world: World) -> int:
    with world.hub.session() as session:
        return int(session.scalar(select(func.count(Account.id))) or 0)


def index_of(world: World, position: int) -> bytes:
    return world.hub.pseudonymiser.index(people(world.delivery)[position]["BEN_NIR"])


def account_of(world: World, position: int) -> Account | None:
    with world.hub.session() as session:
        return session.scalars(select(Account).where(Account.person_index == index_of(world, position))).first()


def denied_callbacks(world: World) -> list[str]:
    with world.hub.session() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "oidc.callback", AuditEvent.outcome == "denied")
        ).all()
        return [str(r.detail.get("reason", "")) for r in rows]


def provider_login(page: Page, login: str, token: str = "normal") -> None:
    """At the provider's own login page (its interaction), as the person would."""
    expect(page.get_by_role("heading", name="Fournisseur d'identité de test")).to_be_visible()
    page.get_by_label("Identifiant").fill(login)
    page.get_by_label("Jeton").select_option(token)
    page.get_by_role("button", name="Se connecter au fournisseur").click()


def start_enrolment(page: Page, server: str, name: str) -> None:
    page.goto(f"{server}/citoyen/connexion-fc")
    check_page(page, name)
    page.get_by_role("button", name="S'identifier avec le fournisseur d'identité").click()


def expect_refused(page: Page, motif: str, name: str) -> None:
    expect(page.locator("#refus-fc")).to_have_attribute("data-motif", motif)
    expect(page.locator("h1")).to_have_text("Connexion refusée")
    check_page(page, name)


def enrol_as(page: Page, server: str, login: str, username: str, *, name: str) -> str:
    """The whole enrolment through the provider; returns the callback URL the provider sent the browser to."""
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/connexion-fc/retour" in r.url else None)
    start_enrolment(page, server, f"{name}-debut")
    provider_login(page, login)
    page.wait_for_url(re.compile(r"/citoyen/connexion-fc/(compte|retour)"))
    page.wait_for_load_state()
    assert page.url.endswith("/citoyen/connexion-fc/compte"), page.locator("main").inner_text()
    check_page(page, f"{name}-compte")
    page.locator("#username").fill(username)
    page.locator("#password").fill(PASSWORD)
    page.get_by_label("Mot de passe, une seconde fois").fill(PASSWORD)
    page.get_by_role("button", name="Ouvrir mon compte").click()
    expect(page).to_have_url(re.compile(r"/citoyen/remboursements$"))
    expect(page.locator(".hygie-who").first).to_be_attached()
    assert len(callbacks) == 1
    return callbacks[0]


def test_enrolment_through_the_provider_then_replayed_state_refused(
    page: Page, browser: Browser, server: str, provider: Provider, page_world: World
) -> None:
    errors = watch_console(page)
    before = accounts(page_world)
    callback = enrol_as(page, server, "alice", "alice.fc", name="oidc-alice")
    check_page(page, "oidc-alice-remboursements")
    opened = account_of(page_world, ALICE)
    assert opened is not None and opened.username == "alice.fc" and opened.role == "citizen"
    assert accounts(page_world) == before + 1
    with page_world.hub.session() as session:
        enrol = session.scalars(select(AuditEvent).where(AuditEvent.action == "citizen.enrol")).all()[-1]
        assert enrol.detail == {"via": "oidc"} and enrol.actor == f"account:{opened.id}"

    # The callback URL (code and state) submitted again in the same browser: the state was used once.
    page.goto(callback)
    expect_refused(page, "flow", "oidc-rejeu-meme-navigateur")
    # ... and from another browser (a stolen callback URL): no binding cookie there.
    other = browser.new_context(locale="fr-FR")
    try:
        stolen = other.new_page()
        response = stolen.goto(callback)
        assert response is not None and response.status == 403
        expect_refused(stolen, "flow", "oidc-rejeu-autre-navigateur")
    finally:
        other.close()
    assert accounts(page_world) == before + 1
    reasons = denied_callbacks(page_world)
    assert any("already used" in r for r in reasons), reasons
    assert any("another browser" in r or "already used" in r for r in reasons[-1:]), reasons

    # Step-up: the signed-in citizen logs in again at the strong level; the hub knows which level was reached.
    page.goto(f"{server}/citoyen/renforcement")
    check_page(page, "oidc-renforcement")
    page.get_by_role("button", name="M'identifier chez le fournisseur d'identité").click()
    provider_login(page, "alice")
    expect(page.locator("#fc-ok")).to_be_visible()
    check_page(page, "oidc-renforcement-ok")
    page.get_by_role("link", name="Continuer").click()
    expect(page).to_have_url(re.compile(r"/citoyen/renforcement\?fait=1$"))
    expect(page.locator("#etat-renforcement")).to_contain_text("Identité confirmée")
    with page_world.hub.session() as session:
        assert step_up_acr(session, page_world.hub.settings, opened.id) == "eidas2"
    assert errors == []

    # From a new device, Alice signs in through the provider (no password): she lands on her own page.
    other_page, context = provider_sign_in(browser, server, "alice", "oidc-connexion-fc")
    try:
        expect(other_page.locator("#fc-ok")).to_contain_text("vous êtes connecté")
        other_page.get_by_role("link", name="Continuer").click()
        expect(other_page).to_have_url(re.compile(r"/citoyen/remboursements$"))
        expect(other_page.locator(".hygie-who").first).to_contain_text("assuré")
    finally:
        context.close()
    with page_world.hub.session() as session:
        login = session.scalars(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()[-1]
        assert login.actor == f"account:{opened.id}" and login.detail["via"] == "oidc"


def test_callback_in_another_browser_refused_without_spending_the_login(
    page: Page, browser: Browser, server: str, provider: Provider, page_world: World
) -> None:
    """Login CSRF: a callback URL (a fresh code and state) opened in a browser without the login's binding cookie is
    refused and spends nothing; the browser that started the login can still finish it with its cookie."""
    start_enrolment(page, server, "oidc-csrf-debut")
    binding = [c for c in page.context.cookies() if c["name"] == "hygie_oidc"]
    assert len(binding) == 1
    page.context.clear_cookies(name="hygie_oidc")  # the callback arrives as in a browser that never started it
    provider_login(page, "bob")
    expect_refused(page, "flow", "oidc-csrf-sans-cookie")
    callback = page.url
    assert "another browser" in denied_callbacks(page_world)[-1]
    other = browser.new_context(locale="fr-FR")
    try:
        victim = other.new_page()
        victim.goto(callback)
        expect_refused(victim, "flow", "oidc-csrf-autre-navigateur")
    finally:
        other.close()
    page.context.add_cookies(binding)
    page.goto(callback)
    expect(page).to_have_url(re.compile(r"/citoyen/connexion-fc/compte$"))
    assert account_of(page_world, BOB) is None  # vouched, but nothing opens before Bob chooses his password


def test_cancelled_at_the_provider_refused(page: Page, server: str, provider: Provider, page_world: World) -> None:
    """The provider answers the callback with an error (the person cancelled): a French page, nothing pending."""
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if r.url.startswith(provider.issuer + "/auth?") else None)
    start_enrolment(page, server, "oidc-annule-debut")
    state = parse_qs(urlsplit(asked[0]).query)["state"][0]
    binding = [c for c in page.context.cookies() if c["name"] == "hygie_oidc"]
    callback = f"{server}/citoyen/connexion-fc/retour?error=access_denied&state={state}&iss="
    page.goto(callback + quote("https://idp.example.org", safe=""))  # another provider's answer (mix-up, RFC 9207)
    expect_refused(page, "provider", "oidc-autre-fournisseur")
    assert "another issuer" in denied_callbacks(page_world)[-1]
    page.context.add_cookies(binding)  # the refusal page dropped the binding cookie; the flow itself is unspent
    page.goto(callback + quote(provider.issuer, safe=""))
    expect_refused(page, "cancelled", "oidc-annule")
    assert "(access_denied)" in denied_callbacks(page_world)[-1]
    page.goto(f"{server}/citoyen/connexion-fc/compte")
    expect_refused(page, "flow", "oidc-annule-compte")


def test_forged_id_token_refused(page: Page, server: str, provider: Provider, page_world: World) -> None:
    before = accounts(page_world)
    start_enrolment(page, server, "oidc-jeton-forge-debut")
    provider_login(page, "bob", token="forged")
    expect_refused(page, "provider", "oidc-jeton-forge")
    assert accounts(page_world) == before and account_of(page_world, BOB) is None
    assert "signature not verified" in denied_callbacks(page_world)[-1]
    # Nothing is left pending in this browser either: the account form refuses.
    page.goto(f"{server}/citoyen/connexion-fc/compte")
    expect_refused(page, "flow", "oidc-jeton-forge-compte")


def test_wrong_nonce_refused(page: Page, server: str, provider: Provider, page_world: World) -> None:
    before = accounts(page_world)
    start_enrolment(page, server, "oidc-nonce-debut")
    provider_login(page, "bob", token="wrong-nonce")
    expect_refused(page, "provider", "oidc-nonce")
    assert accounts(page_world) == before and account_of(page_world, BOB) is None
    assert "nonce" in denied_callbacks(page_world)[-1]


def test_identity_matching_nobody_opens_nothing(page: Page, server: str, provider: Provider, page_world: World) -> None:
    before = accounts(page_world)
    start_enrolment(page, server, "oidc-inconnu-debut")
    provider_login(page, "nobody")
    expect_refused(page, "no_match", "oidc-inconnu")
    expect(page.locator("#refus-fc")).to_contain_text("code d'activation envoyé par courrier")
    assert accounts(page_world) == before
    with page_world.hub.session() as session:
        flows = session.scalars(select(OidcFlow).where(OidcFlow.purpose == "enrol")).all()
        assert all(f.enrolled_at is None for f in flows if f.person_index is None)


def test_step_up_at_a_weaker_level_refused(
    page: Page, browser: Browser, server: str, provider: Provider, page_world: World
) -> None:
    """Carol's means of identification hold only eidas1: she can enrol, but her step-up (eidas2 asked) is refused."""
    enrol_as(page, server, "carol", "carol.fc", name="oidc-carol")
    page.goto(f"{server}/citoyen/renforcement")
    page.get_by_role("button", name="M'identifier chez le fournisseur d'identité").click()
    provider_login(page, "carol")
    expect_refused(page, "level", "oidc-niveau-insuffisant")
    carol = account_of(page_world, CAROL)
    assert carol is not None
    with page_world.hub.session() as session:
        assert step_up_acr(session, page_world.hub.settings, carol.id) is None
    assert "acr" in denied_callbacks(page_world)[-1]

    # Once named in a breach, her provider sign-in at eidas1 from a new device is refused too.
    flag(page_world, CAROL)
    other_page, context = provider_sign_in(browser, server, "carol", "oidc-connexion-fc-fuite")
    try:
        expect_refused(other_page, "strong_needed", "oidc-connexion-fc-fuite-refus")
        expect(other_page.locator(".hygie-who")).to_have_count(0)
    finally:
        context.close()


def test_provider_sign_in_without_an_account_refused(
    browser: Browser, server: str, provider: Provider, page_world: World
) -> None:
    before = accounts(page_world)
    other_page, context = provider_sign_in(browser, server, "bob", "oidc-connexion-fc-sans-compte")
    try:
        expect_refused(other_page, "no_account", "oidc-connexion-fc-sans-compte-refus")
    finally:
        context.close()
    assert accounts(page_world) == before


def flag(world: World, position: int) -> None:
    """Name this person in a (test) breach: a flag like the breach import leaves."""
    now = datetime.now(UTC)
    with world.hub.session() as session:
        later = now + timedelta(days=30)
        incident = BreachIncident(name=f"oidc-test-leak-{position}", status="notified", created_at=now,
                                  created_by="test", file_format="csv", file_name="leak.csv", retain_until=later,
                                  mapping=[], counts={}, categories={})  # fmt: skip
        session.add(incident)
        session.flush()
        session.add(BreachFlag(person_index=index_of(world, position), incident_id=incident.id, until=later))
        session.commit()


def provider_sign_in(browser: Browser, server: str, login: str, name: str) -> tuple[Page, BrowserContext]:
    """A fresh browser (a new device): sign in through the provider, without the password."""
    context = browser.new_context(locale="fr-FR")
    page = context.new_page()
    page.goto(f"{server}/citoyen/connexion-fc")
    check_page(page, name)
    page.get_by_role("button", name="Me connecter avec le fournisseur d'identité").click()
    provider_login(page, login)
    return page, context


def test_breach_flagged_person_enrols_at_the_strong_level(
    page: Page, server: str, provider: Provider, page_world: World
) -> None:
    """Erin is named in a breach. Her first login (eidas1 asked, eidas1 given) is refused; she starts again at the
    substantial level from the refusal page: her account opens, and this browser becomes a known device, so she is
    signed in at once (no postal step-up for the browser she enrolled in)."""
    flag(page_world, ERIN)
    start_enrolment(page, server, "oidc-fuite-fort-debut")
    provider_login(page, "erin")
    expect_refused(page, "strong_needed", "oidc-fuite-fort-refus")
    assert account_of(page_world, ERIN) is None
    page.get_by_role("button", name="Recommencer au niveau « substantiel »").click()
    provider_login(page, "erin")
    page.wait_for_url(re.compile(r"/citoyen/connexion-fc/compte$"))
    page.locator("#username").fill("erin.fc")
    page.locator("#password").fill(PASSWORD)
    page.get_by_label("Mot de passe, une seconde fois").fill(PASSWORD)
    page.get_by_role("button", name="Ouvrir mon compte").click()
    expect(page).to_have_url(re.compile(r"/citoyen/remboursements$"))
    expect(page.locator(".hygie-who").first).to_be_attached()
    erin = account_of(page_world, ERIN)
    assert erin is not None
    with page_world.hub.session() as session:
        enrol = session.scalars(select(AuditEvent).where(AuditEvent.action == "oidc.enrol")).all()[-1]
        assert enrol.actor == f"account:{erin.id}" and enrol.detail == {"acr": "eidas2"}


def test_no_pivot_value_in_clear(provider: Provider, page_world: World) -> None:
    """What the path recorded and stored (audit log, flows, pivot index) holds no name or birth date in clear."""
    everyone = people(page_world.delivery)
    values = {v for i in (ALICE, BOB, CAROL, ERIN) for v in pivot_claims(everyone[i]).values() if len(v) >= 5}
    values |= {everyone[i]["BEN_NIR"] for i in (ALICE, BOB, CAROL, ERIN)}
    with page_world.hub.session() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("oidc.%"))).all()
        text = json.dumps([[e.actor, e.object, e.detail] for e in events], ensure_ascii=False).casefold()
        flows = session.scalars(select(OidcFlow)).all()
        text += json.dumps([[f.acr, f.acr_wanted, f.purpose, f.state_hash] for f in flows]).casefold()
    assert events and flows
    assert not [v for v in values if v.casefold() in text]
