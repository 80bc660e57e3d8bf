# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Analyses end to end through the HTTP API: release, suppression, differencing, airlock, downloads, record."""

from __future__ import annotations

import csv
import io
import math
import random
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select

from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.compile import compile_aggregate, output_table
from hygie.analysis.engine import DuckDBEngine, Limits
from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.analysis.spec import Aggregate, AggregateSpec
from hygie.audit import AuditEvent
from hygie.disclosure import (
    Cell,
    CellKey,
    Dimension,
    DisclosurePolicy,
    OutputTable,
    StickyRounding,
    anchor_key,
    cell_key,
    protect,
)
from hygie.governance.models import Project, ProjectView
from hygie.governance.policy import Scope
from hygie.governance.views import READY, open_view
from tests.disclosure.attacker import intervals
from tests.portal.world import World

THRESHOLD = 11
DIFFERENCING_TRIALS = 2000
BY_SEX_AND_REGION: dict[str, Any] = {
    "group_by": ["sex", "region"],
    "measures": ["people", "events", "sum:PRS_PAI_MNT"],
    "totals": True,
}
APPROVE = {"decision": "approve", "reason": "aggregate counts, nothing small"}


def finished(w: World, pid: int, job: dict[str, Any], who: str = "researcher1") -> dict[str, Any]:
    """Polls a queued job until it has finished, as a client does."""
    deadline = time.monotonic() + 60
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        r = w.call(who, "GET", f"/projects/{pid}/analyses/{job['id']}")
        assert r.status_code == 200, r.text
        job = r.json()
    return job


def submit(w: World, pid: int, spec: dict[str, Any], who: str = "researcher1") -> dict[str, Any]:
    r = w.call(who, "POST", f"/projects/{pid}/analyses/aggregate", json=spec)
    assert r.status_code == 200, r.text
    return finished(w, pid, r.json(), who)


def submit_sql(w: World, pid: int, sql: str, who: str = "researcher1") -> dict[str, Any]:
    r = w.call(who, "POST", f"/projects/{pid}/analyses/sql", json={"sql": sql})
    assert r.status_code == 200, r.text
    return finished(w, pid, r.json(), who)


def airlock_id(w: World, job: dict[str, Any], checker: str = "reviewer3") -> int:
    """The release id of a job awaiting checkers, as a checker finds it (its author never sees release ids)."""
    return next(int(i["release_id"]) for i in w.call(checker, "GET", "/airlock").json() if i["job_id"] == job["id"])


def stored_release(w: World, job_id: int) -> AnalysisRelease:
    """The platform's own record of a job's output (what checkers and the DPO see; never its author)."""
    with w.hub.session() as session:
        release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id)).one()
        session.expunge(release)
        return release


def ran(w: World, job_id: int) -> str:
    """The job's stored status (succeeded, failed, refused): the platform's record, never shown to its author."""
    with w.hub.session() as session:
        job = session.get(AnalysisJob, job_id)
        assert job is not None
        return job.status


def events(w: World, action: str) -> list[AuditEvent]:
    with w.hub.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def true_table(
    w: World, pid: int, spec: AggregateSpec, keys: pa.Table | None = None, threshold: int = THRESHOLD
) -> Any:
    """The same aggregate through the platform's compiler and engine, before disclosure control (test only)."""
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        view = session.scalars(select(ProjectView).where(ProjectView.project_id == pid,
                                                         ProjectView.status == READY)).one()  # fmt: skip
        columns = {t: list(m["columns"]) for t, m in view.tables.items()}
        keys = keys if keys is not None else project_record_keys(w.hub, session, project)
        year = Scope.model_validate(project.scope).population.period_start.year
        plan = compile_aggregate(spec, columns, reference_year=year, record_keys=keys, threshold=threshold)
        run = DuckDBEngine(w.hub).run(project, plan.query, Limits(512, 1, 60))
        return output_table(plan, run.table), project


