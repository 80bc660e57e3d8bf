# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""ATTACK: read a control project's outputs from a copy of the database, without the hub's keys. A lead's
evidence (claims, amounts, the numbers that fired the rule) and the reasons of a lift request (an investigation
described) are sealed at rest; what the application reads back is unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from hygie.control.leads import ControlLead, run
from hygie.control.lifting import LiftRequest, decide, request
from hygie.db.sealed import PREFIX
from tests.control.rate_world import actor
from tests.portal.world import World

from .leads_world import (  # noqa: F401  (fixtures)
    anomalous_delivery,
    either_world,
    leads_pg_template,
    leads_project,
    leads_template,
)

REASON = "Enquête de contrôle sur un cabinet : facturation en double (dossier 2026-31)"
DECISION = "Piste étayée par ses preuves ; l'enquête est ouverte par le service du contrôle"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from either_world(request, tmp_path_factory.mktemp("control-at-rest"))


def test_lead_evidence_and_lift_reasons_are_sealed_at_rest(world: World) -> None:
    pid = leads_project(world)
    done = run(world.hub, actor(world, "researcher1"), pid, ["volume", "duplicate"])
    with world.hub.session() as s:
        leads = s.scalars(select(ControlLead).where(ControlLead.run_id == done.id)).all()
        assert leads and all(lead.evidence["claims"] for lead in leads)  # read back as the run wrote them
        lead_id = leads[0].id
    lift = request(world.hub, actor(world, "researcher1"), lead_id, REASON)
    decide(world.hub, actor(world, "reviewer1"), lift.id, True, DECISION)
    with world.hub.engine.connect() as raw:  # what a copy of the database holds
        stored = raw.execute(text("SELECT evidence FROM control_lead WHERE run_id = :r"), {"r": done.id}).all()
        reasons = raw.execute(text("SELECT reason, decision_reason FROM control_lift WHERE id = :i"),
                              {"i": lift.id}).one()  # fmt: skip
    for (evidence,) in stored:
        body = evidence if isinstance(evidence, str) else json.dumps(evidence)
        assert PREFIX in body and "claims" not in body and "numbers" not in body, body[:80]
    assert all(r.startswith(PREFIX) and "Enquête" not in r and "enquête" not in r for r in reasons)
    with world.hub.session() as s:
        shown = s.get(LiftRequest, lift.id)
        assert shown is not None and (shown.reason, shown.decision_reason) == (REASON, DECISION)
