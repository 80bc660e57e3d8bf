# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What a French page shows comes from the catalogue: no French written in the pages' Python outside it, and a
service's English refusal reaches its page in French (a refused analysis, a form the API's model refuses)."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path

from hygie.i18n import Message, translate
from hygie.portal.pages.messages import BY_STATUS
from tests.portal.world import World

PAGES = Path(__file__).resolve().parents[3] / "hygie" / "portal" / "pages"
CONTROL = PAGES.parents[1] / "control"


def french_literals(source: str) -> list[tuple[int, str]]:
    """String literals with a non-ASCII letter (French written in the code) outside docstrings and N_/term calls."""
    tree = ast.parse(source)
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            allowed.add(id(node.value))  # a docstring
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("N_", "term"):
            allowed.update(id(a) for a in ast.walk(node))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in allowed
        and any(c.isalpha() and ord(c) > 127 for c in node.value)
    ]  # fmt: skip


def test_no_page_module_writes_french_outside_the_catalogue() -> None:
    found = {path.name: french_literals(path.read_text(encoding="utf-8")) for path in sorted(PAGES.glob("*.py"))}
    assert {name: lines for name, lines in found.items() if lines} == {}, (
        "write page texts as fr(N_('english')) with the French in hygie/locale (scripts/messages update)"
    )
    assert {"control_leads.py", "control_rate.py"} <= found.keys()  # the control pages are scanned like any other


def test_the_control_service_writes_no_french_outside_the_catalogue() -> None:
    """The control service's labels (rules, review reasons, decisions) reach the pages, and its refusals the API:
    English messages, said in French by the pages from the catalogue."""
    found = {path.name: french_literals(path.read_text(encoding="utf-8")) for path in sorted(CONTROL.glob("*.py"))}
    assert {name: lines for name, lines in found.items() if lines} == {}, (
        "write the control service's texts as N_('english') or term(context, word), French in hygie/locale"
    )


def test_the_scan_sees_french_in_code_and_lets_messages_be() -> None:
    assert french_literals('X = "Choisissez le fichier divulgué."\nY = f"{n} caractères"\n') == [
        (1, "Choisissez le fichier divulgué."),
        (2, " caractères"),
    ]
    assert french_literals('"""Une page."""\nX = N_("Choose a file: « {name} »", name="é")\n') == []


def _csrf(text: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found is not None
    return found.group(1)


def test_a_refused_analysis_says_its_reason_in_french_on_its_page(shared_world: World) -> None:
    """The API's job model keeps the refusal's text and identifier apart (error, error_message): the page says it
    from the catalogue, not the status's vague sentence over the English."""
    w = shared_world
    pid = w.active_project()
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate",
               json={"group_by": ["provider"], "measures": ["people"]})  # fmt: skip
    job = r.json()
    assert job["status"] == "refused" and job["error_message"]["msgid"], job
    english = job["error"]
    pages = w.pages("researcher1")
    page = html.unescape(pages.get(f"/recherche/projets/{pid}/analyses/{job['id']}").text)
    from hygie.i18n import message_from_json

    french = translate(message_from_json(job["error_message"]), "fr")
    assert french is not None and french in page
    assert BY_STATUS[422] not in page
    assert english in page  # kept below, marked English, for whoever reports it


def test_a_form_refused_by_the_api_model_is_said_in_french(shared_world: World) -> None:
    """Pydantic's own English ("String should have at most 300 characters") never reaches the form."""
    w = shared_world
    pages = w.pages("researcher1")
    form_page = pages.get("/recherche/projets/nouveau").text
    form = {
        "csrf": _csrf(form_page), "titre": "T" * 400, "organisme": "Inserm", "finalite": "research",
        "justification": "a lawful purpose, said", "resume": "a public summary", "colonnes": "IR_BEN_R.BEN_SEX_COD",
        "debut": "2024-01-01", "fin": "2024-12-31", "duree": "30",
    }  # fmt: skip
    r = pages.post("/recherche/projets/nouveau", data=form)
    text = html.unescape(r.text)
    assert r.status_code == 422, text[:2000]
    assert "String should" not in text and "Input should" not in text
    assert "300 caractères au plus." in text