def test_time_from_activation_to_first_released_aggregate(world: World) -> None:
    started = time.perf_counter()
    pid = world.active_project()
    job = submit(world, pid, {"group_by": ["sex"], "measures": ["people", "events"]})
    elapsed = time.perf_counter() - started
    assert job["status"] == "released", job
    # no cost, duration or row count before (or after) release: they depend on the data
    assert not {"cost", "duration_seconds", "started_at", "release"} & job.keys(), job
    print(f"\nactivation (two approvals, view built) to first released aggregate: {elapsed:.2f} s")
    r = world.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release")
    assert r.status_code == 200
    rows = r.json()["rows"]
    assert {row["sex"] for row in rows} <= {"1", "2", "unknown", "other"}  # the full grid lists "other"
    assert all(row["people"] % 5 == 0 and row["people"] >= THRESHOLD for row in rows if not row["suppressed"])
    run = events(world, "analysis.run")[-1]
    # The release is the full grid of listed codes: every true cell is in it (empty ones suppressed).
    assert run.detail["cells"] <= len(rows) and run.detail["threshold"] == THRESHOLD
    release = events(world, "analysis.release")[-1]
    assert release.detail["min_cell_people"] >= THRESHOLD and release.detail["automatic"] is True


def test_no_released_cell_is_small_and_suppression_holds_against_the_margins(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    job = submit(w, pid, BY_SEX_AND_REGION)
    assert job["status"] in ("released", "withheld"), job
    table, _ = true_table(w, pid, AggregateSpec.model_validate(BY_SEX_AND_REGION))
    small = {c.key for c in table.cells if 0 < c.people < THRESHOLD}
    assert small, "the test needs small cells to be meaningful"
    if job["status"] != "released":  # cleared by checkers: the point is what leaves
        assert stored_release(w, job["id"]).status == "pending", job
        release_id = airlock_id(w, job)
        for checker in ("reviewer2", "reviewer3"):
            assert w.call(checker, "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 200
    rows = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release").json()["rows"]
    true_people = {c.key: c.people for c in table.cells}
    suppressed: set[CellKey] = set()
    for row in rows:
        key = (row["sex"], row["region"])
        if row["suppressed"]:
            suppressed.add(key)
            assert row["people"] is None and row["events"] is None and row["sum_PRS_PAI_MNT"] is None
        else:
            assert row["people"] == 0 or row["people"] >= THRESHOLD, row
    assert small <= suppressed, "every small cell is suppressed"
    bounds = intervals(table, suppressed)
    for key in small:
        low, high = bounds[key]
        assert high - low >= THRESHOLD, (key, true_people[key], low, high)


def sex_membership(w: World, project: Project) -> dict[str, str]:
    """Each person of the care table and their sex code, read directly from the view (the simulation's ground
    truth, checked against the platform's own cells below)."""
    with w.hub.session() as session:
        con = open_view(w.hub, session, project)
    try:
        rows = con.sql(
            "SELECT DISTINCT f.BEN_NIR_PSA, coalesce(CAST(b.BEN_SEX_COD AS VARCHAR), 'unknown') "
            "FROM ER_PRS_F f JOIN IR_BEN_R b ON b.BEN_NIR_PSA = f.BEN_NIR_PSA"
        ).fetchall()
    finally:
        con.close()
    return {str(p): str(s) for p, s in rows}


def by_sex(members: dict[str, str], keys: dict[str, int]) -> OutputTable:
    """The by-sex people table the runner hands to disclosure control, computed in Python from record keys."""
    cells: dict[str, list[int]] = {}
    for person, sex in members.items():
        if person in keys:
            cells.setdefault(sex, []).append(keys[person])
    return OutputTable(
        (Dimension("sex"),),
        (),
        tuple(Cell((sex,), len(k), cell_key=cell_key(k), anchor_key=anchor_key(k)) for sex, k in sorted(cells.items())),
    )


def test_differencing_one_person_changes_the_release_at_most_as_often_as_stated(shared_world: World) -> None:
    """Two releases whose populations differ by one person (the person's record key withheld from the second
    run): over the draw of the project's secret, the released counts differ with probability at most
    ``StickyRounding.differencing_advantage`` (about 1/5 for cells of ~150 people), so an attacker guessing 'the
    person is there iff the counts differ' is right at most 1/2 + that/2 of the time.

    Trials must be independent draws of the secret: within one project the offset is fixed by the cell's anchor,
    so removing any non-anchor person of a cell changes its release either always (the count sits on a rounding
    boundary) or never. That is why 25 removals from one population once differed in 0 of 25 pairs."""
    w = shared_world
    pid = w.active_project()
    spec = Aggregate().by("sex").people().spec()
    full, project = true_table(w, pid, spec)
    with w.hub.session() as session:
        keys = project_record_keys(w.hub, session, project)
    members = sex_membership(w, project)
    real = dict(zip(keys.column(0).to_pylist(), keys.column(1).to_pylist(), strict=True))
    # The platform's cells are the simulation's: same people, same keys, same anchors.
    assert {c.key: (c.people, c.cell_key, c.anchor_key) for c in full.cells} == {
        c.key: (c.people, c.cell_key, c.anchor_key) for c in by_sex(members, real).cells
    }
    target = sorted(members)[0]
    without = keys.filter(pc.not_equal(keys.column(0), target))
    platform_without, _ = true_table(w, pid, spec, without)
    assert {c.key: c.people for c in platform_without.cells} == {
        c.key: c.people - (c.key == (members[target],)) for c in full.cells
    }
    assert {c.key: c.anchor_key for c in platform_without.cells} == {
        c.key: c.anchor_key for c in by_sex(members, {p: k for p, k in real.items() if p != target}).cells
    }

    # Within one secret: every non-anchor removal from a cell gives the same answer (all change, or none).
    people = sorted(members)
    rng = random.Random(5)
    full_release = {c.key: c.people for c in protect(full).cells}
    for sex in {members[p] for p in people}:
        cell = [p for p in people if members[p] == sex]
        anchor = min(real[p] for p in cell)
        changes = {
            {c.key: c.people for c in protect(by_sex(members, {q: real[q] for q in people if q != p})).cells}
            != full_release
            for p in rng.sample(cell, min(8, len(cell)))
            if real[p] != anchor
        }
        assert len(changes) == 1, sex

    # Across secrets: independent trials, each with a fresh project secret and a random target.
    rounding = StickyRounding(DisclosurePolicy().rounding_base)
    differs = 0
    bound = 0.0
    for _ in range(DIFFERENCING_TRIALS):
        fresh = {p: rng.getrandbits(32) for p in people}
        target = rng.choice(people)
        first = {c.key: c.people for c in protect(by_sex(members, fresh)).cells}
        second = {c.key: c.people for c in protect(by_sex(members, {p: fresh[p] for p in people if p != target})).cells}
        differs += first != second
        n = sum(1 for p in people if members[p] == members[target]) - 1
        bound += rounding.differencing_advantage(n) / DIFFERENCING_TRIALS
    rate = differs / DIFFERENCING_TRIALS
    sigma = math.sqrt(bound * (1 - bound) / DIFFERENCING_TRIALS)
    print(f"\ndifferencing: releases differed in {differs}/{DIFFERENCING_TRIALS} one-person pairs "
          f"(stated bound {bound:.3f}, attacker right at most {0.5 + bound / 2:.3f})")  # fmt: skip
    assert rate <= bound + 3 * sigma, (rate, bound)
    # And the rounding is really applied: without it every pair would differ; with it about 1/base do.
    assert rate >= 1 / rounding.base - 3 * sigma, (rate, bound)


def test_sql_goes_to_the_airlock_and_needs_two_independent_checkers(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    sql = "SELECT b.BEN_SEX_COD AS sex, count(DISTINCT f.BEN_NIR_PSA) AS people FROM ER_PRS_F f " \
          "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1"  # fmt: skip
    job = submit_sql(w, pid, sql)
    assert job["status"] == "withheld" and stored_release(w, job["id"]).status == "pending", job
    release_id = airlock_id(w, job)
    base = f"/projects/{pid}/analyses/{job['id']}"
    assert w.call("researcher1", "GET", f"{base}/release").status_code == 409
    assert w.call("researcher1", "GET", f"{base}/download?format=csv").status_code == 409
    queue = w.call("reviewer3", "GET", "/airlock").json()
    assert any(item["release_id"] == release_id for item in queue)
    # the author, a member, an operator cannot decide; a researcher cannot read the airlock
    assert w.call("researcher1", "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 403
    assert w.call("operator", "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 403
    assert w.call("researcher2", "GET", "/airlock").status_code == 403
    assert w.call("reviewer3", "GET", f"/airlock/{release_id}").json()["rows"]
    r = w.call("reviewer3", "POST", f"/airlock/{release_id}/decisions", json=APPROVE)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert w.call("reviewer3", "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 409
    assert w.call("researcher1", "GET", f"{base}/download?format=json").status_code == 409
    # The DPO oversees and is not an output checker unless the policy says so (dpo_may_review, off by default).
    r = w.call("dpo", "POST", f"/airlock/{release_id}/decisions", json=APPROVE)
    assert r.status_code == 403 and "dpo_may_review" in r.json()["detail"], r.text
    assert [w.call("dpo", "GET", path).status_code for path in ("/airlock", f"/airlock/{release_id}")] == [403, 403]
    w.hub.settings.dpo_may_review = True  # where the policy makes the DPO a reviewer, an output checker too
    try:
        assert w.call("dpo", "GET", f"/airlock/{release_id}").status_code == 200
    finally:
        w.hub.settings.dpo_may_review = False
    r = w.call("reviewer2", "POST", f"/airlock/{release_id}/decisions", json=APPROVE)
    assert r.status_code == 200 and r.json()["status"] == "released"
    r = w.call("researcher1", "GET", f"{base}/download?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert next(iter(csv.DictReader(io.StringIO(r.text)))).keys() == {"sex", "people"}
    assert w.call("researcher1", "GET", f"{base}/download?format=json").json()["columns"] == ["sex", "people"]
    assert w.call("researcher2", "GET", f"{base}/download?format=csv").status_code == 404  # not their project
    # Released, the output leaves the airlock: its checkers (in no project) no longer read its rows.
    for checker in ("reviewer2", "reviewer3"):
        r = w.call(checker, "GET", f"/airlock/{release_id}")
        assert (r.status_code, r.json()) == (404, {"detail": f"no output {release_id} awaiting checkers"}), checker
        assert w.call(checker, "GET", f"{base}/release").status_code == 403, checker
    download = [e for e in events(w, "analysis.download") if e.outcome == "ok"][-1]
    assert download.detail["format"] == "json" and download.detail["rows"] == 2


def test_a_rejection_keeps_the_output_in(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    sql = "SELECT count(*) AS n FROM ER_PRS_F"
    job = submit_sql(w, pid, sql)
    release_id = airlock_id(w, job)
    r = w.call("reviewer2", "POST", f"/airlock/{release_id}/decisions",
               json={"decision": "reject", "reason": "a single total of events, not the agreed tables"})  # fmt: skip
    assert r.json()["status"] == "rejected"
    assert w.call("reviewer3", "POST", f"/airlock/{release_id}/decisions", json=APPROVE).status_code == 409
    assert w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}/release").status_code == 409


def test_row_level_sql_and_forbidden_sql_are_refused(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    other = w.active_project(requester="researcher2")
    cases = {
        "SELECT BEN_NIR_PSA, PRS_PAI_MNT FROM ER_PRS_F": "row-level",
        "SELECT f.BEN_NIR_PSA AS who FROM ER_PRS_F f LIMIT 20": "pseudonyms",
        "SELECT * FROM read_parquet('x.parquet')": "before",
        f"SELECT * FROM project_{other}.ER_PRS_F": "before",
        "ATTACH '/tmp/x.duckdb' AS x": "before",
        "SET threads = 64": "before",
    }
    for sql, when in cases.items():
        r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json={"sql": sql})
        if when == "before":  # refused in the request itself, before anything is queued
            job = r.json()
            assert job["status"] == "refused" and job["error"], job
        else:  # from the text (row-level by construction), or after running: then withheld, like any output kept in
            job = finished(w, pid, r.json())
            assert job["status"] in ("refused", "withheld"), job
            assert job["status"] == "refused" or stored_release(w, job["id"]).status == "refused", job
    refusals = events(w, "analysis.refuse")
    assert len(refusals) >= 4 and all(e.outcome == "denied" for e in refusals)


def test_a_spec_naming_a_column_outside_the_view_is_refused_with_the_reason(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    job = submit(w, pid, {"group_by": ["provider"], "measures": ["people"]})
    assert job["status"] == "refused" and "PFS_EXE_NUM" in job["error"], job
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json={"measures": ["max:PRS_PAI_MNT"]})
    assert r.status_code == 422


def test_only_members_reach_analyses(shared_world: World) -> None:
    w = shared_world
    pid = w.active_project()
    spec = {"group_by": ["sex"]}
    assert w.call("researcher2", "POST", f"/projects/{pid}/analyses/aggregate", json=spec).status_code == 404
    assert w.call("operator", "POST", f"/projects/{pid}/analyses/sql", json={"sql": "SELECT 1"}).status_code == 403
    assert w.call("dpo", "GET", f"/projects/{pid}/analyses").status_code == 403
    assert w.call("researcher1", "GET", f"/projects/{pid}/analyses").status_code == 200
