# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Label existence: which rows a release lists must not tell anything about small counts.

The attack of issue 13: a fine table (sex x age x département x drug class) released with every cell suppressed
still listed only the combinations that exist, so for each person alone in their (sex, age, département) group the
listed drug classes were exactly theirs (126 of 126). The truth comes from the clear deliveries; the attacker reads
the released rows through the API. Before: the platform's own cells (what was listed) give the attacker everyone.
After: the release is the full grid of codes held by at least ``threshold`` people of the whole view (the rest is
folded into ``other``), empty and small cells suppressed alike, so the attacker learns nobody.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from hygie.analysis.compile import OTHER
from hygie.analysis.spec import AggregateSpec
from hygie.governance.views import _drug_atc
from tests.analysis.test_api import APPROVE, airlock_id, submit, true_table
from tests.analysis.test_compile_details import DETAIL_SCOPE
from tests.portal.world import World

YEAR = 2024
THRESHOLD = 11
FINE: dict[str, Any] = {"group_by": ["sex", "age", "departement", "atc:3"], "measures": ["people"]}
CLAIM = ("FLX_DIS_DTD", "FLX_TRT_DTD", "FLX_EMT_TYP", "FLX_EMT_NUM", "FLX_EMT_ORD", "ORG_CLE_NUM", "DCT_ORD_NUM",
         "PRS_ORD_NUM", "REM_TYP_AFF")  # fmt: skip


@dataclass(frozen=True)
class Person:
    sex: str
    age: str
    departement: str
    classes: frozenset[str]


def delivered(delivery: Path) -> dict[str, Person]:
    """Everyone with a drug line in the year: sex, age, département and drug classes (ATC, 3 characters)."""
    drugs = _drug_atc()
    atc = {str(c13): code for c13, code in zip(*(drugs.column(c).to_pylist() for c in drugs.column_names), strict=True)}
    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8", newline="") as f:
        beneficiaries = {row["BEN_NIR"]: row for row in csv.DictReader(f)}
    claims: dict[tuple[str, ...], str] = {}
    classes: dict[str, set[str]] = defaultdict(set)
    for flow in sorted(delivery.glob("flow-*")):
        with (flow / "ER_PRS_F.csv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["EXE_SOI_DTD"].startswith(str(YEAR)):
                    claims[tuple(row[k] for k in CLAIM)] = row["BEN_NIR"]
        with (flow / "ER_PHA_F.csv").open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                nir = claims.get(tuple(row[k] for k in CLAIM))
                if nir is not None:
                    code = atc.get(row["PHA_PRS_C13"])
                    classes[nir].add(code[:3] if code else "unknown")
    out = {}
    for nir, held in classes.items():
        b = beneficiaries[nir]
        out[nir] = Person(b["BEN_SEX_COD"], str(YEAR - int(b["BEN_NAI_ANN"])), b["BEN_RES_DPT"], frozenset(held))
    return out


def learned(people: dict[str, Person], listed: set[tuple[str, ...]], codes: list[set[str]] | None) -> int:
    """The attacker: for each person alone in their (sex, age, département) group, the drug classes listed with that
    group are their classes. ``codes``: the release's code lists (a code not listed reads as ``other``)."""
    groups: dict[tuple[str, str, str], list[Person]] = defaultdict(list)
    for p in people.values():
        groups[(p.sex, p.age, p.departement)].append(p)
    right = 0
    for group, members in groups.items():
        if len(members) != 1:
            continue
        if codes is not None:
            group = tuple(c if c in codes[i] else OTHER for i, c in enumerate(group))  # type: ignore[assignment]
        guess = {key[3] for key in listed if key[:3] == group}
        right += guess == set(members[0].classes)
    return right


def test_listed_rows_tell_nothing_about_who_has_which_drug(attack_world: World) -> None:
    w = attack_world
    pid = w.active_project(scope=DETAIL_SCOPE)
    people = delivered(w.delivery)

    # Before: the rows listed were the cells that exist (the platform's cells with no code folded).
    existing, _ = true_table(w, pid, AggregateSpec.model_validate(FINE), threshold=1)
    before = learned(people, {c.key for c in existing.cells if c.people > 0}, None)
    targets = sum(1 for n in _group_sizes(people).values() if n == 1)  # people alone in their group
    print(f"\nlabel existence: {before} of {targets} lone people's drug classes read from the listed rows (before)")
    assert targets >= 20 and before >= 0.9 * targets

    # After: the release through the API.
    job = submit(w, pid, FINE)
    if job["status"] != "released":
        release_id = airlock_id(w, job)
        for checker in ("reviewer2", "reviewer3"):
            assert w.call(checker, "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 200
    r = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release")
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    dims = ["sex", "age", "departement", "atc_3"]
    listed = {tuple(str(row[d]) for d in dims) for row in rows}
    codes = [{key[i] for key in listed} for i in range(len(dims))]
    # The rows are the full grid of the code lists, in a fixed order...
    assert len(rows) == len(listed) == len(set(product(*codes)))
    # ...and every listed code (but "other") is held by at least `threshold` people of the view: none is a label.
    for i, name in enumerate(("sex", "age", "departement")):
        for code in codes[i] - {OTHER}:
            assert sum(1 for p in people.values() if getattr(p, name) == code) >= THRESHOLD, (name, code)
    for code in codes[3] - {OTHER}:
        assert sum(1 for p in people.values() if code in p.classes) >= THRESHOLD, code
    # Empty and small cells look the same: suppressed, with nothing else to tell them apart.
    truth: dict[tuple[str, ...], int] = defaultdict(int)
    for p in people.values():
        group = tuple(c if c in codes[i] else OTHER for i, c in enumerate((p.sex, p.age, p.departement)))
        for atc in {c if c in codes[3] else OTHER for c in p.classes}:
            truth[(*group, atc)] += 1
    for row in rows:
        key = tuple(str(row[d]) for d in dims)
        if truth.get(key, 0) < THRESHOLD:
            assert row["suppressed"] is True and row["people"] is None, row
    after = learned(people, listed, codes)
    print(f"label existence: {after} of {targets} (after, {len(rows)} rows)")
    assert after == 0


def _group_sizes(people: dict[str, Person]) -> dict[tuple[str, str, str], int]:
    sizes: dict[tuple[str, str, str], int] = defaultdict(int)
    for p in people.values():
        sizes[(p.sex, p.age, p.departement)] += 1
    return sizes
