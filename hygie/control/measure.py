# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Precision and recall of each rule family against the truth of injected anomalies (:mod:`hygie.synth.anomalies`).

For synthetic hubs only: the truth names people and providers by their synthetic numbers, which this module turns
into the project's pseudonyms with the hub's keys (as ingestion and the view build do) to compare them with the
leads of a run. Units compared, per family: the beneficiary (after_death, paper), the provider and day (volume),
the beneficiary, provider and day (duplicate), the provider (outlier).

The outlier family has two injected kinds and two rules. A rule's precision is against every injected unit of its
family (a univariate lead on a combined outlier is a true lead of the family); its recall is against the kind it is
for (``TARGET``: the univariate rule finds amounts × 6, the multivariate one combined outliers). One more row,
``outlier (family)``, takes the union of both rules' leads, one per provider (the multivariate rule leaves out the
providers the univariate one reports, so they are not counted twice) against both kinds together.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hygie.control.leads import ControlLead, ControlRun, provider_pseudonyms
from hygie.control.rules import FAMILIES, FAMILY, RULES
from hygie.governance.models import ProjectView
from hygie.governance.views import rekey
from hygie.hub import Hub


@dataclass(frozen=True)
class Score:
    family: str
    """The rule measured (named after its family, or measured against its family's truth: FAMILY)."""
    injected: int
    leads: int
    true_leads: int
    found: int

    @property
    def precision(self) -> float | None:
        return self.true_leads / self.leads if self.leads else None

    @property
    def recall(self) -> float | None:
        return self.found / self.injected if self.injected else None


KIND_FAMILY = {"outlier_combined": "outlier"}
"""The family an injected kind belongs to, when its name is not a family's."""
TARGET = {"outlier": "outlier", "outlier_multivariate": "outlier_combined"}
"""The injected kind a rule's recall is measured on, when it is not the whole family."""
OUTLIER_FAMILY_ROW = "outlier (family)"


def _unit(rule: str, subject: str, provider: str | None, numbers: dict[str, Any]) -> tuple[str, ...]:
    if rule == "volume":
        return (subject, str(numbers.get("day")))
    if rule == "duplicate":
        return (subject, provider or "", str(numbers.get("day")))
    return (subject,)


def measure(hub: Hub, run_id: int, truth: Path) -> list[Score]:
    """Per family: injected units, leads, leads that are injected units, and injected units found."""
    items = json.loads(Path(truth).read_text(encoding="utf-8"))["anomalies"]
    with hub.session() as session:
        run = session.get(ControlRun, run_id)
        if run is None:
            raise LookupError(f"no control run {run_id}")
        project_id = run.project_id
        version = session.scalar(
            select(ProjectView.pseudonym_version).where(
                ProjectView.project_id == project_id, ProjectView.generation == run.view_generation
            )
        )
        if version is None:
            raise LookupError(f"control run {run_id}: its view generation is not on record")
        rows = session.scalars(select(ControlLead).where(ControlLead.run_id == run_id)).all()
        found_leads = [(r.rule, _unit(r.rule, r.subject, r.provider, r.evidence["numbers"])) for r in rows]
    nirs = sorted({i["nir"] for i in items if "nir" in i})
    pseudonymiser = hub.pseudonymiser.at(version)
    people = (
        dict(zip(nirs, rekey(hub, project_id, pseudonymiser.pseudonyms(nirs, cache=False)), strict=True))
        if nirs
        else {}
    )
    numbers = sorted({i["provider"] for i in items if "provider" in i})
    providers = dict(zip(numbers, provider_pseudonyms(hub, project_id, numbers), strict=True))
    by_kind: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for i in items:
        kind = i["kind"]
        if kind in ("after_death", "paper"):
            by_kind[kind].add((people[i["nir"]],))
        elif kind == "volume":
            by_kind[kind].add((providers[i["provider"]], i["day"]))
        elif kind == "duplicate":
            by_kind[kind].add((people[i["nir"]], providers[i["provider"]], i["day"]))
        elif kind in ("outlier", "outlier_combined"):
            by_kind[kind].add((providers[i["provider"]],))
    injected: dict[str, set[tuple[str, ...]]] = {f: set() for f in FAMILIES}
    for kind, units in by_kind.items():
        injected[KIND_FAMILY.get(kind, kind)] |= units
    out = []
    for rule in RULES:
        family = FAMILY.get(rule, rule)
        target = by_kind[TARGET[rule]] if rule in TARGET else injected[family]
        units = {u for name, u in found_leads if name == rule}
        out.append(Score(rule, len(target), len(units), len(units & injected[family]), len(target & units)))
    both = {u for name, u in found_leads if FAMILY.get(name, name) == "outlier"}
    family_units = injected["outlier"]
    out.append(Score(OUTLIER_FAMILY_ROW, len(family_units), len(both), len(both & family_units),
                     len(family_units & both)))  # fmt: skip
    return out


def table(scores: list[Score]) -> str:
    """A Markdown table of the scores."""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["| rule | injected | leads | true leads | precision | recall |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {s.family} | {s.injected} | {s.leads} | {s.true_leads} | {fmt(s.precision)} | {fmt(s.recall)} |"
              for s in scores]  # fmt: skip
    return "\n".join(lines)
