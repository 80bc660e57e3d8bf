# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The review queue and the released rate (issue 17, items 3, 4 and 6): trained reviewers who did not draw the
sample mark each claim with a reason and the amount in error, every decision on the record before it is returned;
the rate is released only from enough reviewed claims, stated as an estimate with its interval and n."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hygie import apiclient
from hygie.audit.events import AuditEvent
from hygie.control import review
from hygie.control.estimate import StratumFrame, estimate_from_claims
from hygie.control.rate_cli import rate_app
from hygie.control.review import claim_detail, decide, designate, headline, overview, queue, release
from hygie.control.sample import ControlSample, SampledClaim, draw, verify
from hygie.governance.errors import Conflict, Denied, Invalid, NotFound
from hygie.portal.pages.web import SESSION_COOKIE
from tests.portal.world import World

from .rate_world import (  # noqa: F401  (fixtures)
    actor,
    control_delivery,
    control_project,
    improper_across_people,
    postgres_template,
    rate_world,
    sqlite_template,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from rate_world(request, tmp_path_factory.mktemp("control-review"))


@pytest.fixture(scope="module")
def project_id(world: World) -> int:
    pid = control_project(world)
    for member in ("researcher2", "researcher3"):
        if member not in world.ids:
            continue
        r = world.call("researcher1", "POST", f"/projects/{pid}/members", json={"account_id": world.ids[member]})
        assert r.status_code == 200, r.text
    return pid


@pytest.fixture(scope="module")
def sample(world: World, project_id: int) -> ControlSample:
    return draw(world.hub, actor(world, "researcher1"), project_id, seed=7)


TRAINING = "CERT-style medical review course, 2 days, 2026"


def test_only_the_requester_designates_trained_reviewers_among_members(world: World, project_id: int) -> None:
    hub, r2 = world.hub, world.ids["researcher2"]
    with pytest.raises(Denied, match="only the requester"):
        designate(hub, actor(world, "researcher2"), project_id, r2, TRAINING)
    with pytest.raises(Denied, match="designates themselves"):
        designate(hub, actor(world, "researcher1"), project_id, world.ids["researcher1"], TRAINING)
    with pytest.raises(Denied):
        designate(hub, actor(world, "reviewer1"), project_id, r2, TRAINING)
    with pytest.raises(Invalid, match="not a researcher member"):
        designate(hub, actor(world, "researcher1"), project_id, world.ids["reviewer1"], TRAINING)
    with pytest.raises(Invalid, match="e-mail address"):
        designate(hub, actor(world, "researcher1"), project_id, r2, "trained by jean.dupont@example.org")
    row = designate(hub, actor(world, "researcher1"), project_id, r2, TRAINING)
    assert row.account_id == r2 and row.designated_by == world.ids["researcher1"]
    with pytest.raises(Conflict, match="already a claim reviewer"):
        designate(hub, actor(world, "researcher1"), project_id, r2, TRAINING)
    with hub.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "control.reviewer.designate")).all()
    assert [e.outcome for e in events].count("ok") == 1 and len(events) == 7


