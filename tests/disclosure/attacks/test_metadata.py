# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Metadata probing: the analyst learns nothing from what a job says about itself before its output is released.

The attacker has two approved projects over the same demo hub: one whose population holds the target (a woman
alone in her sex, birth year and département), one that leaves her out (women excluded). The same SQL text runs in
both, so whatever differs between the two runs differs because of her data. Before this defence the author read
``cost.output_rows`` (her exact total paid in cents through ``range(<total>)``, her number of care months), the status
``failed`` of a run that raised an error only when she was there, and the stop at the time limit. Now every field of
every route and page the author (or the public) can read is the same in both projects, and no exact value of hers
appears anywhere: 0 exact values learned. The truth comes from the clear deliveries (``world.delivery``).

A narrow project's view size (the issue's "7") is rounded and thresholded like any released count.
"""

from __future__ import annotations

import csv
import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hygie.analysis import service
from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.analysis.service import FAILED_MESSAGE, UNCHECKED_MESSAGE, WITHHELD_MESSAGE, ShownJob, shown_job
from hygie.analysis.worker import QUEUE_FULL, workers_for
from hygie.audit import AuditEvent
from hygie.disclosure.counts import shown_count
from hygie.governance.models import ProjectView
from hygie.portal import transparency
from tests.portal.world import SCOPE, World, people

RUN_ACTIONS = ("analysis.run", "analysis.release", "analysis.airlock", "analysis.release.refuse")
"""What a run writes to the record (reads aside): the same number of entries whatever happened."""


# -- the truth, from the clear deliveries --------------------------------------------------------------------------


def care_lines(world: World) -> list[dict[str, str]]:
    lines: list[dict[str, str]] = []
    for path in sorted(world.delivery.glob("flow-*/ER_PRS_F.csv")):
        with path.open(encoding="utf-8", newline="") as f:
            lines.extend(r for r in csv.DictReader(f) if r["EXE_SOI_DTD"].startswith("2024"))
    return lines


def target(world: World) -> tuple[dict[str, str], int, int]:
    """A woman alone in her (sex, birth year, département) who had care in 2024; her total paid in cents and her
    number of distinct care months (views carry care dates by month)."""
    everyone = people(world.delivery)
    lines = care_lines(world)
    key = lambda p: (p["BEN_SEX_COD"], p["BEN_NAI_ANN"], p["BEN_RES_DPT"])  # noqa: E731
    counts: dict[tuple[str, str, str], int] = {}
    for p in everyone:
        counts[key(p)] = counts.get(key(p), 0) + 1
    by_nir: dict[str, list[dict[str, str]]] = {}
    for line in lines:
        by_nir.setdefault(line["BEN_NIR"], []).append(line)
    for p in everyone:
        mine = by_nir.get(p["BEN_NIR"], [])
        months = {m["EXE_SOI_DTD"][:7] for m in mine}
        if p["BEN_SEX_COD"] == "2" and counts[key(p)] == 1 and len(months) >= 2:
            cents = int(sum(Decimal(m["PRS_PAI_MNT"]) for m in mine) * 100)
            if cents > 20_000:  # more rows than the SQL cap: the case of the issue (75,606)
                return p, cents, len(months)
    raise AssertionError("no target in the delivery")


def her(p: dict[str, str]) -> str:
    return (
        f"CAST(b.BEN_SEX_COD AS VARCHAR) = '2' AND CAST(b.BEN_NAI_ANN AS VARCHAR) = '{int(p['BEN_NAI_ANN'])}' "
        f"AND CAST(b.BEN_RES_DPT AS VARCHAR) = '{p['BEN_RES_DPT']}'"
    )


def probes(p: dict[str, str]) -> dict[str, str]:
    """The attacks of the issue, each one SQL text run unchanged in both projects."""
    where = her(p)
    there = f"(SELECT count(*) FROM IR_BEN_R b WHERE {where})"
    paid = f"(SELECT round(sum(f.PRS_PAI_MNT) * 100) FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA) WHERE {where})"
    only_if_there = f"(SELECT f.PRS_PAI_MNT FROM ER_PRS_F f WHERE {there} > 0)"
    return {
        # output_rows = her exact total paid, in cents (refused as an extract: before, its row count still showed)
        "amount": f"SELECT k, count(*) AS n FROM (SELECT unnest(range(CAST({paid} AS BIGINT))) AS k) t GROUP BY k",
        # a one-person filter: output_rows = her number of care months
        "one_person": "SELECT f.EXE_SOI_DTD AS day, count(*) AS n FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA) "
        f"WHERE {where} GROUP BY 1",
        # an error raised only when she is there (a failed cast): before, status 'failed' against 'succeeded'
        "error": f"SELECT CAST(CASE WHEN {there} > 0 THEN 'x' ELSE '1' END AS INTEGER) AS n",
        # a resource limit hit only when she is there (a cross product of all care lines, else of nothing):
        # before, 'stopped at the time limit'
        "limit": f"SELECT count(*) AS n FROM {only_if_there} a, {only_if_there} c, {only_if_there} d",
    }


# -- the attacker's side ------------------------------------------------------------------------------------------


def finished(w: World, pid: int, job: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = w.call("researcher1", "GET", f"/projects/{pid}/analyses/{job['id']}").json()
    return job


def stored(w: World, job_id: int) -> AnalysisJob:
    with w.hub.session() as session:
        job = session.get(AnalysisJob, job_id)
        assert job is not None
        session.expunge(job)
        return job


def scrub(text: str, pid: int, job: dict[str, Any]) -> str:
    """Removes what differs by construction (the job's and project's ids where they are named, the submission and
    showing times, page tokens) and the SQL text (the same in both projects), nothing else: any number left is
    compared."""
    for sql in (job["text"], html.escape(job["text"]), json.dumps(job["text"])[1:-1]):
        text = text.replace(sql, "<sql>")
    text = re.sub(r'name="csrf" value="[^"]+"', "", text)
    text = re.sub(r"\d\d/\d\d/\d{4} \d\d:\d\d UTC", "<time>", text)
    for stamp in (job.get("submitted_at"), job.get("finished_at")):
        if stamp:
            text = text.replace(str(stamp), "<time>")
    text = re.sub(rf'"id":{job["id"]},"project_id":{pid},', '"id":<job>,"project_id":<project>,', text)
    text = re.sub(rf"(analyses/|[Aa]nalys[ie]s? ){job['id']}(?!\d)", r"\1<job>", text)
    return re.sub(rf"(projets/|projects/|[Pp]roje[ct]t? |project-){pid}(?!\d)", r"\1<project>", text)


def author_view(w: World, pages: TestClient, pid: int, job: dict[str, Any]) -> dict[str, str]:
    """Everything the author (and the public) can read about the job, ids and times scrubbed."""
    base = f"/projects/{pid}/analyses/{job['id']}"
    volatile = {"id", "project_id", "submitted_at", "finished_at", "text", "author"}

    def fields(entries: list[dict[str, Any]]) -> str:
        mine = [{k: v for k, v in e.items() if k not in volatile} for e in entries if e["id"] == job["id"]]
        assert len(mine) == 1, entries
        return json.dumps(mine[0], sort_keys=True)

    view = {
        "job": fields([w.call("researcher1", "GET", base).json()]),
        "listed": fields(w.call("researcher1", "GET", f"/projects/{pid}/analyses").json()),
        "register": fields(w.call(None, "GET", "/register", params={"limit": 200}).json()["jobs"]),
    }
    seen = {
        "release": w.call("researcher1", "GET", f"{base}/release"),
        "csv": w.call("researcher1", "GET", f"{base}/download", params={"format": "csv"}),
        "json": w.call("researcher1", "GET", f"{base}/download", params={"format": "json"}),
        "page": pages.get(f"/recherche/projets/{pid}/analyses/{job['id']}"),
        "page_list": pages.get(f"/recherche/projets/{pid}/analyses"),
    }
    view |= {name: scrub(f"{r.status_code} {r.text}", pid, job) for name, r in seen.items()}
    # the page list shows every job of the project: keep the row of this job only
    row = re.search(r'<tr><td><a href="[^"]*/analyses/<job>">.*?</tr>', view["page_list"], re.S)
    assert row is not None, view["page_list"]
    view["page_list"] = row.group(0)
    return view


def record_of_run(w: World, job_id: int) -> list[tuple[str, str]]:
    with w.hub.session() as session:
        found = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(RUN_ACTIONS))).all()
        return sorted((e.action, e.outcome) for e in found if (e.detail or {}).get("job") == job_id)


@pytest.fixture(scope="module")
def projects(attack_world: World) -> Iterator[tuple[int, int]]:
    """(with her, without her): the same request, women excluded from the second."""
    w = attack_world
    present = w.active_project()
    scope = {**SCOPE, "population": {**SCOPE["population"], "sexes": [1]}}
    absent = w.active_project(scope=scope)
    yield present, absent


def test_job_metadata_tells_the_author_nothing_about_the_target(attack_world: World, projects: tuple[int, int]) -> None:
    w = attack_world
    present, absent = projects
    person, cents, months = target(w)
    pages = w.pages("researcher1")
    w.hub.settings.analysis_timeout_seconds = 1.0  # the limit her presence makes a query hit
    learned: list[str] = []
    try:
        for name, sql in probes(person).items():
            seen, runs = {}, {}
            for pid in (present, absent):
                r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json={"sql": sql})
                assert r.status_code == 200, r.text
                job = finished(w, pid, r.json())
                seen[pid], runs[pid] = author_view(w, pages, pid, job), stored(w, job["id"])
            with_her, without_her = runs[present], runs[absent]
            # What the platform knows (the checkers, the DPO, the record), and the author used to read:
            if with_her.status != "refused":
                if name == "amount":
                    assert with_her.cost and with_her.cost["output_rows"] == cents, (with_her.cost, cents)
                elif name == "one_person":
                    assert with_her.cost and with_her.cost["output_rows"] == months, (with_her.cost, months)
                elif name == "error":
                    assert (with_her.status, without_her.status) == ("failed", "succeeded")
                else:
                    assert with_her.status == "failed" and "time limit" in (with_her.error or "")
            # What the author reads now: the same, field by field, page by page, in both projects.
            for field in seen[present]:
                assert seen[present][field] == seen[absent][field], (name, field, seen[present][field])
                for secret in (str(cents), f"{cents:,}", f"{cents / 100:.2f}"):
                    if secret in seen[present][field]:
                        learned.append(f"{name}/{field}: {secret}")
            # The record keeps the truth (the DPO's and auditors'), in as many entries either way: the public
            # log, which shows how many entries a run wrote, cannot tell a stop from a refusal from an airlock.
            assert len(record_of_run(w, with_her.id)) == len(record_of_run(w, without_her.id)), name
    finally:
        w.hub.settings.analysis_timeout_seconds = 120.0
    assert learned == [], learned
    print(f"\nmetadata probing: 4 probes x 2 projects (her total {cents} cents, {months} care months, both in the "
          f"platform's record), 8 author views compared: exact values learned {len(learned)}")  # fmt: skip


def test_nothing_of_the_audit_record_is_the_authors_to_read(attack_world: World, projects: tuple[int, int]) -> None:
    """The record keeps the data-dependent numbers (rows, seconds, the stop) for the DPO and auditors: a researcher
    reads none of it, and the public log shows run events as bare salted commitments of one size."""
    w = attack_world
    for path in ("/audit/events", "/audit/entries/full?start=0&end=1", "/me/audit-entries"):
        assert w.call("researcher1", "GET", path).status_code == 403, path
    size = int(w.call(None, "GET", "/audit/checkpoint").text.splitlines()[1])
    leaves = w.call(None, "GET", "/audit/entries", params={"start": max(0, size - 200), "end": size}).json()["entries"]
    bare = [e for e in leaves if e["register"] is None]
    assert bare and {len(e["leaf"]) for e in bare if e["leaf"]} == {len(bare[0]["leaf"])}
    clear = {e["register"]["action"] for e in leaves if e["register"]}
    assert not clear & {"analysis.run", "analysis.airlock", "analysis.release.refuse", "analysis.refuse"}, clear


def test_a_finished_job_shows_only_at_the_next_quantum(attack_world: World, projects: tuple[int, int]) -> None:
    """The run time depends on the data: the job shows as finished only at a whole number of quanta after its
    submission (here an hour, so the test never races the clock)."""
    w = attack_world
    present, _ = projects
    w.hub.settings.analysis_visible_quantum_seconds = 3600.0
    try:
        r = w.call("researcher1", "POST", f"/projects/{present}/analyses/aggregate", json={"group_by": ["sex"]})
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while stored(w, job_id).status in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert stored(w, job_id).status == "succeeded"
        shown = w.call("researcher1", "GET", f"/projects/{present}/analyses/{job_id}").json()
        assert (shown["status"], shown["finished_at"], shown["error"]) == ("running", None, None), shown
        r = w.call("researcher1", "GET", f"/projects/{present}/analyses/{job_id}/release")
        assert r.status_code == 409 and "no released output" in r.json()["detail"], r.text
        register = w.call(None, "GET", "/register").json()
        public = [j for j in register["jobs"] if j["id"] == job_id]
        assert public and public[0]["status"] == "running", public
        assert not [r for r in register["releases"] if r["job_id"] == job_id]  # nor listed as released yet
        with w.hub.session() as session:  # nor to citizens (their one-statement list falls back while it is unseen)
            for quantum in (3600.0, 0.0):
                quick = transparency.project_releases(session, [present], limit=100, quantum=quantum)
                assert quick == transparency.releases(session, project_ids=[present], limit=100, quantum=quantum)[1]
                assert quantum == 0.0 or job_id not in [e.job_id for e in quick], quick
        # finished_at is set at the commit that ends the run: after the checks, the ledger and the record
        with w.hub.session() as session:
            ended = stored(w, job_id).finished_at
            release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id)).one()
            events = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(RUN_ACTIONS))).all()
            last = max(e.at for e in events if (e.detail or {}).get("job") == job_id)
            assert ended is not None and ended >= last and ended >= release.created_at, (ended, last)
    finally:
        w.hub.settings.analysis_visible_quantum_seconds = 0.0
    shown = w.call("researcher1", "GET", f"/projects/{present}/analyses/{job_id}").json()
    assert shown["status"] in ("released", "withheld") and shown["finished_at"], shown
    listed = [r for r in w.call(None, "GET", "/register").json()["releases"] if r["job_id"] == job_id]
    assert len(listed) == (shown["status"] == "released"), listed


def test_release_ids_date_no_run_for_the_author_nor_the_public(attack_world: World, projects: tuple[int, int]) -> None:
    """Release rows are numbered as runs end (every run leaves one), so two probes' release ids would count the runs
    that ended between them, the target's included: a data-dependent end dated to the probes' spacing, whatever the
    quantum. The author and the public now read outputs by job id only; the airlock (release ids) is the checkers'."""
    w = attack_world
    present, _ = projects
    person, _, _ = target(w)
    jobs = []
    for sql in (None, probes(person)["one_person"], None):  # probe, target (a withheld SQL job), probe
        path, body = ("aggregate", {"group_by": ["sex"]}) if sql is None else ("sql", {"sql": sql})
        r = w.call("researcher1", "POST", f"/projects/{present}/analyses/{path}", json=body)
        assert r.status_code == 200, r.text
        jobs.append(finished(w, present, r.json()))
    before, target_job, after = jobs
    with w.hub.session() as session:
        ids = {j: session.scalars(select(AnalysisRelease.id).where(AnalysisRelease.job_id == j)).one()
               for j in (before["id"], target_job["id"], after["id"])}  # fmt: skip
    # What the ids told: the target's run ended between the probes (one release row in the gap).
    assert ids[after["id"]] - ids[before["id"]] == 2 and ids[before["id"]] < ids[target_job["id"]] < ids[after["id"]]
    released = [j for j in (before, after) if j["status"] == "released"]
    assert released, jobs  # a table by sex of the test view clears the checks
    for job in released:
        r = w.call("researcher1", "GET", f"/projects/{present}/analyses/{job['id']}/release")
        assert r.status_code == 200 and "id" not in r.json() and r.json()["job_id"] == job["id"], r.text
    register = w.call(None, "GET", "/register", params={"limit": 200}).json()
    fields = {"project_id", "job_id", "status", "created_at", "decided_at"}
    assert register["releases"] and all(set(e) == fields for e in register["releases"]), register["releases"][:2]
    order = [e["job_id"] for e in register["releases"]]
    assert order == sorted(order, reverse=True)  # by submission, not by end of run
    uses = w.call("researcher1", "GET", "/me/data-uses")
    assert uses.status_code == 403 or all(set(e) == fields for e in uses.json()["releases"])
    # The airlock, where release ids are, is the output checkers' alone.
    rid = ids[target_job["id"]]
    for method, path in (("GET", "/airlock"), ("GET", f"/airlock/{rid}"), ("POST", f"/airlock/{rid}/decisions")):
        body = {"json": {"decision": "approve", "reason": "looks fine to me"}} if method == "POST" else {}
        assert w.call("researcher1", method, path, **body).status_code == 403, path


