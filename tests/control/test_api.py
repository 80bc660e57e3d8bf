# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The control of spending over the API and its command line (issue 17, item 5): every act of the control pages,
through the same service functions, on both databases.

Two journeys: rules -> leads -> a lift asked -> a second person approves -> the requester sees the identity once;
draw -> designate -> every sampled claim reviewed -> release -> the estimate listed. Attacked: the requester
approving their own lift, the operator on every control route, a reviewer deciding a claim outside the sample, a
release from a sample nobody reviewed, an unknown rule, and lead, lift and sample ids probed from outside their
project (the same answer as an id nobody has)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from hygie import apiclient
from hygie.audit.events import AuditEvent
from hygie.cli import app
from hygie.control.leads import CLAIMS_SHOWN, ControlLead, ControlRun
from hygie.control.lifting import LiftRequest
from hygie.control.rules import RULES
from hygie.control.sample import RateEstimate, SampledClaim
from tests.portal.world import World

from .leads_world import (  # noqa: F401  (fixtures)
    anomalous_delivery,
    either_world,
    leads_pg_template,
    leads_project,
    leads_template,
)
from .rate_world import (  # noqa: F401  (fixtures)
    control_delivery,
    control_project,
    improper_across_people,
    postgres_template,
    rate_world,
    sqlite_template,
)

REASON = "Enquête du service du contrôle : patients qui n'existent que sur le papier (dossier 2026-17)"
DECISION = "Piste étayée par ses preuves ; l'enquête est ouverte par le service du contrôle"
TRAINING = "CERT-style medical review course, 2 days, 2026"


