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
from hygie.control.leads import ControlLead, ControlRun, provider_pseudonyms, run
from hygie.control.measure import OUTLIER_FAMILY_ROW, measure, table
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
    "outlier (family)": 0.7,
    "paper": 0.9,
}
"""Recall of each rule on the kind it is for (the multivariate rule: combined outliers), and of the outlier family
on both kinds; precision of each against its whole family (hygie.control.measure)."""


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
    assert OUTLIER_FAMILY_ROW in {score.family for score in scores}
    # One lead per provider and family: the multivariate rule leaves the univariate rule's providers to it.
    by_rule = {rule: {lead.subject for lead in found if lead.rule == rule} for rule in RULES}
    assert not by_rule["outlier"] & by_rule["outlier_multivariate"]
    # The multivariate rule is for what the univariate one misses: combined outliers it finds, the other does not.
    combined = _injected_providers(world, done.id, anomalous_delivery[1], "outlier_combined")
    assert len(by_rule["outlier_multivariate"] & combined) >= 2 and not by_rule["outlier"] & combined
    for lead in found:
        if lead.rule == "outlier_multivariate":
            metrics = lead.evidence["numbers"]["metrics"]
            assert len(metrics) >= world.hub.settings.control_isolation_min_metrics
            assert lead.evidence["numbers"]["anomaly_score"] > world.hub.settings.control_isolation_min_score
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


def _injected_providers(world: World, run_id: int, truth: Path, kind: str) -> set[str]:
    """The project pseudonyms of the providers injected with ``kind``."""
    numbers = sorted({i["provider"] for i in json.loads(truth.read_text())["anomalies"] if i["kind"] == kind})
    with world.hub.session() as s:
        project_id = s.get(ControlRun, run_id).project_id  # type: ignore[union-attr]
    return set(provider_pseudonyms(world.hub, project_id, numbers))


@pytest.mark.parametrize(("setting", "value"), [("control_isolation_min_z", 0.0), ("control_isolation_min_metrics", 4)])
def test_the_multivariate_floors_fail_when_its_threshold_is_absurd(
    world: World,
    project_id: int,
    anomalous_delivery: tuple[Path, Path],  # noqa: F811
    setting: str,
    value: float,
) -> None:
    """Any metric at the peers' median (z 0) fires on ordinary providers; four metrics of three fire on none: the
    floors of the test above would catch either, so they measure the threshold and not only the rule's code."""
    settings = world.hub.settings
    before = getattr(settings, setting)
    setattr(settings, setting, value)
    try:
        done = run(world.hub, actor(world, "researcher1"), project_id, ["outlier_multivariate"])
    finally:
        setattr(settings, setting, before)
    score = next(s for s in measure(world.hub, done.id, anomalous_delivery[1]) if s.family == "outlier_multivariate")
    assert (score.precision or 0.0) < PRECISION_FLOOR or (score.recall or 0.0) < RECALL_FLOOR[score.family], score


def test_a_provider_is_one_lead_of_the_outlier_family_even_when_both_rules_would_fire(
    world: World, project_id: int
) -> None:
    """With the univariate threshold lowered under the combined outliers' z-scores, the univariate rule reports
    providers the multivariate rule would report too; it leaves them to the univariate rule."""
    settings = world.hub.settings
    before = settings.control_outlier_robust_z
    settings.control_outlier_robust_z = 3.5
    try:
        done = run(world.hub, actor(world, "researcher1"), project_id, ["outlier", "outlier_multivariate"])
    finally:
        settings.control_outlier_robust_z = before
    with world.hub.session() as s:
        found = s.scalars(select(ControlLead).where(ControlLead.run_id == done.id)).all()
    uni = [lead for lead in found if lead.rule == "outlier"]
    both_ways = [lead for lead in uni if sum(1 for m in lead.evidence["numbers"]["metrics"].values()
                                             if m["robust_z"] >= settings.control_isolation_min_z) >= 2]  # fmt: skip
    assert both_ways, "no provider the two rules would both report: the test proves nothing"
    multi = {lead.subject for lead in found if lead.rule == "outlier_multivariate"}
    assert not multi & {lead.subject for lead in uni}


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