def test_a_trained_reviewer_works_the_queue_and_every_decision_is_recorded(
    world: World, project_id: int, sample: ControlSample
) -> None:
    hub, me = world.hub, actor(world, "researcher2")
    items = queue(hub, me, sample.id).items
    assert len(items) == sum(v["drawn"] for v in sample.strata.values()) and all(i.decision is None for i in items)
    first, second = items[0], items[1]
    # the claim as the view holds it: the project's claim key and approved columns only
    detail = claim_detail(hub, me, sample.id, first.claim_key)
    assert [row["CLE_DCI_JNT"] for row in detail["rows"]] == [first.claim_key]
    assert set(detail["rows"][0]) <= {
        "CLE_DCI_JNT",
        "EXE_SOI_DTD",
        "PRS_NAT_REF",
        "PRS_PAI_MNT",
        "BSE_REM_MNT",
        "BEN_NIR_PSA",
    }
    assert decide(hub, me, sample.id, first.claim_key, "proper").error_amount == 0.0
    done = decide(
        hub, me, sample.id, second.claim_key, "improper", reason="erreur-cotation", error_amount=second.amount / 2
    )
    assert done.decision == "improper" and done.reviewed_by == world.ids["researcher2"]
    with hub.session() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "control.review.decide", AuditEvent.outcome == "ok")
        ).all()
    assert [(e.detail["claim_key"], e.detail["decision"]) for e in events] == [
        (first.claim_key, "proper"),
        (second.claim_key, "improper"),
    ]
    assert events[1].detail["reason"] == "erreur-cotation" and events[1].project_id == project_id
    # bad input: each a clear error, none stored
    outside = max(i.claim_key for i in items) + 1_000_000
    with pytest.raises(NotFound, match=f"claim {outside} is not in sample {sample.id}"):
        decide(hub, me, sample.id, outside, "proper")
    with pytest.raises(NotFound, match="no sample 999"):
        decide(hub, me, 999, first.claim_key, "proper")
    third = items[2]
    for kwargs, message in (
        ({"decision": "improper", "reason": "fraud"}, "needs a reason, one of"),
        ({"decision": "improper", "reason": "doublon", "error_amount": third.amount + 1}, "at most the amount paid"),
        ({"decision": "improper", "reason": "doublon", "error_amount": 0.0}, "above 0"),
        ({"decision": "proper", "error_amount": 3.0}, "no reason and no amount"),
        ({"decision": "maybe"}, "decision is 'proper' or 'improper'"),
    ):
        with pytest.raises(Invalid, match=message):
            decide(hub, me, sample.id, third.claim_key, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="already reviewed"):
        decide(hub, me, sample.id, first.claim_key, "improper", reason="doublon", error_amount=1.0)
    # the requester drew the sample and is not a trained reviewer; a reviewer never judges a sample they drew
    with pytest.raises(Denied, match="trained claim reviewers"):
        queue(hub, actor(world, "researcher1"), sample.id)
    own = draw(hub, me, project_id, seed=99)
    with pytest.raises(Denied, match=f"you drew sample {own.id}"):
        decide(hub, me, own.id, third.claim_key, "proper")
    # the DPO is told why at the project's address; by a bare sample id, nothing (no sample's existence leaks)
    with pytest.raises(Denied, match="never reaches project data"):
        queue(hub, actor(world, "dpo"), sample.id, project_id=project_id)
    with pytest.raises(NotFound, match=f"no sample {sample.id}"):
        queue(hub, actor(world, "dpo"), sample.id)


def test_a_decision_whose_record_fails_is_not_stored(
    world: World, sample: ControlSample, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = actor(world, "researcher2")
    pending = next(i for i in queue(world.hub, me, sample.id).items if i.decision is None)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(review, "record", broken)
    with pytest.raises(RuntimeError):
        decide(world.hub, me, sample.id, pending.claim_key, "proper")
    monkeypatch.undo()
    with world.hub.session() as s:
        claim = s.scalars(
            select(SampledClaim).where(SampledClaim.sample_id == sample.id, SampledClaim.claim_key == pending.claim_key)
        ).one()
    assert claim.decision is None


def test_the_rate_is_released_only_from_enough_reviewed_claims_and_stated_as_an_estimate(
    world: World, project_id: int, sample: ControlSample
) -> None:
    hub, me, lead = world.hub, actor(world, "researcher2"), actor(world, "researcher1")
    with pytest.raises(Conflict, match=r"2 of .* claims reviewed: an estimate is released from at least 11"):
        release(hub, lead, sample.id)
    pending = [i for i in queue(hub, me, sample.id).items if i.decision is None]
    improper = improper_across_people(world, project_id, [i.claim_key for i in pending], 5)
    for item in pending:
        if item.claim_key in improper:
            decide(
                hub, me, sample.id, item.claim_key, "improper", reason="documentation-absente", error_amount=item.amount
            )
        else:
            decide(hub, me, sample.id, item.claim_key, "proper")
    estimate = release(hub, lead, sample.id)
    # the same numbers as the estimator on the stored reviews
    with hub.session() as s:
        rows = s.scalars(select(SampledClaim).where(SampledClaim.sample_id == sample.id)).all()
    reviewed: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        reviewed.setdefault(row.stratum, []).append((row.amount, row.error_amount or 0.0))
    frame = [StratumFrame(k, v["claims"], v["amount"], v["mean_square"]) for k, v in sorted(sample.strata.items())]
    expected = estimate_from_claims(frame, reviewed)
    assert estimate.rate == pytest.approx(float(expected.rate)) and 0 < estimate.rate < 1
    assert estimate.low <= estimate.rate <= estimate.high and estimate.reviewed == estimate.drawn == len(rows)
    assert estimate.improper_amount == pytest.approx(estimate.rate * estimate.total_amount)
    text = headline(estimate)
    assert text.startswith("estimated improper payments: ") and f"from {len(rows)} reviewed claims" in text
    assert "fraud" not in text
    # oversight roles see the released numbers, not the data; members too; the release is on the record
    seen = overview(hub, actor(world, "reviewer1"), project_id)
    assert seen.project.id == project_id and [p.username for p in seen.reviewers] == ["researcher2"]
    released = next(o for o in seen.samples if o.sample.id == sample.id)
    assert released.estimate is not None and released.estimate.id == estimate.id and released.reviewed == len(rows)
    with hub.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "control.estimate.release")).all()
    assert [e.outcome for e in events] == ["failed", "ok"]
    assert events[1].detail["rate"] == estimate.rate and events[1].detail["reviewed"] == len(rows)