def blank(r: Any, *ids: int) -> tuple[int, str]:
    """An answer with the ids asked about blanked: two answers that differ only by them are the same answer."""
    text = r.text
    for i in ids:
        text = re.sub(rf"\b{i}\b", "N", text)
    return r.status_code, text


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def lworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from either_world(request, tmp_path_factory.mktemp("control-api-leads"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rworld(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from rate_world(request, tmp_path_factory.mktemp("control-api-rate"))


def ok(r: Any) -> Any:
    assert 200 <= r.status_code < 300, (r.status_code, r.text)
    return r.json()


def events(w: World, action: str, actor: str | None = None) -> list[tuple[str, str]]:
    with w.hub.session() as s:
        query = select(AuditEvent.action, AuditEvent.outcome).where(AuditEvent.action.like(action))
        if actor is not None:
            query = query.where(AuditEvent.actor == f"account:{w.ids[actor]}")
        return [(a, o) for a, o in s.execute(query.order_by(AuditEvent.id))]


def denials(w: World, actor: str) -> int:
    with w.hub.session() as s:
        query = select(func.count()).where(AuditEvent.actor == actor, AuditEvent.outcome == "denied")
        return int(s.scalar(query) or 0)


def with_member(w: World, pid: int, name: str = "researcher2") -> int:
    ok(w.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": w.ids[name]}))
    return pid


# -- the leads' journey -----------------------------------------------------------------------------------------


def test_rules_leads_a_lift_a_second_person_and_the_identity_once(
    lworld: World,
    anomalous_delivery: tuple[Path, Path],  # noqa: F811
) -> None:
    w = lworld
    truth = json.loads(anomalous_delivery[1].read_text())["anomalies"]
    pid = leads_project(w)
    done = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/runs", json={"rules": ["paper", "volume"]}))
    assert done["rules"] == ["paper", "volume"] and done["leads"]["paper"] >= 1
    found = ok(w.call("researcher1", "GET", f"/projects/{pid}/control/leads"))
    assert found["run"] == done["run"] and found["lifts"] == []
    order = [list(RULES).index(x["rule"]) for x in found["leads"]]
    assert order == sorted(order)  # by rule, in the page's order
    with w.hub.session() as s:
        stored = {lead.id: lead for lead in s.scalars(select(ControlLead).where(ControlLead.run_id == done["run"]))}
    assert {x["id"] for x in found["leads"]} == set(stored)
    for x in found["leads"]:  # what the page shows of each: rule, pseudonyms, the numbers, the first claims
        lead = stored[x["id"]]
        assert set(x) == {"id", "rule", "subject_kind", "subject", "provider", "numbers", "claims", "claims_total"}
        assert (x["subject"], x["provider"], x["numbers"]) == (lead.subject, lead.provider, lead.evidence["numbers"])
        assert x["claims"] == lead.evidence["claims"][:CLAIMS_SHOWN]
        assert x["claims_total"] == lead.evidence["claims_total"]
    nirs = {t["nir"] for t in truth if t.get("nir")}
    listing = w.call("researcher1", "GET", f"/projects/{pid}/control/leads").text
    assert not [n for n in nirs if n in listing]  # people by pseudonym only
    # A second run is read by its number; a run of no project is none of this one's.
    assert ok(w.call("researcher1", "GET", f"/projects/{pid}/control/leads", params={"run": done["run"]}))["run"]
    missing = w.call("researcher1", "GET", f"/projects/{pid}/control/leads", params={"run": done["run"] + 999})
    assert missing.status_code == 404

    paper = next(x for x in found["leads"] if x["rule"] == "paper")
    short = w.call("researcher1", "POST", f"/projects/{pid}/control/leads/{paper['id']}/lift", json={"reason": "x"})
    assert short.status_code == 422 and "reason" in short.json()["detail"]
    lift = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/leads/{paper['id']}/lift",
                     json={"reason": REASON}))  # fmt: skip
    assert lift["status"] == "requested" and lift["subject_kind"] == "beneficiary"
    # nothing to see before a second person approves
    early = w.call("researcher1", "POST", f"/projects/{pid}/control/lifts/{lift['id']}/identity")
    assert early.status_code == 403 and "not been approved" in early.json()["detail"]
    # the second person's list: who asked and why, never the pseudonym
    assert w.call("researcher1", "GET", "/control/lifts").status_code == 403
    pending = w.call("reviewer1", "GET", "/control/lifts")
    assert any(p["id"] == lift["id"] and p["reason"] == REASON for p in ok(pending))
    assert paper["subject"] not in pending.text
    # a reviewer who did not approve this control project is no second person for it, and does not see it waiting
    assert all(p["id"] != lift["id"] for p in ok(w.call("reviewer3", "GET", "/control/lifts")))
    stranger = [blank(w.call("reviewer3", "POST", f"/control/lifts/{i}/decision",
                             json={"decision": "approve", "reason": DECISION}), i)
                for i in (lift["id"], lift["id"] + 100_000)]  # fmt: skip
    assert stranger[0] == stranger[1] and stranger[0][0] == 404, stranger
    approved = ok(w.call("reviewer1", "POST", f"/control/lifts/{lift['id']}/decision",
                         json={"decision": "approve", "reason": DECISION}))  # fmt: skip
    assert approved["status"] == "approved"
    again = w.call(
        "dpo", "POST", f"/control/lifts/{lift['id']}/decision", json={"decision": "refuse", "reason": DECISION}
    )
    assert again.status_code == 409
    # the identity: to the requester alone, once, not cached, on the record
    for name in ("reviewer3", "researcher2", "dpo"):
        r = w.call(name, "POST", f"/projects/{pid}/control/lifts/{lift['id']}/identity")
        assert r.status_code == 403 and "only the person who asked" in r.json()["detail"], (name, r.text)
    shown = w.call("researcher1", "POST", f"/projects/{pid}/control/lifts/{lift['id']}/identity")
    identity = ok(shown)
    assert shown.headers["cache-control"] == "no-store"
    assert identity["pseudonym"] == paper["subject"] and identity["last_name"]
    assert identity["nir"] in {t["nir"] for t in truth if t["kind"] == "paper"}
    assert w.call("researcher1", "POST", f"/projects/{pid}/control/lifts/{lift['id']}/identity").status_code == 409
    mine = ok(w.call("researcher1", "GET", f"/projects/{pid}/control/leads"))["lifts"]
    assert [(x["id"], x["status"]) for x in mine] == [(lift["id"], "shown")]
    steps = events(w, "control.lift.%")
    assert ("control.lift.request", "ok") in steps and ("control.lift.approve", "ok") in steps
    assert steps.count(("control.lift.show", "ok")) == 1
    assert ("control.leads.run", "ok") in events(w, "control.leads.run", "researcher1")


def test_the_requester_never_approves_their_own_lift(lworld: World) -> None:
    w = lworld
    pid = leads_project(w)
    run = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/runs", json={"rules": ["volume"]}))
    lead = ok(w.call("researcher1", "GET", f"/projects/{pid}/control/leads"))["leads"][0]
    assert run["leads"]["volume"] >= 1
    lift = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/leads/{lead['id']}/lift",
                     json={"reason": REASON, "provider": lead["provider"] is not None}))  # fmt: skip
    own = {"decision": "approve", "reason": DECISION}
    refused = w.call("researcher1", "POST", f"/control/lifts/{lift['id']}/decision", json=own)
    assert refused.status_code == 403 and "second person" in refused.json()["detail"]
    # even where the policy lets the requester's role approve, the one who asked is not a second person
    settings = w.hub.settings
    roles = settings.control_lift_approver_roles
    settings.control_lift_approver_roles = [*roles, "researcher"]
    try:
        refused = w.call("researcher1", "POST", f"/control/lifts/{lift['id']}/decision", json=own)
    finally:
        settings.control_lift_approver_roles = roles
    assert refused.status_code == 403 and "not the one who asked" in refused.json()["detail"]
    with w.hub.session() as s:
        row = s.get(LiftRequest, lift["id"])
        assert row is not None and row.status == "requested" and row.decided_by is None
    assert w.call("researcher1", "POST", f"/projects/{pid}/control/lifts/{lift['id']}/identity").status_code == 403
    assert events(w, "control.lift.decide", "researcher1")[-2:] == [("control.lift.decide", "denied")] * 2


