# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The portal's real journeys in a browser: a citizen, a researcher with two reviewers, the DPO, the public.

Each page visited is screenshotted into test-artifacts/screenshots/ and checked for the basics of accessibility
that a machine can check (lang, one h1, landmarks, a skip link, a label for every field, no console error), and by
axe-core: no serious or critical violation of WCAG 2.2 A/AA (tests/portal/pages/accessibility.py).
"""

from __future__ import annotations

import re
import time
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from playwright.sync_api import ConsoleMessage, Page, expect
from sqlalchemy import select

from hygie.analysis.models import AnalysisJob
from hygie.audit.alerts import AuditAlert
from hygie.breach.models import BreachFlag, BreachIncident, BreachNotice
from hygie.governance.models import Account
from hygie.governance.reimbursements import act_labels
from hygie.ingest.contract import CARE_TABLE
from hygie.portal.pages.citizen import WHAT_TO_DO_FR
from tests.portal.pages.accessibility import check_axe
from tests.portal.pages.conftest import SCREENSHOTS
from tests.portal.world import PASSWORD, World, people


def check_page(page: Page, name: str) -> None:
    """Screenshot the page and check what a machine can check of RGAA / WCAG on it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert page.locator("html").get_attribute("lang") == "fr", name
    assert page.locator("h1").count() == 1, f"{name}: one h1 per page"
    assert "indisponible" not in page.locator("h1").inner_text(), f"{name}: the page failed"
    assert page.locator("main#contenu").count() == 1, f"{name}: a main landmark"
    assert page.locator("header[role=banner]").count() == 1 and page.locator("footer[role=contentinfo]").count() == 1
    assert page.locator(".fr-skiplinks a[href='#contenu']").count() == 1, f"{name}: a skip link to the content"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""
    )
    assert unlabelled == [], f"{name}: fields without a label: {unlabelled}"
    described = page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')].flatMap(e =>
               e.getAttribute('aria-describedby').split(' ').filter(id => !document.getElementById(id)))"""
    )
    assert described == [], f"{name}: aria-describedby points at nothing: {described}"
    assert page.title().endswith("Hygie, données de santé"), name
    check_axe(page, name)


def watch_console(page: Page) -> list[str]:
    errors: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        # Refusals answer 4xx on purpose (a wrong password, an invalid form); anything else (CSP, script) counts.
        if message.type == "error" and "server responded with a status of 4" not in message.text:
            errors.append(message.text)

    page.on("console", seen)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def sign_in(page: Page, base: str, world: World, name: str) -> None:
    page.goto(f"{base}/connexion")
    page.get_by_label("Identifiant", exact=True).fill(name)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    if name in world.secrets:
        page.get_by_label("Code de vérification").fill(world.code(name) or "")  # each code signs in once
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator(".hygie-who").first).to_be_attached()


def sign_out(page: Page) -> None:
    page.locator("header .fr-header__tools").get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(re.compile(r"/connexion$"))


def euros(value: float | None) -> str:
    if value is None:
        return "—"
    text = f"{Decimal(str(value)):,.2f}".replace(",", "\u202f").replace(".", ",")
    return f"{text}\u00a0€"


def expected_reimbursements(world: World, nir: str) -> list[tuple[str, ...]]:
    """The citizen's care rows read straight from the warehouse's Parquet with DuckDB, as the page should show
    them (the pseudonym computed from the delivered NIR, not through the vault the page uses)."""
    pseudonym = world.hub.pseudonymiser.at(1).pseudonym(nir)
    with world.hub.session() as session:
        care = world.hub.warehouse.dataset(session, CARE_TABLE)
        assert care is not None
        care_rows = care.to_table(columns=["BEN_NIR_PSA", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT"])
    con = duckdb.connect()
    con.register("care_rows", care_rows)
    rows = con.execute(
        "SELECT EXE_SOI_DTD, PRS_NAT_REF, PRS_PAI_MNT, BSE_REM_MNT FROM care_rows WHERE BEN_NIR_PSA = ?", [pseudonym]
    ).fetchall()
    con.close()
    labels = act_labels()
    out = []
    for care_date, code, paid, reimbursed in rows:
        shown_date = care_date.strftime("%d/%m/%Y") if care_date.year > 1600 else "date non renseignée"
        label = labels.get(code)
        act_text = f"{label.capitalize()} (code {code})" if label else f"code {code}"
        out.append((shown_date, act_text, euros(paid), euros(reimbursed)))
    return sorted(out)


def shown_reimbursements(page: Page) -> list[tuple[str, ...]]:
    """Every row of every page of the citizen's table, following the pagination as a reader would."""
    out: list[tuple[str, ...]] = []
    while True:
        for row in page.locator("#remboursements tbody tr").all():
            cells = [c.inner_text().strip() for c in row.locator("td").all()]
            out.append((cells[0], " ".join(cells[1].split()), cells[3], cells[4]))
        following = page.locator("a.fr-pagination__link--next[href]")
        if following.count() == 0:
            return sorted(out)
        following.click()


