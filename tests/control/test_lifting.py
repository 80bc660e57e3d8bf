# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Lifting a lead's pseudonym (issue 17, item 1): a recorded two-person decision, alerted to the DPO, and only then
the identity. Attacked: the requester approving their own request, the same person on both sides, an account the
requester made or one of the requester's creation lineage, someone else reading the approved identity, a second
reading, a stale approval, and a showing whose record fails (then nothing is shown)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hygie.audit.alerts import evaluate
from hygie.audit.events import AuditEvent
from hygie.control import lifting
from hygie.control.leads import ControlLead, run
from hygie.control.lifting import LiftRequest, decide, request, show
from hygie.governance.errors import Conflict, Denied, Invalid
from hygie.governance.models import Account
from hygie.portal.pages.web import SESSION_COOKIE
from tests.control.rate_world import actor
from tests.portal.world import World

from .leads_world import (  # noqa: F401  (fixtures)
    anomalous_delivery,
    either_world,
    leads_pg_template,
    leads_project,
    leads_template,
)

REASON = "Enquête de contrôle : soins facturés à des patients sans autre trace (dossier 2024-17)"
DECISION = "Piste étayée par les preuves de la règle ; enquête ouverte par le service du contrôle"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Separation of duties and the identity's one showing are checked on both databases.
    yield from either_world(request, tmp_path_factory.mktemp("control-lifting"))


@pytest.fixture(scope="module")
def found(world: World) -> dict[str, ControlLead]:
    pid = leads_project(world)
    done = run(world.hub, actor(world, "researcher1"), pid, ["paper", "volume"])
    with world.hub.session() as s:
        rows = s.scalars(select(ControlLead).where(ControlLead.run_id == done.id)).all()
        s.expunge_all()
    return {"paper": next(r for r in rows if r.rule == "paper"), "volume": next(r for r in rows if r.rule == "volume")}


def browser(world: World, name: str) -> tuple[TestClient, str]:
    client = TestClient(world.client.app, base_url="https://testserver", follow_redirects=False)
    token = world.login(name)
    client.cookies.set(SESSION_COOKIE, token)
    return client, hashlib.sha256(b"hygie-page-csrf\x00" + token.encode()).hexdigest()


def _set_creator(world: World, name: str, created_by: str) -> str:
    with world.hub.session() as s:
        account = s.get(Account, world.ids[name])
        assert account is not None
        before, account.created_by = account.created_by, created_by
        s.commit()
    return before


def test_the_requester_never_approves_and_neither_does_their_lineage(
    world: World, found: dict[str, ControlLead]
) -> None:
    asker = actor(world, "researcher1")
    lead = found["paper"]
    with pytest.raises(Invalid, match="reason"):
        request(world.hub, asker, lead.id, "too short")
    with pytest.raises(Denied):  # not a member of the project: cannot even ask
        request(world.hub, actor(world, "researcher2"), lead.id, REASON)
    lift = request(world.hub, asker, lead.id, REASON)
    with pytest.raises(Conflict, match="still open"):
        request(world.hub, asker, lead.id, REASON)
    # the requester's own role may not approve; nor may a member of the project
    with pytest.raises(Denied, match="second person"):
        decide(world.hub, asker, lift.id, True, DECISION)
    # even where the requester's role could approve, the same person is refused
    settings = world.hub.settings
    roles = settings.control_lift_approver_roles
    settings.control_lift_approver_roles = [*roles, "researcher"]
    try:
        with pytest.raises(Denied, match="not the one who asked"):
            decide(world.hub, asker, lift.id, True, DECISION)
    finally:
        settings.control_lift_approver_roles = roles
    # an account the requester created, and one of the requester's creation lineage, are not a second person
    requester_ref = f"account:{world.ids['researcher1']}"
    before = _set_creator(world, "reviewer1", requester_ref)
    try:
        with pytest.raises(Denied, match="created by the one who asked"):
            decide(world.hub, actor(world, "reviewer1"), lift.id, True, DECISION)
    finally:
        _set_creator(world, "reviewer1", before)
    operator = f"account:{world.ids['operator']}"
    before_a, before_b = _set_creator(world, "reviewer1", operator), _set_creator(world, "researcher1", operator)
    try:
        with pytest.raises(Denied, match="created by the same person"):
            decide(world.hub, actor(world, "reviewer1"), lift.id, True, DECISION)
    finally:
        _set_creator(world, "reviewer1", before_a)
        _set_creator(world, "researcher1", before_b)
    # nothing is shown before a second person approves
    with pytest.raises(Denied, match="not been approved"):
        show(world.hub, asker, lift.id)
    with world.hub.session() as s:
        stored = s.get(LiftRequest, lift.id)
        assert stored is not None and stored.status == "requested" and stored.decided_by is None
        refused = s.scalars(select(AuditEvent).where(AuditEvent.action == "control.lift.decide",
                                                     AuditEvent.outcome == "denied")).all()  # fmt: skip
    assert len(refused) >= 4