def test_an_unknown_rule_is_refused_clearly_after_the_gate_and_runs_nothing(lworld: World) -> None:
    w = lworld
    pid = leads_project(w)
    with w.hub.session() as s:
        runs = s.scalar(select(func.count()).select_from(ControlRun))
    r = w.call("researcher1", "POST", f"/projects/{pid}/control/runs", json={"rules": ["volume", "fraud"]})
    assert r.status_code == 422
    assert r.json()["detail"] == "unknown rule 'fraud'; the rules are: " + ", ".join(RULES)
    # a name that is not a rule's shape is refused by the schema, without echoing it
    r = w.call("researcher1", "POST", f"/projects/{pid}/control/runs", json={"rules": ["1850575123456"]})
    assert r.status_code == 422 and "1850575123456" not in r.text
    # whoever may not run rules there hears that, not what is wrong with the names
    stranger = w.call("researcher2", "POST", f"/projects/{pid}/control/runs", json={"rules": ["fraud"]})
    assert (stranger.status_code, stranger.json()["detail"]) == (404, f"no project {pid}")
    with w.hub.session() as s:
        assert s.scalar(select(func.count()).select_from(ControlRun)) == runs
    assert events(w, "control.leads.run", "researcher1")[-1] == ("control.leads.run", "failed")