def test_citizen_sees_reimbursements_data_uses_and_objects(page: Page, server: str, page_world: World) -> None:
    w = page_world
    errors = watch_console(page)
    pid = w.active_project(title="Parcours de soins après 60 ans")  # a project whose view includes the citizen
    page.goto(f"{server}/citoyen/remboursements")
    expect(page).to_have_url(re.compile(r"/connexion\?suite=/citoyen/remboursements"))
    check_page(page, "connexion")
    page.get_by_label("Identifiant", exact=True).fill("citizen1")
    page.get_by_label("Mot de passe").fill("not the password")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_contain_text("Identifiant, mot de passe ou code incorrect")
    check_page(page, "connexion-erreur")

    sign_in(page, server, w, "citizen1")
    expect(page).to_have_url(re.compile(r"/citoyen/remboursements$"))
    check_page(page, "citoyen-remboursements")
    nir = people(w.delivery)[0]["BEN_NIR"]
    expected = expected_reimbursements(w, nir)
    assert expected, "the test citizen has care in the warehouse"
    expect(page.locator("main")).to_contain_text(f"{len(expected)} ligne")
    assert shown_reimbursements(page) == expected
    assert nir not in page.content()

    page.get_by_role("link", name="Qui a utilisé mes données").first.click()
    expect(page.locator("main")).to_contain_text("Parcours de soins après 60 ans")
    check_page(page, "citoyen-utilisations")
    assert w.call("citizen1", "GET", "/me/data-uses").json()["uses"][0]["project_id"] == pid

    page.goto(f"{server}/citoyen/opposition")
    expect(page.locator("#etat-opposition")).to_contain_text("Vous ne vous opposez pas")
    check_page(page, "citoyen-opposition")
    page.get_by_role("button", name="M'opposer à l'usage de mes données").click()
    expect(page.get_by_role("status")).to_contain_text("Votre opposition est enregistrée")
    expect(page.locator("#etat-opposition")).to_contain_text("Vous vous opposez")
    check_page(page, "citoyen-opposition-faite")
    assert w.call("citizen1", "GET", "/me/opt-out").json()["objecting"] is True
    page.get_by_role("button", name="Retirer mon opposition").click()
    expect(page.locator("#etat-opposition")).to_contain_text("Vous ne vous opposez pas")
    assert w.call("citizen1", "GET", "/me/opt-out").json()["objecting"] is False

    page.get_by_role("link", name="Violations de données me concernant").first.click()
    expect(page.locator("#aucun-avis")).to_be_visible()  # found nothing: said so, after a successful read
    check_page(page, "citoyen-violations-aucune")
    notify_of_a_breach(w, "citizen1", ["birth date", "social security number"])
    page.reload()
    expect(page.locator("#avis-violation")).to_contain_text("Fuite chez un prestataire de test")
    expect(page.locator("#avis-violation")).to_contain_text("date de naissance, numéro de sécurité sociale")
    expect(page.locator("#verification-renforcee")).to_be_visible()
    expect(page.locator("#que-faire li")).to_have_count(len(WHAT_TO_DO_FR))
    check_page(page, "citoyen-violations")
    assert len(w.call("citizen1", "GET", "/me/breach-notices").json()["notices"]) == 1

    sign_out(page)
    page.goto(f"{server}/citoyen/opposition")
    expect(page).to_have_url(re.compile(r"/connexion"))  # the session is closed, not just the cookie dropped
    assert errors == []


