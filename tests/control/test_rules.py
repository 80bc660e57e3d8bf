# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The rules against injected anomalies (issue 17, items 1 and 2): precision and recall per rule family on a small
hub, every lead with its evidence, people by pseudonym only, thresholds read from the settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hygie.control import leads as leads_mod
from hygie.control.leads import ControlLead, run
from hygie.control.measure import measure, table
from hygie.control.rules import DEFAULT_RULES, FAMILIES, RULES, normalise_contact, rings_of
from hygie.governance.errors import Invalid
from tests.control.rate_world import actor
from tests.portal.world import World

from .leads_world import anomalous_delivery, leads_project, leads_template, leads_world  # noqa: F401

PRECISION_FLOOR = 0.9
RECALL_FLOOR = {
    "after_death": 0.9,
    "volume": 0.9,
    "duplicate": 0.9,
    "outlier": 0.5,
    "outlier_multivariate": 0.5,
    "paper": 0.9,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, leads_template: object) -> Iterator[World]:  # noqa: F811
    yield from leads_world(tmp_path_factory.mktemp("control-rules"), leads_template)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def project_id(world: World) -> int:
    return leads_project(world)


def test_each_rule_family_finds_its_injected_anomalies_with_high_precision(
    world: World,
    project_id: int,
    anomalous_delivery: tuple[Path, Path],  # noqa: F811
) -> None:
    assert run(world.hub, actor(world, "researcher1"), project_id).rules == list(DEFAULT_RULES)
    done = run(world.hub, actor(world, "researcher1"), project_id, list(RULES))
    scores = measure(world.hub, done.id, anomalous_delivery[1])
    print("\n" + table(scores))
    for score in scores:
        assert score.injected >= 2, score
        assert score.precision is not None and score.precision >= PRECISION_FLOOR, table(scores)
        assert score.recall is not None and score.recall >= RECALL_FLOOR[score.family], table(scores)
    # Every lead carries its evidence: claim keys of the view, and the numbers that fired it.
    with world.hub.session() as s:
        found = s.scalars(select(ControlLead).where(ControlLead.run_id == done.id)).all()
    assert {lead.rule for lead in found} == set(RULES) and set(FAMILIES) <= set(RULES)
    for lead in found:
        assert lead.evidence["claims"] and lead.evidence["claims_total"] >= len(lead.evidence["claims"])
        assert all(isinstance(k, int) for k in lead.evidence["claims"]) and lead.evidence["numbers"]
        assert len(lead.subject) == 17 and (lead.provider is None or len(lead.provider) == 17)
    # No clear number of anyone in a lead: neither the delivery's NIRs nor its providers' numbers.
    text = json.dumps([(lead.subject, lead.provider, lead.evidence) for lead in found])
    truth = json.loads(anomalous_delivery[1].read_text())["anomalies"]
    for item in truth:
        for key in ("nir", "provider"):
            if key in item:
                assert item[key] not in text


def test_a_threshold_is_a_setting_and_an_unknown_rule_is_refused(world: World, project_id: int) -> None:
    who = actor(world, "researcher1")
    settings = world.hub.settings
    before = settings.control_max_daily_acts
    settings.control_max_daily_acts = {"default": 10_000}
    try:
        done = run(world.hub, who, project_id, ["volume"])
    finally:
        settings.control_max_daily_acts = before
    assert done.counts == {"volume": 0} and done.thresholds["max_daily_acts"] == {"default": 10_000}
    with pytest.raises(Invalid, match="unknown rule 'ghost'"):
        run(world.hub, who, project_id, ["volume", "ghost"])


def test_contacts_are_compared_keyed_and_normalised() -> None:
    assert normalise_contact("phone", "06 12 34 56 78") == normalise_contact("phone", "+33 6 12 34 56 78")
    assert normalise_contact("address", "3, Rue de l'Église", "75001") == "3 rue de l eglise 75001"
    keyed = {"a": [("phone", b"x")], "b": [("phone", b"x")], "c": [("phone", b"x"), ("address", b"y")],
             "d": [("address", b"y")]}  # fmt: skip
    assert rings_of(keyed, 3) == {"a": ("phone", 3), "b": ("phone", 3), "c": ("phone", 3)}
    assert leads_mod.CONTACT_KEY == "control-contact"