def test_lead_and_lift_ids_tell_nobody_outside_the_project_that_they_exist(lworld: World) -> None:
    w = lworld
    pid = leads_project(w)
    ok(w.call("researcher1", "POST", f"/projects/{pid}/control/runs", json={"rules": ["volume"]}))
    lead = ok(w.call("researcher1", "GET", f"/projects/{pid}/control/leads"))["leads"][0]
    lift = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/leads/{lead['id']}/lift",
                     json={"reason": REASON}))  # fmt: skip
    other = leads_project(w, requester="researcher2")  # researcher2's own control project
    body = {"reason": REASON}

    probes = {
        "a lead through the prober's own project": lambda i: w.call(
            "researcher2", "POST", f"/projects/{other}/control/leads/{i}/lift", json=body),
        "a lead through its project's address": lambda i: w.call(
            "researcher2", "POST", f"/projects/{pid}/control/leads/{i}/lift", json=body),
    }  # fmt: skip
    for what, probe in probes.items():
        answers = [blank(probe(i), i, pid) for i in (lead["id"], lead["id"] + 100_000)]
        assert answers[0] == answers[1] and answers[0][0] == 404, (what, answers)
    # the lead's project is never named to a stranger through the lead (the service without an address, as before)
    from hygie.control import lifting
    from hygie.governance.errors import GovernanceError

    from .rate_world import actor

    for lead_id in (lead["id"], lead["id"] + 100_000):
        with pytest.raises(GovernanceError) as caught:
            lifting.request(w.hub, actor(w, "researcher2"), lead_id, REASON)
        assert (caught.value.status, caught.value.message) == (404, f"no lead {lead_id}")
    # a lift id: the same refusal to anyone but its requester, whether it exists or not, wherever it is asked
    for who, project in (("researcher2", other), ("researcher2", pid), ("researcher1", other), ("dpo", pid)):
        answers = [blank(w.call(who, "POST", f"/projects/{project}/control/lifts/{i}/identity"), i, project)
                   for i in (lift["id"], lift["id"] + 100_000)]  # fmt: skip
        assert answers[0] == answers[1] and answers[0][0] in (403, 404), (who, project, answers)
    # and who may never approve hears the same whatever the id
    for who in ("researcher2", "auditor", "operator", "citizen1"):
        answers = [blank(w.call(who, "POST", f"/control/lifts/{i}/decision",
                                json={"decision": "approve", "reason": DECISION}), i)
                   for i in (lift["id"], lift["id"] + 100_000)]  # fmt: skip
        assert answers[0] == answers[1] and answers[0][0] == 403, (who, answers)


# -- the rate's journey ----------------------------------------------------------------------------------------


def test_draw_designate_review_every_claim_release_and_list(rworld: World) -> None:
    w = rworld
    pid = with_member(w, control_project(w))
    r = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/reviewers",
                  json={"account_id": w.ids["researcher2"], "training": TRAINING}))  # fmt: skip
    assert r["account_id"] == w.ids["researcher2"]
    drawn = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/samples"))
    assert drawn["drawn"] > 0 and drawn["reviewed"] == 0
    listed = ok(w.call("dpo", "GET", f"/projects/{pid}/control/samples"))  # an overseer sees the progress
    assert [(s["id"], s["drawn"]) for s in listed["samples"]] == [(drawn["id"], drawn["drawn"])]
    assert [x["account_id"] for x in listed["reviewers"]] == [w.ids["researcher2"]]
    base = f"/projects/{pid}/control/samples/{drawn['id']}"
    # whoever drew the sample does not review it
    assert w.call("researcher1", "GET", f"{base}/claims").status_code == 403
    queue = ok(w.call("researcher2", "GET", f"{base}/claims"))
    keys = [c["claim_key"] for c in queue["claims"]]
    assert len(keys) == drawn["drawn"] and queue["reviewed"] == 0
    improper = improper_across_people(w, pid, keys, 4)
    first = ok(w.call("researcher2", "GET", f"{base}/claims/{keys[0]}"))
    assert first["claim_key"] == keys[0] and first["rows"]
    amounts = {c["claim_key"]: c["amount"] for c in queue["claims"]}
    for key in keys:
        if key in improper:
            body = {"decision": "improper", "reason": "erreur-cotation", "error_amount": amounts[key]}
        else:
            body = {"decision": "proper"}
        done = ok(w.call("researcher2", "POST", f"{base}/claims/{key}/decision", json=body))
        assert done["decision"] == body["decision"]
    twice = w.call("researcher2", "POST", f"{base}/claims/{keys[0]}/decision", json={"decision": "proper"})
    assert twice.status_code == 409
    estimate = ok(w.call("researcher1", "POST", f"{base}/estimate"))
    assert estimate["reviewed"] == len(keys) and 0 < estimate["rate"] < 1
    assert estimate["statement"].startswith("estimated improper payments: ")
    assert ok(w.call("auditor", "GET", f"/projects/{pid}/control/estimates"))[0] == estimate
    after = ok(w.call("researcher1", "GET", f"/projects/{pid}/control/samples"))["samples"][0]
    assert after["reviewed"] == after["drawn"] == len(keys)
    decided = events(w, "control.review.decide", "researcher2")
    assert decided.count(("control.review.decide", "ok")) == len(keys)