def notify_of_a_breach(w: World, username: str, categories: list[str]) -> None:
    """A breach notice for one citizen, as ``BreachService.notify`` leaves it (matching a leaked file is tested in
    tests/breach; here the page shows what the notice says)."""
    now = datetime.now(UTC)
    with w.hub.session() as session:
        account = session.scalars(select(Account).where(Account.username == username)).one()
        assert account.person_index is not None
        incident = BreachIncident(name="Fuite chez un prestataire de test", status="notified", created_at=now,
                                  created_by="account:0", file_format="csv", file_name="test", file_key=None,
                                  retain_until=now + timedelta(days=30), destroyed_at=None, notified_at=now,
                                  mapping=[], counts={}, categories={})  # fmt: skip
        session.add(incident)
        session.flush()
        session.add(BreachNotice(incident_id=incident.id, person_index=account.person_index, categories=categories,
                                 created_at=now))  # fmt: skip
        session.add(BreachFlag(person_index=account.person_index, incident_id=incident.id,
                               until=now + timedelta(days=90)))  # fmt: skip
        session.commit()


def raise_an_alert(w: World) -> int:
    """An access alert as the audit rules raise it (the rules are tested in tests/audit)."""
    with w.hub.session() as session:
        alert = AuditAlert(rule="denied_burst", severity="high", actor="account:999", project_id=None,
                           raised_at=datetime.now(UTC), evidence={"count": 7, "event_ids": [1, 2, 3]},
                           fingerprint=f"pages-test-{time.time_ns()}", status="open")  # fmt: skip
        session.add(alert)
        session.commit()
        return alert.id


def fill_project(page: Page, title: str) -> None:
    page.get_by_label("Titre").fill(title)
    page.get_by_label("Organisme responsable").fill("Université de Lille")
    page.get_by_label("Finalité légale").select_option("research")
    page.get_by_label("Justification").fill("Décrire la consommation de soins par âge et sexe en 2024.")
    page.get_by_label("Résumé public").fill("Les soins de ville par âge et par sexe, en 2024.")
    page.get_by_label("Durée en jours").fill("180")
    for column in ("IR_BEN_R.BEN_SEX_COD", "IR_BEN_R.BEN_NAI_ANN", "ER_PRS_F.PRS_NAT_REF", "ER_PRS_F.EXE_SOI_DTD",
                   "ER_PRS_F.PRS_PAI_MNT"):  # fmt: skip
        page.locator(f"label[for='col-{column.replace('.', '-')}']").click()  # the DSFR draws the box on the label
        expect(page.locator(f"input[name=colonnes][value='{column}']")).to_be_checked()
    page.locator("#debut").fill("2024-01-01")
    page.locator("#fin").fill("2024-12-31")


def review(page: Page, server: str, world: World, reviewer: str, pid: int) -> None:
    sign_in(page, server, world, reviewer)
    expect(page).to_have_url(re.compile(r"/relecture$"))
    check_page(page, f"relecture-liste-{reviewer}")
    page.locator(f"a[href='/relecture/projets/{pid}']").first.click()
    check_page(page, f"relecture-projet-{reviewer}")
    page.locator("label[for=decision-approve]").click()
    page.get_by_label("Motif").fill("Finalité légale, périmètre minimal, durée raisonnable.")
    page.get_by_role("button", name="Enregistrer ma décision").click()
    expect(page.get_by_role("status")).to_contain_text("Votre approbation est enregistrée")
    sign_out(page)