def browser(world: World, name: str) -> tuple[TestClient, str]:
    """A browser signed in as ``name`` (the session cookie) and the CSRF token its forms carry."""
    client = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    token = world.login(name)
    client.cookies.set(SESSION_COOKIE, token)
    return client, hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()


def test_the_pages_show_the_rate_with_its_interval_and_n_and_carry_the_review(
    world: World, project_id: int, sample: ControlSample
) -> None:
    base = f"/recherche/projets/{project_id}/paiements-indus"
    lead, lead_csrf = browser(world, "researcher1")
    page = lead.get(base)
    assert page.status_code == 200, page.text
    html = page.text
    assert "Ce taux n'est pas une mesure de la fraude" in html and "<svg" in html and "Neyman" in html
    assert re.search(r"Paiements indus estimés : \d+,\d\d\xa0% \(IC à 95 % : \d+,\d\d\xa0% – \d+,\d\d\xa0%\), "
                     r"à partir de \d+ dossiers relus", html)  # fmt: skip
    assert sample.seed in html and "Tirer un échantillon" in html
    assert 'id="paiements-indus"' in lead.get(f"/recherche/projets/{project_id}").text  # linked from the project
    other = lead.get(f"/recherche/projets/{world.active_project()}")  # a research project: no such link
    assert other.status_code == 200 and 'id="paiements-indus"' not in other.text
    # an oversight role reads the released rate, without the forms; a stranger's answer is a missing project's
    seen = browser(world, "reviewer1")[0].get(base)
    assert seen.status_code == 200 and "IC à 95 %" in seen.text and "Tirer un échantillon" not in seen.text
    assert "Strates de l" not in seen.text  # claim counts per stratum: the project's researchers only
    assert browser(world, "operator")[0].get(base).status_code == 403  # operators receive no project's outputs
    assert browser(world, "citizen1")[0].get(base).status_code == 404
    # a draw through the page; its reviewer works it through the pages
    assert lead.post(f"{base}/tirage", data={"csrf": lead_csrf}).status_code == 303
    with world.hub.session() as s:
        newest = s.scalars(select(ControlSample).order_by(ControlSample.id.desc())).first()
        assert newest is not None and newest.drawn_by == world.ids["researcher1"]
        key = s.scalars(select(SampledClaim.claim_key).where(SampledClaim.sample_id == newest.id)).first()
    reviewer, csrf = browser(world, "researcher2")
    queue_page = reviewer.get(f"{base}/echantillons/{newest.id}")
    assert queue_page.status_code == 200 and "à relire" in queue_page.text
    claim = reviewer.get(f"{base}/echantillons/{newest.id}/dossiers/{key}")
    assert claim.status_code == 200 and "CLE_DCI_JNT" in claim.text and "Non conforme" in claim.text
    form = {"csrf": csrf, "decision": "non-conforme", "motif": "doublon", "montant": "0,01"}
    assert reviewer.post(f"{base}/echantillons/{newest.id}/dossiers/{key}", data=form).status_code == 303
    with world.hub.session() as s:
        done = s.scalars(
            select(SampledClaim).where(SampledClaim.sample_id == newest.id, SampledClaim.claim_key == key)
        ).one()
    assert (done.decision, done.reason, done.error_amount) == ("improper", "doublon", 0.01)
    # refusals are pages saying why: a forged form, a claim outside the sample, the drawer's own queue
    assert (
        reviewer.post(f"{base}/echantillons/{newest.id}/dossiers/{key}", data={**form, "csrf": "x"}).status_code == 403
    )
    outside = reviewer.get(f"{base}/echantillons/{newest.id}/dossiers/1234567890")
    assert outside.status_code == 404 and "1234567890" in outside.text
    assert lead.get(f"{base}/echantillons/{newest.id}").status_code == 403
    assert (
        reviewer.get(f"/recherche/projets/{project_id + 999}/paiements-indus/echantillons/{newest.id}").status_code
        == 404
    )