def test_an_approved_lift_shows_the_identity_once_to_the_requester_recorded_and_alerted(
    world: World,
    found: dict[str, ControlLead],
    anomalous_delivery: tuple[Path, Path],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    truth = json.loads(anomalous_delivery[1].read_text())["anomalies"]
    asker = actor(world, "researcher1")
    with world.hub.session() as s:
        lift_id = s.scalars(select(LiftRequest.id).where(LiftRequest.lead_id == found["paper"].id)).one()
    approved = decide(world.hub, actor(world, "reviewer2"), lift_id, True, DECISION)
    assert approved.status == "approved" and approved.decided_by == f"account:{world.ids['reviewer2']}"
    with pytest.raises(Conflict, match="decided already"):
        decide(world.hub, actor(world, "dpo"), lift_id, False, DECISION)
    # only the requester sees it; the approver does not
    for name in ("reviewer2", "researcher2", "dpo"):
        with pytest.raises(Denied, match="only the person who asked"):
            show(world.hub, actor(world, name), lift_id)

    # a showing whose record fails shows nothing, and the request stays unshown
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(lifting, "record", broken)
    with pytest.raises(RuntimeError):
        show(world.hub, asker, lift_id)
    monkeypatch.undo()
    with world.hub.session() as s:
        assert s.get(LiftRequest, lift_id).status == "approved"  # type: ignore[union-attr]

    lifted = show(world.hub, asker, lift_id)
    paper = {t["nir"] for t in truth if t["kind"] == "paper"}
    assert lifted.nir in paper and lifted.last_name and lifted.pseudonym == found["paper"].subject
    with pytest.raises(Conflict, match="shown once already"):
        show(world.hub, asker, lift_id)

    # a provider's pseudonym lifts to the provider's number, through the view
    lift = request(world.hub, asker, found["volume"].id, REASON)
    decide(world.hub, actor(world, "dpo"), lift.id, True, DECISION)
    provider = show(world.hub, asker, lift.id)
    assert provider.provider_number in {t["provider"] for t in truth if t["kind"] == "volume"}

    # an approval older than the window is of no use
    stale = request(world.hub, asker, found["volume"].id, REASON)
    decide(world.hub, actor(world, "reviewer1"), stale.id, True, DECISION)
    with world.hub.session() as s:
        row = s.get(LiftRequest, stale.id)
        assert row is not None
        row.decided_at = datetime.now(UTC) - timedelta(minutes=world.hub.settings.control_lift_window_minutes + 1)
        s.commit()
    with pytest.raises(Conflict, match="older than"):
        show(world.hub, asker, stale.id)

    # every step on the record; the DPO alerted of each request and each showing (and attempts)
    with world.hub.session() as s:
        steps = [(e.action, e.outcome) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.action.like("control.lift.%")).order_by(AuditEvent.id))]  # fmt: skip
    assert steps.count(("control.lift.show", "ok")) == 2 and ("control.lift.show", "denied") in steps
    assert ("control.lift.approve", "ok") in steps and steps.count(("control.lift.request", "ok")) == 3
    raised = [a for a in evaluate(world.hub) if a.rule == "identity_reveal"]
    mine = {a.evidence["step"] for a in raised if a.actor == f"account:{world.ids['researcher1']}"}
    assert mine >= {"request", "show"}


def test_the_pages_carry_the_two_person_lift(world: World, found: dict[str, ControlLead]) -> None:
    lead = found["paper"]
    pid = lead.project_id
    asker, asker_csrf = browser(world, "researcher1")
    sent = asker.post(f"/recherche/projets/{pid}/pistes/{lead.id}/levee", data={"csrf": asker_csrf, "motif": REASON})
    assert sent.status_code == 303
    listing = asker.get(f"/recherche/projets/{pid}/pistes?fait=levee")
    assert "Votre demande de levée est enregistrée" in listing.text and "en attente" in listing.text
    with world.hub.session() as s:
        lift_id = s.scalars(select(LiftRequest.id).where(LiftRequest.status == "requested")).one()
    # the requester's page has no decision; a reviewer's does, without any identity
    assert asker.get("/controle/levees").status_code == 403
    second, second_csrf = browser(world, "reviewer1")
    waiting = second.get("/controle/levees")
    assert waiting.status_code == 200 and REASON in waiting.text and lead.subject not in waiting.text
    decided = second.post(f"/controle/levees/{lift_id}",
                          data={"csrf": second_csrf, "decision": "approuver", "motif": DECISION})  # fmt: skip
    assert decided.status_code == 303
    assert "Voir l'identité" in asker.get(f"/recherche/projets/{pid}/pistes").text
    shown = asker.post(f"/recherche/projets/{pid}/levees/{lift_id}/voir", data={"csrf": asker_csrf})
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    assert lead.subject in shown.text and "NIR" in shown.text
    again = asker.post(f"/recherche/projets/{pid}/levees/{lift_id}/voir", data={"csrf": asker_csrf})
    assert again.status_code == 409