def test_researcher_submits_a_project_and_analyses_reviewers_approve_researcher_reads_the_outputs(
    page: Page, server: str, page_world: World
) -> None:
    w = page_world
    errors = watch_console(page)
    sign_in(page, server, w, "researcher1")
    expect(page).to_have_url(re.compile(r"/recherche/projets$"))
    check_page(page, "recherche-projets")
    page.get_by_role("link", name="Demander un projet").first.click()
    check_page(page, "recherche-nouveau")

    page.get_by_role("button", name="Soumettre pour relecture").click()  # empty: every error tied to its field
    expect(page.get_by_role("alert")).to_contain_text("Demande non enregistrée")
    expect(page.get_by_label("Titre")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#titre-erreur")).to_have_text("Donnez un titre au projet.")
    check_page(page, "recherche-nouveau-erreurs")

    fill_project(page, "Soins de ville par âge et sexe")
    page.get_by_label("Un seul identifiant potentiel au plus").select_option("care_dates")
    page.get_by_role("button", name="Soumettre pour relecture").click()
    expect(page.get_by_role("status")).to_contain_text("soumise à la relecture")
    expect(page.locator("#statut-projet")).to_have_text("en relecture")
    check_page(page, "recherche-projet-soumis")
    pid = int(page.url.split("/recherche/projets/")[1].split("?")[0])
    with page.expect_download() as dummy:  # dummy data exists before the project is approved
        page.locator("#donnees-fictives").click()
    assert dummy.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(dummy.value.path()) as archive:
        assert any(name.endswith(".parquet") for name in archive.namelist())
    sign_out(page)

    review(page, server, w, "reviewer1", pid)
    review(page, server, w, "reviewer2", pid)

    sign_in(page, server, w, "researcher1")
    page.goto(f"{server}/recherche/projets/{pid}")
    expect(page.locator("#statut-projet")).to_have_text("actif")
    expect(page.locator("#vue-projet")).to_contain_text("ER_PRS_F")
    check_page(page, "recherche-projet-actif")
    view = w.call("researcher1", "GET", f"/projects/{pid}/view").json()
    for table, described in view["tables"].items():
        shown = "sous le seuil" if described["rows"] is None else str(described["rows"])  # rounded, thresholded
        expect(page.locator("#vue-projet")).to_contain_text(shown)
        assert table in page.locator("#vue-projet").inner_text()

    aggregate_job = submit_aggregate(page, pid)
    sql_job = submit_sql(page, pid)
    page.goto(f"{server}/recherche/projets/{pid}/analyses")
    expect(page.locator("#analyses")).to_contain_text(f"Analyse {sql_job}")
    check_page(page, "recherche-analyses")
    a_queued_job_page_refreshes_itself_until_the_job_ends(page, server, w, pid)
    sign_out(page)

    # Whatever waits in the airlock for this project (the SQL always; the aggregate if its checks sent it there)
    # is released by two checkers who neither wrote it nor belong to the project.
    pending = [j for j in (aggregate_job, sql_job) if job_state(w, pid, j)["status"] == "withheld"]
    assert sql_job in pending
    queue = {i["job_id"]: i["release_id"] for i in w.call("reviewer3", "GET", "/airlock").json()}
    for checker in ("reviewer3", "reviewer2"):  # not the DPO, who oversees (dpo_may_review off)
        release_through_the_airlock(page, server, w, checker, [queue[j] for j in pending])

    sign_in(page, server, w, "researcher1")
    for job_id in (aggregate_job, sql_job):
        read_released_output(page, server, w, pid, job_id)
    assert errors == []


def submit_aggregate(page: Page, pid: int) -> int:
    page.get_by_role("link", name="Demander un agrégat").first.click()
    check_page(page, "recherche-agregat")
    page.locator("label[for=mes-1]").click()  # uncheck the default measure: nothing to measure is refused
    page.get_by_role("button", name="Lancer l'agrégat").click()
    expect(page.get_by_role("alert")).to_contain_text("Cochez au moins une mesure")
    expect(page.locator("#mesure-erreur")).to_be_visible()
    check_page(page, "recherche-agregat-erreurs")
    page.locator("label[for=mes-1]").click()
    page.locator("label[for=mes-2]").click()
    page.get_by_role("button", name="Lancer l'agrégat").click()
    return follow_job(page, pid, "agregat")


def submit_sql(page: Page, pid: int) -> int:
    page.goto(page.url.split("/analyses/")[0] + "/analyses/sql")
    check_page(page, "recherche-sql")
    page.get_by_label("Requête SQL").fill("DELETE FROM ER_PRS_F")  # refused before running: not a query
    page.get_by_role("button", name="Soumettre la requête").click()
    expect(page.locator("#statut-analyse")).to_have_text("refusée avant exécution")
    expect(page.get_by_role("alert")).to_be_visible()
    check_page(page, "recherche-analyse-refusee")
    page.goto(page.url.split("/analyses/")[0] + "/analyses/sql")
    page.get_by_label("Requête SQL").fill(
        "SELECT b.BEN_SEX_COD AS sexe, count(DISTINCT f.BEN_NIR_PSA) AS personnes "
        "FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1"
    )
    page.get_by_role("button", name="Soumettre la requête").click()
    return follow_job(page, pid, "sql")


def follow_job(page: Page, pid: int, name: str) -> int:
    """The job's page, followed until the job ends: the page refreshes itself while it is queued or running."""
    expect(page).to_have_url(re.compile(rf"/recherche/projets/{pid}/analyses/\d+$"))
    expect(page.locator("#statut-analyse")).to_have_text(re.compile("^(aucune )?sortie publiée$"))
    expect(page.locator("#etat-analyse")).not_to_contain_text("lignes")  # no count before release
    check_page(page, f"recherche-analyse-{name}")
    return int(page.url.rsplit("/", 1)[1])


def a_queued_job_page_refreshes_itself_until_the_job_ends(page: Page, server: str, w: World, pid: int) -> None:
    """Runs may be asynchronous: a job still queued shows as such, and its page follows it (a script fetching
    the page, which a button stops: no automatic reload, WCAG 2.2.1) and announces its end. The job's end is
    written to the database here, as a worker would."""
    with w.hub.session() as session:
        job = AnalysisJob(project_id=pid, author_id=w.ids["researcher1"], kind="sql", text="SELECT 1 AS n",
                          status="queued", submitted_at=datetime.now(UTC))  # fmt: skip
        session.add(job)
        session.commit()
        job_id = job.id
    page.goto(f"{server}/recherche/projets/{pid}/analyses/{job_id}")
    expect(page.locator("#statut-analyse")).to_have_text("en cours")
    expect(page.locator("#suivi-pause")).to_be_visible()  # the page follows the job, and can be told to stop
    expect(page.locator("#suivi-sans-script")).to_be_hidden()
    check_page(page, "recherche-analyse-en-attente")
    page.locator("#suivi-pause").press("Enter")
    expect(page.locator("#suivi-pause")).to_have_attribute("aria-pressed", "true")
    page.locator("#suivi-pause").press("Enter")
    expect(page.locator("#suivi-pause")).to_have_attribute("aria-pressed", "false")
    with w.hub.session() as session:
        stored = session.get(AnalysisJob, job_id)
        assert stored is not None
        stored.status, stored.error, stored.finished_at = "failed", "the run was stopped", datetime.now(UTC)
        session.commit()
    expect(page.locator("#statut-analyse")).to_have_text("aucune sortie publiée")  # the test never reloads
    expect(page.locator("#sortie-retenue")).not_to_contain_text("stopped")  # like any output kept in
    expect(page.locator("#suivi-pause")).to_have_count(0)
    expect(page.locator("#suivi-annonce")).to_have_text("L'analyse a changé d'état : aucune sortie publiée.")
    check_page(page, "recherche-analyse-terminee")


def job_state(w: World, pid: int, job_id: int) -> dict[str, Any]:
    r = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def release_through_the_airlock(page: Page, server: str, w: World, checker: str, releases: list[int]) -> None:
    sign_in(page, server, w, checker)
    page.get_by_role("link", name="Sas de sortie").first.click()
    check_page(page, f"sas-liste-{checker}")
    for release_id in releases:
        page.locator(f"a[href='/relecture/sas/{release_id}']").click()
        expect(page.locator("#sortie tbody tr").first).to_be_visible()
        check_page(page, f"sas-sortie-{checker}")
        page.get_by_role("button", name="Enregistrer ma décision").click()  # no decision, no reason: refused
        expect(page.locator("#motif")).to_have_attribute("aria-invalid", "true")
        page.locator("label[for=decision-approve]").click()
        page.get_by_label("Motif").fill("Effectifs agrégés par sexe, aucune petite cellule.")
        page.get_by_role("button", name="Enregistrer ma décision").click()
        expect(page.get_by_role("status")).to_contain_text("Votre approbation est enregistrée")
        page.goto(f"{server}/relecture/sas")
    sign_out(page)


def shown_value(value: Any) -> str:
    return "oui" if value is True else "non" if value is False else "—" if value is None else str(value)


def read_released_output(page: Page, server: str, w: World, pid: int, job_id: int) -> None:
    """The released table as the page shows it equals the API's release, and the downloads are its files."""
    page.goto(f"{server}/recherche/projets/{pid}/analyses/{job_id}")
    expect(page.locator("#statut-analyse")).to_have_text("sortie publiée")
    check_page(page, f"recherche-resultat-{job_id}")
    released = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}/release").json()
    header = [t.strip() for t in page.locator("#resultat thead th").all_inner_texts()]
    assert header == released["columns"]
    rows = page.locator("#resultat tbody tr").all()
    shown = [[c.strip() for c in row.locator("td").all_inner_texts()] for row in rows]
    expected = [
        ["masquée" if row.get(c) is None and row.get("suppressed") else shown_value(row.get(c)) for c in header]
        for row in released["rows"]
    ]
    assert shown == expected
    for fmt in ("csv", "json"):
        with page.expect_download() as download:
            page.get_by_role("link", name=f"Télécharger en {fmt.upper()}").click()
        content = Path(download.value.path()).read_bytes()
        api = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job_id}/download?format={fmt}")
        assert api.status_code == 200 and content == api.content, fmt


