# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The public log proves without telling (issue 12, item 4), over HTTP against a hub with people and staff.

Replayed: a citizen objects and withdraws, reads their breach notices, the DPO searches the record about them and
dismisses an alert, a researcher's SQL job counts rows that are never released. Then: anonymous and operator reads
of the public log show no actor, object, detail or count of any of it, only commitments (and project, action, time
of what the register shows); a guessed event cannot be matched to its leaf without its salt; a witness with public
data alone recomputes a signed root and checks consistency; auditors read everything and check commitments; each
citizen reads their own entries, with proofs, and not another's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hygie.audit import AuditEvent
from hygie.audit.entry import canonical_entry
from hygie.audit.leaf import COMMITMENT_TAG, REGISTER_ACTIONS
from hygie.audit.log import TransparencyLog
from hygie.audit.storage import AuditLeaf
from hygie.audit.witness import check_consistency, check_entries
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.synth import generate
from tests import postgres
from tests.audit import rfc9162
from tests.audit.helpers import check_note
from tests.conftest import make_settings
from tests.portal.world import Template, World, build_world

SQL = "SELECT b.BEN_SEX_COD AS sex, count(DISTINCT f.BEN_NIR_PSA) AS people FROM ER_PRS_F f " \
      "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1"  # fmt: skip
PUBLIC_KEYS = {"index", "format", "leaf_hash", "leaf", "register"}


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _public(w: World, who: str | None) -> tuple[str, list[dict[str, Any]], str]:
    """The signed checkpoint, every public entry up to it, and the raw text of those answers."""
    note = w.call(who, "GET", "/audit/checkpoint").text
    size = int(note.split("\n")[1])
    entries: list[dict[str, Any]] = []
    raw = ""
    for start in range(0, size, 1000):
        r = w.call(who, "GET", "/audit/entries", params={"start": start, "end": min(size, start + 1000)})
        assert r.status_code == 200, r.text
        raw += r.text
        entries += r.json()["entries"]
    return note, entries, raw


def _events(w: World, **where: Any) -> list[AuditEvent]:
    with w.hub.session() as session:
        query = select(AuditEvent).where(*(getattr(AuditEvent, k) == v for k, v in where.items()))
        return list(session.scalars(query.order_by(AuditEvent.id)))


def _row(event: AuditEvent) -> dict[str, Any]:
    return {c: getattr(event, c) for c in ("id", "at", "actor", "role", "action", "object", "project_id", "purpose",
                                           "outcome", "detail")}  # fmt: skip


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit-delivery")
    generate(out, people=25, years=1, seed=3, start_year=2024)  # a tiny population: ingesting it takes little
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, delivery: Path) -> Iterator[World]:
    """A hub of our own with people, staff of every role and two enrolled citizens, on SQLite and PostgreSQL."""
    cluster = request.getfixturevalue("postgres_cluster") if request.param == "postgresql" else None
    tmp = tmp_path_factory.mktemp("audit-template")
    database = f"hygie_audit_tpl_{secrets.token_hex(4)}" if cluster else None
    url = postgres.create_database(cluster, database) if cluster and database else None
    hub = Hub.init(make_settings(tmp / "hub", **({"database_url": url} if url else {})))
    for batch in expand_batches([delivery])[:2]:  # the people and one month of care are enough here
        assert ingest_batch(hub, batch).status == "accepted"
    hub.close()
    yield from build_world(tmp_path_factory.mktemp("audit-world"), Template(tmp / "hub", delivery, database), cluster)


@pytest.fixture(scope="module")
def replayed(world: World) -> dict[str, Any]:
    """The acts the issue found in clear on the public log, replayed once for the module."""
    w = world
    key = w.client.get("/audit/public-key").text.strip()
    first_note = w.client.get("/audit/checkpoint").text
    pid = w.active_project()
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json={"sql": SQL})
    assert r.status_code == 200, r.text
    job = r.json()
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}").json()
    assert w.call("citizen1", "POST", "/me/opt-out").status_code == 200
    assert w.call("citizen1", "DELETE", "/me/opt-out").status_code == 200
    assert w.call("citizen1", "GET", "/me/breach-notices").status_code == 200
    citizen = f"account:{w.ids['citizen1']}"
    assert w.call("dpo", "GET", "/audit/events", params={"actor": citizen}).status_code == 200
    alerts = w.call("dpo", "GET", "/alerts").json()
    alert_id = alerts["alerts"][0]["id"] if alerts.get("alerts") else 999_999
    w.call("dpo", "POST", f"/alerts/{alert_id}/dismiss", json={"note": "checked with the team, nothing wrong"})
    TransparencyLog.for_hub(w.hub).checkpoint()
    return {"world": w, "key": key, "first_note": first_note, "project": pid, "citizen": citizen}