def test_a_reviewer_decides_only_claims_of_the_sample(rworld: World) -> None:
    w = rworld
    pid = with_member(w, control_project(w))
    ok(w.call("researcher1", "POST", f"/projects/{pid}/control/reviewers",
              json={"account_id": w.ids["researcher2"], "training": TRAINING}))  # fmt: skip
    drawn = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/samples"))
    base = f"/projects/{pid}/control/samples/{drawn['id']}"
    with w.hub.session() as s:
        sampled = set(s.scalars(select(SampledClaim.claim_key).where(SampledClaim.sample_id == drawn["id"])))
    outside = next(k for k in range(1, 10_000_000) if k not in sampled)
    improper = {"decision": "improper", "reason": "doublon", "error_amount": 1.0}
    for body in ({"decision": "proper"}, improper):
        r = w.call("researcher2", "POST", f"{base}/claims/{outside}/decision", json=body)
        assert r.status_code == 404 and "not in sample" in r.json()["detail"], r.text
    assert w.call("researcher2", "GET", f"{base}/claims/{outside}").status_code == 404
    with w.hub.session() as s:
        decided = s.scalar(select(func.count()).where(SampledClaim.sample_id == drawn["id"],
                                                      SampledClaim.decision.is_not(None)))  # fmt: skip
    assert decided == 0
    # the sample of another project, asked through this one's address, is none of its samples
    other = with_member(w, control_project(w))
    theirs = ok(w.call("researcher1", "POST", f"/projects/{other}/control/samples"))
    key = next(iter(sampled))
    for sid in (theirs["id"], theirs["id"] + 100_000):
        r = w.call("researcher2", "POST", f"/projects/{pid}/control/samples/{sid}/claims/{key}/decision",
                   json={"decision": "proper"})  # fmt: skip
        assert (r.status_code, r.json()["detail"]) == (404, f"no sample {sid}")
    # an amount in error above the amount paid, or a proper claim with a reason, is refused
    queue = ok(w.call("researcher2", "GET", f"{base}/claims"))["claims"]
    c = queue[0]
    r = w.call("researcher2", "POST", f"{base}/claims/{c['claim_key']}/decision",
               json={"decision": "improper", "reason": "doublon", "error_amount": c["amount"] + 1})  # fmt: skip
    assert r.status_code == 422
    r = w.call("researcher2", "POST", f"{base}/claims/{c['claim_key']}/decision",
               json={"decision": "proper", "reason": "doublon"})  # fmt: skip
    assert r.status_code == 422


def test_nothing_is_released_from_a_sample_nobody_reviewed(rworld: World) -> None:
    w = rworld
    pid = with_member(w, control_project(w))
    drawn = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/samples"))
    r = w.call("researcher1", "POST", f"/projects/{pid}/control/samples/{drawn['id']}/estimate")
    assert r.status_code == 409 and r.json()["detail"].startswith(f"0 of {drawn['drawn']} claims reviewed")
    # a sample of no claims at all: a view with no paid claim in the period is not sampled
    empty = control_project(
        w,
        scope={
            "tables": {"ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_PAI_MNT", "BSE_REM_MNT"]},
            "population": {"period_start": "2010-01-01", "period_end": "2010-12-31"},
        },
    )
    r = w.call("researcher1", "POST", f"/projects/{empty}/control/samples")
    assert r.status_code in (409, 422), r.text
    with w.hub.session() as s:
        assert not s.scalars(select(RateEstimate).join(SampledClaim, SampledClaim.sample_id == RateEstimate.sample_id)
                             .where(SampledClaim.sample_id == drawn["id"])).first()  # fmt: skip
    assert ok(w.call("researcher1", "GET", f"/projects/{pid}/control/estimates")) == []
    assert events(w, "control.estimate.release", "researcher1")[-1] == ("control.estimate.release", "failed")