def test_validation_errors_are_never_english() -> None:
    from hygie.portal.pages.messages import validation_error

    assert validation_error({"type": "string_too_long", "ctx": {"max_length": 5}}) == "5 caractères au plus."
    assert validation_error({"type": "int_parsing", "msg": "Input should be a valid integer"}) == (
        "Un nombre, en chiffres."
    )
    odd = validation_error({"type": "url_scheme", "msg": "URL scheme should be 'http' or 'https'"})
    assert "should" not in odd and odd
    raised = ValueError(Message("each measure appears once"))
    assert validation_error({"type": "value_error", "ctx": {"error": raised}}) == translate(raised.args[0], "fr")


def test_the_provider_sign_in_page_knows_a_taken_username_by_its_identifier() -> None:
    """The page tells a taken username from an existing account by the refusal's msgid, never by its words: the
    msgid it waits for is the one the accounts service raises."""
    from hygie.portal.pages.oidc import USERNAME_TAKEN

    accounts = (PAGES.parents[1] / "governance" / "accounts.py").read_text(encoding="utf-8")
    assert f'Conflict(N_("{USERNAME_TAKEN}"' in accounts


def test_an_address_that_names_nothing_is_a_french_page_for_a_browser(shared_world: World) -> None:
    """An unknown page, and an id beyond what the database stores (PostgreSQL's 2^31), answer the French "not
    found" page to a browser, not FastAPI's English JSON nor "service unavailable"; a program keeps its JSON."""
    w = shared_world
    pages = w.pages("researcher1")
    browser = {"Accept": "text/html,application/xhtml+xml"}
    for url in ("/citoyen/nexistepas", "/recherche/projets/2147483648/analyses",
                "/recherche/projets/99999999999999999999"):  # fmt: skip
        r = pages.get(url, headers=browser)
        assert r.status_code == 404, (url, r.status_code, r.text[:300])
        text = html.unescape(r.text)
        assert "text/html" in r.headers["content-type"] and "<h1>Introuvable</h1>" in text, (url, text[:2000])
        assert "Not Found" not in text and "indisponible" not in text.lower()
        assert r.headers["Content-Security-Policy"]
    api = pages.get("/citoyen/nexistepas")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


def test_a_rejected_project_shows_its_status_reason_in_french(shared_world: World) -> None:
    """The service stores its status reasons as English text ("rejected: …"); the project page says them in
    French from the catalogue, the reviewer's own words kept."""
    from tests.portal.world import project_request

    w = shared_world
    pid = w.call("researcher1", "POST", "/projects", json=project_request()).json()["id"]
    w.call("researcher1", "POST", f"/projects/{pid}/submit")
    reason = "la population est plus large que la question"
    r = w.call("reviewer1", "POST", f"/projects/{pid}/decisions", json={"decision": "reject", "reason": reason})
    assert r.json()["status_reason"] == f"rejected: {reason}"  # the API's English, unchanged
    page = html.unescape(w.pages("researcher1").get(f"/recherche/projets/{pid}").text)
    assert f"refusé : {reason}" in page and "rejected:" not in page
    w.call("researcher1", "POST", f"/projects/{pid}/submit")
    w.call("reviewer1", "POST", f"/projects/{pid}/decisions", json={"decision": "approve", "reason": "fine, lawful"})
    assert w.call("researcher1", "PATCH", f"/projects/{pid}", json={"title": "Plus court"}).status_code == 200
    page = html.unescape(w.pages("researcher1").get(f"/recherche/projets/{pid}").text)
    assert "modifié par le demandeur : de nouveau en relecture" in page and "back to review" not in page