def test_anonymous_and_operator_see_only_what_the_register_shows(replayed: dict[str, Any]) -> None:
    w = replayed["world"]
    _, entries, raw = _public(w, None)
    _, as_operator, raw_operator = _public(w, "operator")
    assert as_operator[: len(entries)] == entries  # the operator reads exactly what anyone reads
    assert entries and all(set(e) == PUBLIC_KEYS and e["format"] == 2 for e in entries)
    for e in entries:
        leaf = json.loads(e["leaf"])
        assert set(leaf) in ({"c", "v"}, {"action", "at", "c", "project_id", "v"})
        if e["register"] is not None:
            assert e["register"]["action"] in REGISTER_ACTIONS
    # Nothing of what people did: no account, no private action, no detail, no count, anywhere in the answers
    # (random commitments and hashes left out of the search: base64 could spell any short word by chance).
    text = raw + raw_operator
    for e in entries + as_operator:
        text = text.replace(json.loads(e["leaf"])["c"], "").replace(e["leaf_hash"], "")
    for leak in ("account:", "citizen", "opt_out", "breach", "audit.search", "alert", "analysis.run", "rows",
                 "people", "detail", "actor", "object", "dismiss", "researcher", "sex"):  # fmt: skip
        assert leak not in text, leak
    # What is in clear is on the register: its projects, and as many acts as were recorded of those kinds.
    register_ids = {p["id"] for p in w.client.get("/register").json()["projects"]}
    shown = [e["register"] for e in entries if e["register"]]
    assert {s["project_id"] for s in shown} <= register_ids and replayed["project"] in register_ids
    with w.hub.session() as session:
        logged = session.execute(
            select(AuditEvent.action, AuditEvent.outcome, AuditEvent.project_id)
            .join(AuditLeaf, AuditLeaf.event_id == AuditEvent.id)
            .where(AuditLeaf.leaf_index < len(entries))
        ).all()
    assert len(shown) == sum(1 for a, o, p in logged if a in REGISTER_ACTIONS and o == "ok" and p is not None)
    page = w.client.get("/journal").text  # the public page: the latest entries in the same public form
    page = re.sub(r"[A-Za-z0-9+/]{43}=", "", page)  # hashes and root: random base64 could spell anything
    assert "entrée scellée" in page and "project." in page
    assert not any(leak in page for leak in ("account:", "citizen.", "opt_out", "audit.search", "alert.", "rows"))
    assert {"project.submit", "project.activate", "project.view.build", "analysis.submit"} <= {
        s["action"] for s in shown
    }


def test_a_witness_checks_roots_and_consistency_from_public_data(replayed: dict[str, Any]) -> None:
    w, key = replayed["world"], replayed["key"]
    note, entries, _ = _public(w, None)
    _, size, root = check_note(note, key)
    leaves = [hashlib.sha256(b"\x00" + e["leaf"].encode("ascii")).digest() for e in entries]
    assert [_b64(e["leaf_hash"]) for e in entries] == leaves and rfc9162.mth(leaves) == root  # independent check
    assert check_entries(entries, note, key).size == size  # the same with hygie.audit.witness
    old_note = replayed["first_note"]
    _, old, old_root = check_note(old_note, key)
    proof = w.client.get("/audit/proof/consistency", params={"from": old, "to": size}).json()
    assert rfc9162.roots_from_consistency(old, size, old_root, [_b64(p) for p in proof["proof"]]) == (old_root, root)
    check_consistency(old_note, note, proof["proof"], key)
    # A forged public leaf (its register fields removed) no longer hashes to the signed root.
    forged = [dict(e) for e in entries]
    i = next(n for n, e in enumerate(forged) if e["register"])
    forged[i]["leaf"] = json.dumps({"c": json.loads(forged[i]["leaf"])["c"], "v": 2}, separators=(",", ":"))
    forged[i]["register"] = None
    with pytest.raises(ValueError):
        check_entries(forged, note, key)


def test_a_guessed_event_does_not_match_its_leaf_without_its_salt(replayed: dict[str, Any]) -> None:
    w = replayed["world"]
    [opt_out] = _events(w, action="citizen.opt_out", actor=replayed["citizen"])
    _, entries, _ = _public(w, None)
    commitments = {json.loads(e["leaf"])["c"] for e in entries}
    hashes = {e["leaf_hash"] for e in entries}
    # The attacker knows everything about the event (who, what, when to the microsecond): every guess fails.
    entry = canonical_entry(_row(opt_out))
    for guess in (b"\x00" + entry, COMMITMENT_TAG + entry, COMMITMENT_TAG + bytes(32) + entry):
        digest = hashlib.sha256(guess).digest()
        assert base64.b64encode(digest).decode() not in commitments | hashes
    with w.hub.session() as session:
        salt = session.scalar(select(AuditLeaf.salt).where(AuditLeaf.event_id == opt_out.id))
    assert salt is not None and len(salt) == 32
    assert base64.b64encode(hashlib.sha256(COMMITMENT_TAG + salt + entry).digest()).decode() in commitments


