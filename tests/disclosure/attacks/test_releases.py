# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Differencing between releases, replayed through the API against the release ledger.

(a) by populations: two aggregate requests grouped by care month whose populations differ by one person (an age
    filter that drops the oldest or youngest woman or man); every month where the releases differ is a month the
    target had care. (b) by cells: a cell of ages 60-69 next to one of ages 60-70, whose difference is the people
    aged exactly 70. The truth comes from the clear deliveries (``world.delivery``). With the ledger, the second
    release of each pair is refused and the attacker learns nothing; with the ledger switched off the same requests
    learn their targets (the attack succeeded before). Honest repeats and regroupings are still released.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hygie.analysis import ledger
from hygie.analysis.engine import DuckDBEngine, QueryStopped
from hygie.analysis.models import AnalysisRelease, LedgerEntry
from hygie.audit import AuditEvent
from hygie.governance.policy import departements_by_region
from hygie.warehouse.viewcache import ViewCache
from tests.portal.world import World

YEAR = 2024
THRESHOLD = 11
BY_MONTH = ["people", "events", "sum:PRS_PAI_MNT"]


# -- the truth, from the clear deliveries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    nir: str
    sex: str
    age: int
    region: str
    months: frozenset[str]


def delivered_people(delivery: Path) -> dict[str, Person]:
    """Everyone with a care line in the project's year, with the months they had care."""
    region_of = {d: str(r) for r, dpts in departements_by_region().items() for d in dpts}
    beneficiaries: dict[str, dict[str, str]] = {}
    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            beneficiaries[row["BEN_NIR"]] = row
    months: dict[str, set[str]] = defaultdict(set)
    for path in sorted(delivery.glob("flow-*/ER_PRS_F.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["EXE_SOI_DTD"].startswith(str(YEAR)):
                    months[row["BEN_NIR"]].add(row["EXE_SOI_DTD"][:7])
    out = {}
    for nir, seen in months.items():
        b = beneficiaries.get(nir)
        if b is None:
            continue
        region = region_of.get(b["BEN_RES_DPT"], "unknown")
        out[nir] = Person(nir, b["BEN_SEX_COD"], YEAR - int(b["BEN_NAI_ANN"]), region, frozenset(seen))
    return out


# -- the analyst's moves, through the API ------------------------------------------------------------------------


def run(w: World, pid: int, spec: dict[str, Any]) -> tuple[int, list[dict[str, Any]] | None]:
    """Submits a spec, waits for it, and returns its id and released rows (None when nothing was released)."""
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json=spec)
    assert r.status_code == 200, r.text
    job = r.json()
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}").json()
    r = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release")
    return job["id"], (r.json()["rows"] if r.status_code == 200 else None)


def stored(w: World, job_id: int) -> AnalysisRelease:
    with w.hub.session() as session:
        release = session.scalar(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id))
        assert release is not None
        return release


