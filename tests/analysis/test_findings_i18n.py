# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The disclosure checks' findings are catalogued messages: kept with their identifiers beside their English text,
said in French on the airlock's page; a release made before shows its English, marked as such (issue #22)."""

from __future__ import annotations

import html
import re
from typing import Any

from pyroaring import BitMap
from sqlalchemy import select

from hygie.analysis.ledger import (
    LedgerCell,
    Record,
    audit_cells,
    audit_findings,
    differencing,
    empty_margins,
    held_finding,
    is_ledger,
)
from hygie.analysis.models import AnalysisRelease
from hygie.disclosure import Cell, Dimension, DisclosurePolicy, Measure, MeasureKind, OutputTable, protect
from hygie.disclosure.lpaudit import AuditResult, Narrowed, audit
from hygie.i18n import Message, translate
from tests.analysis.test_api import airlock_id, submit_sql
from tests.disclosure.tables import with_margins
from tests.portal.world import World

SQL = "SELECT b.BEN_SEX_COD AS sex, count(DISTINCT f.BEN_NIR_PSA) AS people FROM ER_PRS_F f " \
      "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1"  # fmt: skip
ENGLISH = ("ledger", "fewer than", "suppressed", "output checker", "people", "analysis", "cannot", "releases")
"""Words of the findings' English that their French never uses."""


def _cell(code: str, people: int, **values: float) -> Cell:
    return Cell((code,), people, values, cell_key=people * 7919 % 2**32, anchor_key=people * 104729 % 2**32)


def protect_findings() -> list[str]:
    """Findings of the single-output checks, made by ``protect`` itself."""
    region = Dimension("region")
    policy = DisclosurePolicy(threshold=5, rounding_base=1)
    small = protect(with_margins([Dimension("dept", total="all")], {("11",): 3, ("24",): 0, ("84",): 40}), policy)
    months = Dimension("month", total="year")
    odd = (Cell(("jan",), 3, cell_key=1, anchor_key=1), Cell(("feb",), 16, cell_key=2, anchor_key=2),
           Cell(("year",), 16, cell_key=2, anchor_key=2))  # fmt: skip
    unprotected = protect(OutputTable((months,), (), odd, people_additive=False), policy)
    amount = Measure("amount", MeasureKind.SUM)
    no_top = protect(OutputTable((region,), (amount,), (_cell("11", 40, amount=1e4),)))
    refused = protect(OutputTable((region,), (Measure("amount", MeasureKind.MAX),), (_cell("11", 500, amount=3),)))
    out = [*small.findings, *unprotected.findings, *no_top.findings, *refused.findings]
    codes = {f.code for f in out}
    assert {"small-cell", "complementary", "unprotected", "no-contributions", "single-person-statistic"} <= codes
    return [f.text for f in out]


def ledger_findings() -> list[str]:
    """Findings of the ledger's checks against earlier releases, made by its own functions."""
    people = BitMap(range(20))
    earlier = Record(7, True, 11, 5, people, [
        LedgerCell(("a",), BitMap(range(12)), 12, False, 12),
        LedgerCell(("b",), BitMap(), None, True, 0, margin=BitMap(range(12, 20))),
    ])  # fmt: skip
    candidate = Record(8, True, 11, 5, BitMap(range(18)), [
        LedgerCell(("a",), BitMap(range(14)), 14, False, 14),
        LedgerCell(("c",), BitMap(range(4, 18)), 14, False, 14),
    ])  # fmt: skip
    pairs = differencing(candidate, [earlier], 11)
    empties = empty_margins(candidate, [earlier])
    cells, atoms = audit_cells([earlier], candidate)
    too_large = audit(cells, atoms, 4, max_atoms=0, max_cells=100, max_targets=100)
    narrowed = AuditResult(narrowed=[Narrowed(c.ref, 0, 1, i % 2 == 0) for i, c in enumerate(cells)], infeasible=True)
    found = [*pairs, *empties, *audit_findings(too_large, 4), *audit_findings(narrowed, 4)]
    assert len(pairs) >= 2 and empties and too_large.too_large and len(narrowed.narrowed) >= 3
    held = AnalysisRelease(job_id=7, findings=[*pairs, "not from the ledger"])
    return [*found, held_finding(held)]


def _constats(page: str) -> str:
    found = re.search(r'<ul id="constats"[^>]*>(.*?)</ul>', page, re.S)
    assert found is not None, page[:3000]
    return html.unescape(found.group(1))