def test_auditors_see_everything_and_check_commitments(replayed: dict[str, Any]) -> None:
    w = replayed["world"]
    [opt_out] = _events(w, action="citizen.opt_out", actor=replayed["citizen"])
    found = w.call("auditor", "GET", "/audit/events", params={"actor": replayed["citizen"]}).json()["events"]
    [index] = [e["leaf_index"] for e in found if e["id"] == opt_out.id]  # the search says where its entry is
    params = {"start": index, "end": index + 1}
    for who in ("auditor", "dpo"):
        r = w.call(who, "GET", "/audit/entries/full", params=params)
        assert r.status_code == 200, r.text
        [full] = r.json()["entries"]
        assert full["event"]["actor"] == replayed["citizen"] and full["event"]["action"] == "citizen.opt_out"
        assert full["entry"] == canonical_entry(_row(opt_out)).decode("ascii")
        c = hashlib.sha256(COMMITMENT_TAG + _b64(full["salt"]) + full["entry"].encode("ascii")).digest()
        assert json.loads(full["leaf"])["c"] == base64.b64encode(c).decode()
        assert hashlib.sha256(b"\x00" + full["leaf"].encode()).digest() == _b64(full["leaf_hash"])
    assert _events(w, action="audit.entries.read", actor=f"account:{w.ids['auditor']}")  # the read is recorded
    for who, status in (("operator", 403), ("citizen1", 403), ("researcher1", 403), (None, 401)):
        assert w.call(who, "GET", "/audit/entries/full", params=params).status_code == status, who
    assert w.call("auditor", "GET", "/audit/entries/full", params={"start": 0, "end": 10**9}).status_code == 422


def test_a_citizen_sees_their_own_entries_with_proofs_and_no_one_elses(replayed: dict[str, Any]) -> None:
    w, key = replayed["world"], replayed["key"]
    mine = w.call("citizen1", "GET", "/me/audit-entries", params={"limit": 50}).json()
    _, size, root = check_note(mine["checkpoint"], key)
    assert size == mine["size"] and mine["total"] >= len(mine["entries"]) > 0
    assert {e["event"]["actor"] for e in mine["entries"]} == {replayed["citizen"]}
    assert {"citizen.opt_out", "citizen.opt_out.withdraw"} <= {e["event"]["action"] for e in mine["entries"]}
    for e in mine["entries"] + mine["data_uses"]:
        leaf = hashlib.sha256(b"\x00" + e["leaf"].encode()).digest()
        assert rfc9162.root_from_inclusion(e["index"], size, leaf, [_b64(p) for p in e["proof"]]) == root
    for e in mine["entries"]:
        c = hashlib.sha256(COMMITMENT_TAG + _b64(e["salt"]) + e["entry"].encode("ascii")).digest()
        assert json.loads(e["leaf"])["c"] == base64.b64encode(c).decode()
    # The project built its view from the whole population: its build is shown, in public form only.
    assert mine["data_uses"] and all(set(u) == PUBLIC_KEYS | {"proof"} for u in mine["data_uses"])
    assert {u["register"]["project_id"] for u in mine["data_uses"]} >= {replayed["project"]}
    theirs = w.call("citizen2", "GET", "/me/audit-entries").json()
    assert theirs["entries"] and {e["event"]["actor"] for e in theirs["entries"]} == {f"account:{w.ids['citizen2']}"}
    assert not {e["event_id"] for e in theirs["entries"]} & {e["event_id"] for e in mine["entries"]}
    for who in ("operator", "auditor", "dpo"):
        assert w.call(who, "GET", "/me/audit-entries").status_code == 403, who
    # The same on the citizen's page (French), with what it takes to check each line.
    w.headers("citizen1")
    w.client.cookies.set("hygie_session", w.tokens["citizen1"])
    try:
        page = w.client.get("/citoyen/journal")
    finally:
        w.client.cookies.clear()
    assert page.status_code == 200 and "Mes traces dans le journal d" in page.text
    [opt_out] = [e for e in mine["entries"] if e["event"]["action"] == "citizen.opt_out"]
    assert opt_out["salt"] in page.text and opt_out["entry"].replace('"', "&#34;") in page.text