def test_a_request_that_cannot_be_checked_is_refused_not_left_running(
    attack_world: World, projects: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQL that does not tokenize (an open quote) was a 500 with the job left ``running`` for ever; so was a failure
    in the view lookup or the compilation. Each is now a refusal in the request, on the record."""
    w = attack_world
    present, _ = projects
    base = f"/projects/{present}/analyses"
    r = w.call("researcher1", "POST", f"{base}/sql", json={"sql": "SELECT 'abc FROM ER_PRS_F"})
    assert r.status_code == 200 and r.json()["status"] == "refused", r.text
    assert "could not be read as DuckDB" in r.json()["error"]

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug quoting 179934")

    for name in ("_view", "_compile"):
        with monkeypatch.context() as m:
            m.setattr(service.Analyses, name, broken)
            r = w.call("researcher1", "POST", f"{base}/aggregate", json={"group_by": ["sex"]})
        assert r.status_code == 200 and r.json()["status"] == "refused", (name, r.text)
        assert r.json()["error"] == UNCHECKED_MESSAGE and "179934" not in r.text
        job = stored(w, r.json()["id"])
        assert (job.status, job.started_at) == ("refused", None) and job.finished_at is not None
        assert w.call("researcher1", "GET", f"{base}/{job.id}").json()["status"] == "refused"
        assert record_of_run(w, job.id) == []  # nothing ran
    with w.hub.session() as session:
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.action == "analysis.refuse")).all()
        assert any(e.detail.get("reason") == UNCHECKED_MESSAGE for e in refusals)


def test_a_full_queue_says_nothing_of_other_projects_load(
    attack_world: World, projects: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal quoted how many jobs were queued or running on the whole hub: polled, a probe of when other
    projects' (data-dependent) runs end. Now one fixed text. The queue is the hub's, counted in the database: a job
    another server process runs fills it as much as one of this process."""
    w = attack_world
    pid, _ = projects
    pool = workers_for(w.hub)
    with w.hub.session() as session:
        other = AnalysisJob(project_id=pid, author_id=w.ids["researcher1"], kind="sql", text="SELECT 1",
                            status="running", submitted_at=datetime.now(UTC), queued_at=datetime.now(UTC),
                            started_at=datetime.now(UTC))  # fmt: skip
        session.add(other)
        session.commit()
        other_id = other.id
    pool.hold(other_id)  # "another process" runs it (no recovery fails it meanwhile)
    monkeypatch.setattr(pool, "limit", 1)
    try:
        r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/aggregate", json={"group_by": ["sex"]})
        assert r.status_code == 200 and r.json()["status"] == "refused", r.text
        assert r.json()["error"] == QUEUE_FULL and not re.search(r"\d", QUEUE_FULL)
        assert record_of_run(w, r.json()["id"]) == []  # nothing ran
    finally:
        with w.hub.session() as session:
            session.get(AnalysisJob, other_id).status = "failed"  # type: ignore[union-attr]
            session.commit()
        pool.let_go(other_id)


def test_a_narrow_projects_view_size_is_rounded_and_thresholded(attack_world: World) -> None:
    """The issue's narrow project (7 people, shown exactly): now under the threshold it shows as null, and every
    size shown is a multiple of the rounding base."""
    w = attack_world
    person, _, _ = target(w)
    population = {**SCOPE["population"], "sexes": [2], "departements": [person["BEN_RES_DPT"]]}
    pid = w.active_project(scope={**SCOPE, "population": population})
    with w.hub.session() as session:
        truth = session.scalars(select(ProjectView).where(ProjectView.project_id == pid)).one()
        people_, rows = truth.people, {t: int(m["rows"]) for t, m in truth.tables.items()}
    assert 0 < people_ < w.hub.settings.disclosure_threshold, people_  # narrow: the attack has something to learn
    view = w.call("researcher1", "GET", f"/projects/{pid}/view").json()
    assert view["people"] is None, view
    base, threshold = w.hub.settings.disclosure_rounding_base, w.hub.settings.disclosure_threshold
    for table, described in view["tables"].items():
        assert described["rows"] == shown_count(rows[table], threshold, base), (table, described)
        assert described["rows"] is None or described["rows"] % base == 0
    page = w.pages("researcher1").get(f"/recherche/projets/{pid}").text
    assert "moins de personnes que le seuil" in page
    assert f"{people_} personnes" not in page


def test_what_a_job_shows_depends_on_nothing_but_release_and_the_quantum() -> None:
    """Every way a run can keep its output in shows the same, at the same time; a refusal in the request shows at
    once with its reason (pure: the clock is passed in)."""
    t0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    at = lambda s: t0 + timedelta(seconds=s)  # noqa: E731

    def job(status: str, error: str | None = None, ran: bool = True) -> AnalysisJob:
        return AnalysisJob(status=status, submitted_at=t0, started_at=at(1) if ran else None, finished_at=at(7),
                           error=error, duration_seconds=6.0, cost={"output_rows": 179_934})  # fmt: skip

    def release(status: str) -> AnalysisRelease:
        return AnalysisRelease(status=status, verdict="review", summary={"rows": 179_934})

    kept_in = [
        (job("failed", "stopped at the time limit of 120 s"), release("refused")),
        (job("failed", FAILED_MESSAGE), None),
        (job("succeeded"), release("pending")),
        (job("succeeded"), release("rejected")),
        (job("succeeded"), release("refused")),
    ]
    for j, r in kept_in:
        assert shown_job(j, r, 5.0, at(9)) == ShownJob("running", None, None)
        assert shown_job(j, r, 5.0, at(10)) == ShownJob("withheld", at(10), WITHHELD_MESSAGE)
        assert shown_job(j, r, 0.0, at(7)) == ShownJob("withheld", at(7), WITHHELD_MESSAGE)
    assert shown_job(job("succeeded"), release("released"), 5.0, at(10)) == ShownJob("released", at(10), None)
    text = "function read_csv() is refused"
    assert shown_job(job("refused", text, ran=False), None, 5.0, at(0)) == ShownJob("refused", at(7), text)
    # finished_at is set just before the commit ending the run: a run ending just before a boundary shows at the
    # next one, so the commit (seen by other sessions only once done) never lands after the moment it shows
    late = AnalysisJob(status="succeeded", submitted_at=t0, started_at=at(1), finished_at=at(4.95))
    assert shown_job(late, release("pending"), 5.0, at(5)).status == "running"
    assert shown_job(late, release("pending"), 5.0, at(10)) == ShownJob("withheld", at(10), WITHHELD_MESSAGE)
    early = AnalysisJob(status="succeeded", submitted_at=t0, started_at=at(1), finished_at=at(3.9))
    assert shown_job(early, release("released"), 5.0, at(5)) == ShownJob("released", at(5), None)
    invalid = job("refused", "the query is not valid on this view: Binder Error")
    assert shown_job(invalid, release("refused"), 5.0, at(9)).status == "running"  # it waited in the queue
    assert shown_job(invalid, release("refused"), 5.0, at(10)) == ShownJob("refused", at(10), invalid.error)