def differing_months(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> set[str]:
    """The attacker's guess: months whose released rows differ (a month listed in one release only differs)."""
    rows_a = {r["care_month"]: r for r in a}
    rows_b = {r["care_month"]: r for r in b}
    return {m for m in rows_a.keys() | rows_b.keys() if rows_a.get(m) != rows_b.get(m)}


@dataclass(frozen=True)
class Target:
    person: Person
    wide: dict[str, Any]
    narrow: dict[str, Any]
    """Two specs whose populations differ by exactly this person."""


def population_targets(people: dict[str, Person], n: int) -> list[Target]:
    """People alone at their age among their sex: ``age <= a`` and ``age <= a - 1`` (the oldest woman: no filter
    and ``age <= a - 1``) describe populations that differ by exactly that person."""
    targets: list[Target] = []
    for sex in ("2", "1"):
        group = [p for p in people.values() if p.sex == sex]
        by_age: dict[int, list[Person]] = defaultdict(list)
        for p in group:
            by_age[p.age].append(p)
        base: list[dict[str, Any]] = [{"dimension": "sex", "in": [sex]}]
        oldest = max(by_age)
        for age in sorted(by_age, reverse=True):
            below = sum(len(v) for a, v in by_age.items() if a < age)
            if len(by_age[age]) != 1 or below < 3 * THRESHOLD:
                continue
            wide: dict[str, Any] = {"group_by": ["care_month"], "filters": base, "measures": BY_MONTH}
            if age != oldest:
                wide["filters"] = [*base, {"dimension": "age", "between": [0, age]}]
            narrow = {**wide, "filters": [*base, {"dimension": "age", "between": [0, age - 1]}]}
            targets.append(Target(by_age[age][0], wide, narrow))
    assert len(targets) >= n, "the world needs people alone at their age"
    return targets[:n]


@pytest.fixture(scope="module")
def people(attack_world: World) -> dict[str, Person]:
    return delivered_people(attack_world.delivery)


@pytest.fixture
def no_ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The platform as it was before the ledger: nothing compares a release with earlier ones."""
    monkeypatch.setattr(ledger, "guard_release", lambda *args, **kwargs: ledger.Guard())
    yield


# -- (a) differencing by populations ------------------------------------------------------------------------------


def attack_by_populations(w: World, targets: list[Target]) -> tuple[int, int, int]:
    """Returns (targets exposed, learned, months right). Exposed: both releases left, so the attacker holds
    statistics of one person by difference. Learned: their difference names only months the target had care."""
    pid = w.active_project()
    exposed = learned = right = 0
    for t in targets:
        _, wide = run(w, pid, t.wide)
        _, narrow = run(w, pid, t.narrow)
        if wide is None or narrow is None:
            continue
        exposed += 1
        guess = differing_months(wide, narrow)
        learned += bool(guess) and guess <= t.person.months
        right += len(guess & t.person.months)
    return exposed, learned, right


def test_differencing_by_populations_exposed_its_targets_before_the_ledger(
    attack_world: World, people: dict[str, Person], no_ledger: None
) -> None:
    targets = population_targets(people, 1)
    exposed, learned, right = attack_by_populations(attack_world, targets)
    print(f"\nwithout the ledger: {exposed} of {len(targets)} targets exposed, {learned} learned, {right} months right")
    assert exposed == len(targets), "the replay must show the attack's releases leaving without the ledger"


def test_differencing_by_populations_learns_nobody(attack_world: World, people: dict[str, Person]) -> None:
    w = attack_world
    targets = population_targets(people, 5)
    exposed, learned, right = attack_by_populations(w, targets)
    print(f"\nwith the ledger: {exposed} of {len(targets)} targets exposed, {learned} learned, {right} months right")
    assert (exposed, learned, right) == (0, 0, 0)
    # The refusals say why, to output checkers and the audit log; never to the author.
    refused = [stored(w, e.detail["job"]) for e in events(w, "analysis.ledger.check") if e.outcome == "denied"]
    assert all(r.status == "refused" and any(f.startswith("ledger") for f in r.findings) for r in refused)
    assert sum(any("population differs" in f for f in r.findings) for r in refused) >= len(targets)
    assert all("between 1 and 10 people" in f for r in refused for f in r.findings if f.startswith("ledger:"))
    job = w.call("researcher1", "GET", f"/projects/{refused[-1].project_id}/analyses/{refused[-1].job_id}").json()
    assert "ledger" not in str(job) and "differ" not in str(job), job
    # Nothing about a person or a count in clear in the database: the ledger is sealed.
    with w.hub.session() as session:
        blobs = list(session.scalars(select(LedgerEntry.sealed)))
    assert blobs and not any(t.person.nir.encode() in b or b"care_month" in b for t in targets for b in blobs)


def events(w: World, action: str) -> list[AuditEvent]:
    with w.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


# -- (b) differencing by cells ------------------------------------------------------------------------------------


def boundary_ages(people: dict[str, Person]) -> list[int]:
    """Ages a such that 1 to 10 people are exactly a years old and the band below holds enough people to be
    released: the band [a-10, a-1] and the range [a-10, a] differ by those few people."""
    by_age: dict[int, int] = defaultdict(int)
    for p in people.values():
        by_age[p.age] += 1
    out = []
    for a in sorted(by_age):
        band = sum(by_age[x] for x in range(a - 10, a))
        if a % 10 == 0 and 1 <= by_age[a] < THRESHOLD and band >= 3 * THRESHOLD:
            out.append(a)
    assert out, "the world needs an age with a few people above a populous band"
    return out[:2]


def attack_by_cells(w: World, people: dict[str, Person]) -> tuple[int, int, int]:
    """Returns (people at the boundary ages, people exposed, people whose amounts differ between the two cells).
    Exposed: both cells left, so the attacker holds the statistics of those few people by difference."""
    pid = w.active_project()
    _, bands = run(w, pid, {"group_by": ["age_band:10"], "measures": ["people", "sum:PRS_PAI_MNT"]})
    assert bands is not None
    at_risk = exposed = differ = 0
    for a in boundary_ages(people):
        few = sum(1 for p in people.values() if p.age == a)
        at_risk += few
        _, wider = run(w, pid, {"filters": [{"dimension": "age", "between": [a - 10, a]}],
                                "measures": ["people", "sum:PRS_PAI_MNT"]})  # fmt: skip
        band = next(r for r in bands if r["age_band_10"] == f"{a - 10}-{a - 1}")
        if wider is not None and not band["suppressed"] and not wider[0]["suppressed"]:
            exposed += few
            differ += few if wider[0]["sum_PRS_PAI_MNT"] != band["sum_PRS_PAI_MNT"] else 0
    return at_risk, exposed, differ


def test_differencing_by_cells_exposed_people_before_the_ledger(
    attack_world: World, people: dict[str, Person], no_ledger: None
) -> None:
    at_risk, exposed, differ = attack_by_cells(attack_world, people)
    print(f"\nwithout the ledger: {exposed} of {at_risk} people at band edges exposed, amounts differ for {differ}")
    assert exposed == at_risk > 0


@pytest.mark.parametrize("memory", ["kept", "off"])
def test_differencing_by_cells_learns_nobody(
    attack_world: World, people: dict[str, Person], memory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if memory == "off":  # no decrypted view kept, so no ledger memo: every check unseals and sums everything again
        monkeypatch.setattr(attack_world.hub, "view_cache", ViewCache(0, 60))
    at_risk, exposed, differ = attack_by_cells(attack_world, people)
    print(f"\nwith the ledger: {exposed} of {at_risk} people at band edges exposed, amounts differ for {differ}")
    assert exposed == differ == 0 and at_risk > 0


# -- honest work is still released --------------------------------------------------------------------------------


def test_honest_repeats_and_regroupings_are_released(attack_world: World) -> None:
    w = attack_world
    pid = w.active_project()
    specs: list[dict[str, Any]] = [
        {"group_by": ["sex"], "measures": ["people", "events"], "totals": True},
        {"group_by": ["sex"], "measures": ["people", "events"], "totals": True},  # the same table twice
        {"group_by": ["age_band:20"], "measures": ["people", "sum:PRS_PAI_MNT"], "totals": True},
        {"group_by": ["sex", "care_year"], "measures": ["people"]},
    ]
    outcomes = []
    for spec in specs:
        job_id, rows = run(w, pid, spec)
        outcomes.append((rows, stored(w, job_id).findings))
    assert all(rows is not None for rows, _ in outcomes), outcomes
    assert outcomes[0][0] == outcomes[1][0]  # the same people, the same numbers
    with w.hub.session() as session:
        sizes = list(session.scalars(select(func.length(LedgerEntry.sealed)).where(LedgerEntry.project_id == pid)))
    checks = [e.detail for e in events(w, "analysis.ledger.check")[-len(specs) :]]
    print(f"\nhonest: {len(specs)} of {len(specs)} released; sealed ledger entries {sizes} bytes; "
          f"(targets, programs) per check {[(d['targets'], d['linear_programs']) for d in checks]}")  # fmt: skip


def test_the_dense_index_is_stable_and_append_only() -> None:
    from pyroaring import BitMap

    roster = ledger.Roster([])
    first = BitMap([4_000_000_000, 17, 3_000_000])
    roster.add(first)
    assert roster.dense(first) == BitMap([0, 1, 2]) and roster.grown
    later = BitMap([17, 99, 4_000_000_000])  # someone new, two known
    roster.add(later)
    assert roster.dense(later) == BitMap([0, 2, 3])  # known people keep their index, the newcomer gets the next
    assert roster.dense(first) == BitMap([0, 1, 2])
    again = ledger.Roster(roster.keys)
    again.add(first)
    assert not again.grown and again.dense(later) == roster.dense(later)
    # A key never added is refused, never numbered as whoever sorts next to it (and not by an assert, which
    # python -O would drop).
    with pytest.raises(RuntimeError, match="before it was added"):
        roster.dense(BitMap([17, 18]))


# -- the refusal as an oracle: one answer per project before a person looks ----------------------------------------


def oracle(w: World, pid: int, t: Target, months: list[str]) -> list[tuple[str, bool, bool]]:
    """The reviewer's attack: E = her sex aged <= a-1 with care in month m, then C = the same aged <= a, where she is
    alone at age a. With care in m the populations differ by her alone (C refused); without, they are identical (C
    released). Returns (month, E released, C released)."""
    out = []
    for m in months:
        month = {"dimension": "care_month", "in": [m]}
        _, narrow = run(w, pid, {"filters": [*t.narrow["filters"], month], "measures": ["people"]})
        _, wide = run(w, pid, {"filters": [*t.wide["filters"], month], "measures": ["people"]})
        out.append((m, narrow is not None, wide is not None))
    return out


def oracle_months(people: dict[str, Person]) -> tuple[Target, list[str]]:
    t = population_targets(people, 2)[1]
    had = sorted(t.person.months)
    lacked = sorted({f"{YEAR}-{m:02d}" for m in range(1, 13)} - t.person.months)
    return t, [lacked[0], had[0], lacked[1], had[1]]  # answers no, yes, no, yes


def test_the_refusal_oracle_read_her_months_before_the_hold(
    attack_world: World, people: dict[str, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger, "hold_of", lambda *args: None)
    t, months = oracle_months(people)
    shown = oracle(attack_world, attack_world.active_project(), t, months)
    yes = {m for m, narrow, wide in shown if narrow and not wide}
    no = {m for m, narrow, wide in shown if narrow and wide}
    print(f"\nwithout the hold: {len(yes & t.person.months)} care months and {len(no - t.person.months)} months "
          f"without care read right, {len(yes - t.person.months) + len(no & t.person.months)} wrong")  # fmt: skip
    assert yes == set(months) & t.person.months and no == set(months) - t.person.months


def test_the_refusal_oracle_answers_once_then_everything_waits_for_checkers(
    attack_world: World, people: dict[str, Person]
) -> None:
    from hygie.audit.alerts import evaluate

    w = attack_world
    evaluate(w.hub)
    pid = w.active_project()
    t, months = oracle_months(people)
    shown = oracle(w, pid, t, months)
    answers = [x for _, narrow, wide in shown for x in (narrow, wide)]
    first = answers.index(False)
    yes = {m for m, narrow, wide in shown if narrow and not wide}
    print(f"\nwith the hold: shown {shown}; care months read {len(yes)}, jobs after the first withheld: "
          f"{len(answers) - first - 1}, all withheld")  # fmt: skip
    assert first == 3 and not any(answers[first:])  # every job after the first finding: withheld, whatever she did
    assert len(yes) <= 1
    # The DPO hears of it at once (the first finding, not a burst of refusals), the author is the suspect.
    alerts = [a for a in evaluate(w.hub) if a.rule == "ledger_hold"]
    assert [(a.project_id, a.severity) for a in alerts] == [(pid, "high")], alerts
    assert alerts[0].actor.startswith("account:")
    # Checkers see why the outputs wait; when they decide one, the project's outputs are checked as before.
    pending = [i for i in w.call("reviewer1", "GET", "/airlock").json() if i["project_id"] == pid]
    assert pending and all(i["summary"]["ledger"] == "held" for i in pending)
    assert all(any(f.startswith("ledger: held for output checkers") for f in i["findings"]) for i in pending)
    r = w.call("reviewer1", "POST", f"/airlock/{pending[0]['release_id']}/decisions",
               json={"decision": "reject", "reason": "a probe of one person's care months"})  # fmt: skip
    assert r.status_code == 200, r.text
    _, rows = run(w, pid, {"group_by": ["sex"], "measures": ["people"]})
    assert rows is not None


def log_of(w: World, job_id: int) -> list[str]:
    """The audit events a job writes (its own and its release's; the author's reads aside)."""
    release = stored(w, job_id)
    with w.hub.session() as session:
        objects = [f"analysis:{job_id}", f"release:{release.id}"]
        reads = ["analysis.jobs.read", "analysis.release.read"]
        query = select(AuditEvent.action).where(AuditEvent.object.in_(objects), AuditEvent.action.not_in(reads))
        return list(session.scalars(query.order_by(AuditEvent.id)))


def test_every_aggregate_writes_as_many_records_whatever_its_outcome(
    attack_world: World, people: dict[str, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public log shows one commitment per record: its growth must not tell a refusal by the ledger, by
    ``protect`` or a release apart. An output the ledger could not check keeps its population in the ledger."""
    w = attack_world
    pid = w.active_project()
    released, _ = run(w, pid, {"group_by": ["sex"], "measures": ["people"]})
    t = population_targets(people, 1)[0]
    monkeypatch.setattr(w.hub.settings, "disclosure_max_cells", 2)
    by_protect, rows = run(w, pid, {"group_by": ["age_band:20"], "measures": ["people"]})  # refused by protect
    monkeypatch.undo()
    assert rows is None and stored(w, by_protect).summary["ledger"] == "not reached"

    def stopped(*args: object, **kwargs: object) -> None:
        raise QueryStopped("the analysis was stopped at its time limit", reason="timeout")

    monkeypatch.setattr(DuckDBEngine, "run", stopped)  # a run stopped at a limit (data-dependent): withheld alike
    by_stop, rows = run(w, pid, {"group_by": ["sex"], "measures": ["people"]})
    monkeypatch.undo()
    assert rows is None and stored(w, by_stop).summary["stopped"] == "timeout"
    run(w, pid, t.wide)
    by_ledger, _ = run(w, pid, t.narrow)
    held, _ = run(w, pid, {"group_by": ["sex"], "measures": ["people"]})
    logs = {job: log_of(w, job) for job in (released, by_protect, by_stop, by_ledger, held)}
    print(f"\nrecords per job: {logs}")
    assert stored(w, by_ledger).summary["ledger"] == "refused" and stored(w, held).summary["ledger"] == "held"
    assert len({len(v) for v in logs.values()}) == 1 and all(v[1] == "analysis.ledger.check" for v in logs.values())
    # An output whose check is skipped (too many memberships) still leaves its population, and holds the project.
    other = w.active_project()
    monkeypatch.setattr(w.hub.settings, "ledger_max_contributions", 1)
    unchecked, rows = run(w, other, {"group_by": ["sex"], "measures": ["people"]})
    monkeypatch.undo()
    assert rows is None and stored(w, unchecked).summary["ledger"] == "unchecked"
    with w.hub.session() as session:
        entry = session.scalar(select(LedgerEntry).where(LedgerEntry.job_id == unchecked))
        assert entry is not None
        kept = ledger.unseal(w.hub, other, unchecked, entry.sealed)
    assert len(kept.population) > 0 and kept.cells == []
    later, rows = run(w, other, {"group_by": ["sex"], "measures": ["people"]})
    assert rows is None and stored(w, later).summary["ledger"] == "held"


def test_a_withheld_review_holds_the_project_like_a_refusal(
    attack_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Released or withheld is the bit an author can steer: an output sent to checkers by a data-dependent review
    (here the ledger's empty-margin finding, forced) holds the project as a refusal does, so the next probe answers
    nothing until checkers have looked; their decision on it ends the hold."""
    w = attack_world
    pid = w.active_project()
    spec = {"group_by": ["sex"], "measures": ["people"]}
    monkeypatch.setattr(ledger, "empty_margins", lambda candidate, earlier: ["ledger: a new count over (forced)"])
    probe, rows = run(w, pid, spec)
    monkeypatch.undo()
    assert rows is None and stored(w, probe).summary["ledger_hold"] == "started"
    later, rows = run(w, pid, {"group_by": ["age_band:20"], "measures": ["people"]})  # no finding of its own
    assert rows is None and stored(w, later).summary["ledger"] == "held"
    r = w.call("reviewer1", "POST", f"/airlock/{stored(w, probe).id}/decisions",
               json={"decision": "reject", "reason": "a count over an earlier empty cell"})  # fmt: skip
    assert r.status_code == 200, r.text
    _, rows = run(w, pid, {"group_by": ["age_band:20"], "measures": ["people"]})
    assert rows is not None