def _set_findings(w: World, release_id: int, findings: list[str]) -> None:
    with w.hub.session() as session:
        release = session.get(AnalysisRelease, release_id)
        assert release is not None
        release.findings = findings
        session.commit()


def test_every_finding_is_a_message_with_its_french() -> None:
    """Each check's findings carry their identifier and read in French (none falls back to English)."""
    for finding in [*protect_findings(), *ledger_findings()]:
        assert isinstance(finding, Message), finding
        french = translate(finding, "fr")
        assert french is not None and french != str(finding), finding
        assert not any(word in french for word in ENGLISH), french


def test_the_hold_quotes_the_ledger_findings_of_the_release_that_holds() -> None:
    """Known by the message's identifier, said in French as a list; its English is unchanged."""
    pairs = [f for f in ledger_findings() if f.startswith("ledger: cell")]
    held = AnalysisRelease(job_id=7, findings=[pairs[0], "SQL output: not a ledger finding", pairs[1]])
    finding = held_finding(held)
    assert str(finding).endswith("Its findings: " + pairs[0] + " | " + pairs[1])
    french = translate(finding, "fr")
    assert french is not None and french.endswith(f"{translate(pairs[0], 'fr')} | {translate(pairs[1], 'fr')}")
    assert is_ledger(pairs[0]) and not is_ledger("SQL output: ledger")


def test_a_release_keeps_its_findings_identifiers(shared_world: World) -> None:
    """Stored beside the English text, one per finding (None for free text), and read back as messages."""
    w = shared_world
    pid = w.active_project()
    job = submit_sql(w, pid, SQL)
    release_id = airlock_id(w, job)
    findings = [*protect_findings()[:2], "an English sentence without identifier"]
    _set_findings(w, release_id, findings)
    with w.hub.session() as session:
        release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.id == release_id)).one()
        assert release.findings == [str(f) for f in findings]
        assert release.findings_messages is not None
        msgids = [f.msgid if isinstance(f, Message) else None for f in findings]
        assert [m and m["msgid"] for m in release.findings_messages] == msgids and msgids[0] and msgids[1]
        said = release.findings_said
        assert [isinstance(f, Message) for f in said] == [True, True, False] and said == findings
    item: dict[str, Any] = w.call("reviewer3", "GET", f"/airlock/{release_id}").json()
    assert item["findings"] == [str(f) for f in findings]  # the API's English, unchanged
    assert [m and m["msgid"] for m in item["findings_messages"]] == msgids


def test_findings_of_every_kind_read_in_french_on_the_airlock_page(shared_world: World) -> None:
    """A release's own findings (the SQL check's), the single-output checks' and the ledger's: all in French on the
    checker's page, none in English."""
    w = shared_world
    pid = w.active_project()
    job = submit_sql(w, pid, SQL)
    release_id = airlock_id(w, job)
    own = w.call("reviewer3", "GET", f"/airlock/{release_id}").json()
    assert own["findings"][0].startswith("SQL output:") and own["findings_messages"][0]["msgid"].startswith("SQL")
    page = w.pages("reviewer3")
    shown = _constats(page.get(f"/relecture/sas/{release_id}").text)
    assert "Sortie SQL : la plateforme n'a pas pu compter" in shown and "SQL output" not in shown
    findings = [*protect_findings(), *ledger_findings()]
    _set_findings(w, release_id, findings)
    text = html.unescape(page.get(f"/relecture/sas/{release_id}").text)
    shown = _constats(text)
    for finding in findings:
        french = translate(finding, "fr")
        assert french is not None and french in shown, (french, shown)
        assert str(finding) not in shown
    assert 'lang="en"' not in shown and "en anglais" not in text
    assert not any(word in shown for word in ENGLISH), shown


def test_a_release_made_before_shows_its_english_marked_as_such(shared_world: World) -> None:
    """No identifiers stored (a release made before revision 0015fm): the English text, marked lang="en"."""
    w = shared_world
    pid = w.active_project()
    job = submit_sql(w, pid, SQL)
    release_id = airlock_id(w, job)
    english = [str(f) for f in protect_findings()[:3]]
    _set_findings(w, release_id, english)
    with w.hub.session() as session:
        release = session.get(AnalysisRelease, release_id)
        assert release is not None and release.findings_messages is None
    text = html.unescape(w.pages("reviewer3").get(f"/relecture/sas/{release_id}").text)
    shown = _constats(text)
    assert all(f'<li lang="en">{sentence}</li>' in shown for sentence in english), shown
    assert "cités en anglais" in text