def test_the_operator_gets_nothing_from_any_control_route(rworld: World) -> None:
    """Every control operation of the schema, with real ids, as the operator: never a 2xx, every refusal recorded
    (the operator runs the platform and receives no project's outputs, let alone its people)."""
    w = rworld
    pid = with_member(w, control_project(w))
    ok(w.call("researcher1", "POST", f"/projects/{pid}/control/reviewers",
              json={"account_id": w.ids["researcher2"], "training": TRAINING}))  # fmt: skip
    drawn = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/samples"))
    key = ok(w.call("researcher2", "GET", f"/projects/{pid}/control/samples/{drawn['id']}/claims"))["claims"][0]
    with w.hub.session() as s:  # a lead and a lift of the project, stored as a run stores them
        from datetime import UTC, datetime

        run = ControlRun(project_id=pid, view_generation=1, run_by=w.ids["researcher1"], run_at=datetime.now(UTC),
                         rules=["volume"], thresholds={}, counts={"volume": 1})  # fmt: skip
        s.add(run)
        s.flush()
        lead = ControlLead(run_id=run.id, project_id=pid, rule="volume", subject_kind="beneficiary",
                           subject="P" * 20, provider=None, score=1.0,
                           evidence={"claims": [key["claim_key"]], "claims_total": 1, "numbers": {}})  # fmt: skip
        s.add(lead)
        s.commit()
        lead_id = lead.id
    lift = ok(w.call("researcher1", "POST", f"/projects/{pid}/control/leads/{lead_id}/lift", json={"reason": REASON}))
    ids = {"project_id": pid, "sample_id": drawn["id"], "claim_key": key["claim_key"], "lead_id": lead_id,
           "lift_id": lift["id"]}  # fmt: skip
    bodies = {
        "/runs": {"rules": ["volume"]}, "/lift": {"reason": REASON}, "/reviewers": {"account_id": w.ids["operator"],
        "training": TRAINING}, "/claims/{claim_key}/decision": {"decision": "proper"},
        "/lifts/{lift_id}/decision": {"decision": "approve", "reason": DECISION},
    }  # fmt: skip
    schema = w.client.get("/openapi.json").json()["paths"]
    called = 0
    operator = f"account:{w.ids['operator']}"
    for path, item in schema.items():
        if "/control" not in path:
            continue
        for method in item:
            url = re.sub(r"{(\w+)}", lambda m: str(ids[m.group(1)]), path)
            body = next((b for suffix, b in bodies.items() if path.endswith(suffix)), None)
            before = denials(w, operator)
            r = w.call("operator", method.upper(), url, json=body)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert denials(w, operator) == before + 1, (method, path)
            called += 1
    assert called >= 15
    with w.hub.session() as s:
        lifted = s.get(LiftRequest, lift["id"])
        assert lifted is not None and lifted.status == "requested"
        assert not s.scalar(select(func.count()).where(SampledClaim.sample_id == drawn["id"],
                                                       SampledClaim.decision.is_not(None)))  # fmt: skip


# -- the command line ------------------------------------------------------------------------------------------


def as_person(w: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point the CLI's HTTP client at the served app, as whoever ``who["who"]`` names (their session token)."""
    who = {"who": "researcher1"}

    def in_process(server: str) -> TestClient:
        return TestClient(w.client.app, headers=w.headers(who["who"]))

    monkeypatch.setattr(apiclient, "client", in_process)
    return who


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, ["control", *(str(a) for a in args)])