def test_dpo_searches_the_audit_record_and_the_public_reads_the_register(
    page: Page, server: str, page_world: World
) -> None:
    w = page_world
    errors = watch_console(page)
    w.active_project(title="Registre : projet visible")
    page.goto(f"{server}/registre")
    expect(page.locator("main")).to_contain_text("Registre : projet visible")
    check_page(page, "registre")
    page.goto(f"{server}/journal")
    expect(page.locator("main pre").first).to_contain_text("hygie")
    check_page(page, "journal")

    alert_id = raise_an_alert(w)
    sign_in(page, server, w, "dpo")
    page.goto(f"{server}/controle/alertes")
    check_page(page, "controle-alertes")
    page.get_by_role("link", name=f"Alerte {alert_id}", exact=True).click()
    check_page(page, "controle-alerte")
    page.get_by_role("button", name="Enregistrer").click()  # neither a choice nor a note: nothing changes
    expect(page.locator("#note")).to_have_attribute("aria-invalid", "true")
    check_page(page, "controle-alerte-erreurs")
    assert w.call("dpo", "GET", f"/alerts/{alert_id}").json()["status"] == "open"
    page.locator("label[for=choix-acknowledge]").click()
    page.get_by_label("Note").fill("Refus répétés d'un compte de test : enquête ouverte.")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_contain_text("prise en compte")
    expect(page.locator("#statut-alerte")).to_have_text("prise en compte")
    page.locator("label[for=choix-dismiss]").click()
    page.get_by_label("Note").fill("Compte de test : fausse alerte.")
    page.get_by_role("button", name="Enregistrer").click()
    expect(page.locator("#statut-alerte")).to_have_text("classée")
    expect(page.locator("#choix")).to_have_count(0)  # a dismissed alert stays dismissed
    check_page(page, "controle-alerte-classee")
    handled = w.call("dpo", "GET", f"/alerts/{alert_id}").json()
    assert handled["status"] == "dismissed" and handled["note"] == "Compte de test : fausse alerte."
    page.goto(f"{server}/controle/audit")
    check_page(page, "controle-audit")
    page.get_by_label("Action").fill("project.*")
    page.get_by_label("Résultat").select_option("ok")
    page.get_by_role("button", name="Rechercher").click()
    expect(page.locator("#resultats-audit")).to_contain_text("trouvé")
    actions = {t.strip() for t in page.locator("main table tbody tr td:nth-child(5)").all_inner_texts()}
    assert actions and all(a.startswith("project.") for a in actions), actions
    check_page(page, "controle-audit-resultats")
    page.get_by_label("Acteur").fill("Jean Dupont")  # free text never reaches the record
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_role("alert")).to_contain_text("actor")
    assert errors == []