def test_the_command_asks_the_api_as_a_person_and_the_operator_gets_nothing(
    world: World, project_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hygie control rate show` never opens the hub: it asks the API with its holder's token. A member and the
    oversight roles read the released estimates; the operator runs the platform and receives no project's outputs
    (the console once printed them to whoever held the hub's keys)."""
    as_who = {"who": "researcher1"}

    def in_process(server: str) -> TestClient:
        return TestClient(world.client.app, headers=world.headers(as_who["who"]))

    monkeypatch.setattr(apiclient, "client", in_process)
    result = CliRunner().invoke(rate_app, ["show", str(project_id)])
    assert result.exit_code == 0, result.output
    assert re.search(r"sample \d+: estimated improper payments: \d+\.\d\d % \(95 % CI \d+\.\d\d–\d+\.\d\d\), "
                     r"from \d+ reviewed claims", result.output)  # fmt: skip
    as_json = CliRunner().invoke(rate_app, ["show", str(project_id), "--json"])
    assert json.loads(as_json.output.splitlines()[0])["reviewed"] >= 11
    for who in ("dpo", "auditor", "reviewer1"):
        assert world.call(who, "GET", f"/projects/{project_id}/control/estimates").json(), who
    as_who["who"] = "operator"
    refused = CliRunner().invoke(rate_app, ["show", str(project_id)])
    assert refused.exit_code == 1 and "error 403" in refused.output and "improper" not in refused.output
    assert world.call("operator", "GET", f"/projects/{project_id}/control/estimates").status_code == 403
    stranger = world.call("citizen1", "GET", f"/projects/{project_id}/control/estimates")
    assert stranger.status_code == 404 and stranger.json()["detail"] == f"no project {project_id}"
    missing = world.call("researcher1", "GET", f"/projects/{project_id + 999}/control/estimates")
    assert missing.status_code == 404
    with world.hub.session() as s:
        reads = s.scalars(select(AuditEvent).where(AuditEvent.action == "control.estimate.read")).all()
    operator = f"account:{world.ids['operator']}"
    outcomes = [e.outcome for e in reads if e.actor == operator]
    assert outcomes[-2:] == ["denied", "denied"] and "ok" not in outcomes
    assert not [e for e in reads if e.actor == "console"]


def test_after_a_rebuild_of_the_view_the_old_sample_keeps_its_numbers_but_not_its_claims_rows(
    world: World, project_id: int, sample: ControlSample
) -> None:
    r = world.call("researcher1", "POST", f"/projects/{project_id}/refresh")
    assert r.status_code == 200, r.text
    me = actor(world, "researcher2")
    key = queue(world.hub, me, sample.id).items[0].claim_key
    with pytest.raises(Conflict, match="view was rebuilt since sample"):
        claim_detail(world.hub, me, sample.id, key)
    with pytest.raises(Conflict, match="can no longer be repeated"):
        verify(world.hub, actor(world, "researcher1"), sample.id)
    before = overview(world.hub, me, project_id).samples[0].estimate
    assert before is not None  # the estimate released before the rebuild stays readable
    # A new release would need the people its claims belong to (the threshold counts people): not countable now.
    with pytest.raises(Conflict, match="can no longer be counted"):
        release(world.hub, actor(world, "researcher1"), sample.id)
    after = overview(world.hub, me, project_id).samples[0].estimate
    assert after is not None and after.rate == pytest.approx(before.rate)