@pytest.mark.parametrize("lworld", ["sqlite"], indirect=True)
def test_the_leads_commands_ask_the_api_as_a_person(lworld: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = lworld
    who = as_person(w, monkeypatch)
    pid = leads_project(w)
    bad = cli("leads", "run", pid, "--rule", "fraud")
    assert bad.exit_code == 1 and "error 422: unknown rule 'fraud'" in bad.output
    done = cli("leads", "run", pid, "--rule", "paper")
    assert done.exit_code == 0 and re.search(r"run \d+ \(view \d+\): paper \d+", done.output), done.output
    listed = cli("leads", "list", pid)
    assert listed.exit_code == 0 and "[paper] beneficiary" in listed.output, listed.output
    lead = int(re.findall(r"lead (\d+) \[paper\]", listed.output)[0])
    asked = cli("leads", "lift", pid, lead, "--reason", REASON)
    assert asked.exit_code == 0, asked.output
    lift = int(re.findall(r"lift request (\d+) recorded", asked.output)[0])
    assert "own" not in cli("leads", "decide", lift, "--approve", "--reason", DECISION).output  # refused: exit 1
    who["who"] = "reviewer1"  # approved the control project
    waiting = cli("leads", "lifts")
    assert waiting.exit_code == 0 and f"request {lift} (project {pid}, lead {lead}" in waiting.output
    decided = cli("leads", "decide", lift, "--approve", "--reason", DECISION)
    assert decided.exit_code == 0 and f"request {lift}: approved" in decided.output
    refused = cli("leads", "identity", pid, lift)
    assert refused.exit_code == 1 and "error 403" in refused.output
    who["who"] = "researcher1"
    shown = cli("leads", "identity", pid, lift)
    assert shown.exit_code == 0 and json.loads(shown.output)["nir"], shown.output
    assert "shown" in cli("leads", "list", pid).output
    who["who"] = "operator"
    for args in (("leads", "list", pid), ("leads", "lifts"), ("leads", "run", pid)):
        r = cli(*args)
        assert r.exit_code == 1 and "error 403" in r.output, (args, r.output)


@pytest.mark.parametrize("rworld", ["sqlite"], indirect=True)
def test_the_rate_commands_ask_the_api_as_a_person(rworld: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = rworld
    who = as_person(w, monkeypatch)
    pid = with_member(w, control_project(w))
    assert cli("rate", "designate", pid, w.ids["researcher2"], "--training", TRAINING).exit_code == 0
    drawn = cli("rate", "draw", pid)
    assert drawn.exit_code == 0, drawn.output
    sid, n = (int(x) for x in re.findall(r"sample (\d+): (\d+) claims drawn", drawn.output)[0])
    listed = cli("rate", "samples", pid)
    assert f"sample {sid}" in listed.output and f"0 of {n} claims reviewed" in listed.output, listed.output
    assert "trained reviewer: account" in listed.output
    assert cli("rate", "queue", pid, sid).exit_code == 1  # who drew it does not review it
    who["who"] = "researcher2"
    queue = cli("rate", "queue", pid, sid, "--json")
    claims = [json.loads(line) for line in queue.output.splitlines()]
    assert len(claims) == n
    keys = [c["claim_key"] for c in claims]
    improper = improper_across_people(w, pid, keys, 4)
    shown = cli("rate", "claim", pid, sid, keys[0])
    assert shown.exit_code == 0 and json.loads(shown.output)["claim_key"] == keys[0]
    for c in claims:
        if c["claim_key"] in improper:
            args: tuple[Any, ...] = ("--improper", "--reason", "doublon", "--amount", c["amount"])
        else:
            args = ("--proper",)
        r = cli("rate", "review", pid, sid, c["claim_key"], *args)
        assert r.exit_code == 0, r.output
    assert "to review" not in cli("rate", "queue", pid, sid).output
    who["who"] = "researcher1"
    released = cli("rate", "release", pid, sid)
    assert released.exit_code == 0 and f"sample {sid}: estimated improper payments: " in released.output
    assert f"from {n} reviewed claims" in cli("rate", "show", pid).output