def test_forms_refuse_a_missing_csrf_token_and_pages_refuse_other_roles(
    page: Page, server: str, page_world: World
) -> None:
    w = page_world
    sign_in(page, server, w, "citizen2")
    cookies: dict[str, Any] = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "hygie_session" in cookies
    session_cookie = next(c for c in page.context.cookies() if c["name"] == "hygie_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    r = page.request.post(f"{server}/citoyen/opposition", form={"choix": "opposer"})
    assert r.status == 403
    assert w.call("citizen2", "GET", "/me/opt-out").json()["objecting"] is False
    r = page.request.post(f"{server}/citoyen/opposition", form={"choix": "opposer", "csrf": "0" * 64})
    assert r.status == 403
    page.goto(f"{server}/recherche/projets")
    expect(page.get_by_role("alert")).to_contain_text("réservée")
    check_page(page, "erreur-acces-refuse")
    sign_out(page)
    # Another researcher's project answers as a missing one: the service's refusal, in French, its own words kept
    # and marked English.
    pid = w.active_project()
    sign_in(page, server, w, "researcher2")
    page.goto(f"{server}/recherche/projets/{pid}/analyses/sql")
    expect(page.locator("#message-erreur")).to_have_text(f"Aucun projet n° {pid}.")
    expect(page.locator("#message-erreur")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("alert").locator("span[lang=en]")).to_contain_text(f"no project {pid}")
    check_page(page, "erreur-pas-membre")
