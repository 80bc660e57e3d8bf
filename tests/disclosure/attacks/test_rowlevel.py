# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Row-level outputs in disguise (issue 13, item 5), replayed through the API.

The analyst hides the pseudonym or the claim key in a SQL output (hashed, reversed, cast, cut, concatenated,
collected, grouped by, windowed), or asks for about one row per person without any key. Before, each of these
outputs reached the output checkers in the airlock as row-level data: run on the view directly, the same SQL gives
one row per person and the digests of their pseudonyms. Now none reaches the airlock: the SQL is refused before it
runs, or its output after running and before any checker sees it; so is a table grouped by people's own columns with
more rows than people / threshold (some row then holds fewer than 11 people). Honest monthly and by-sex tables still
reach the checkers.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import select

from hygie.analysis.cellkeys import project_record_keys
from hygie.analysis.models import AnalysisJob, AnalysisRelease
from hygie.governance.models import Project
from hygie.governance.views import open_view
from hygie.ingest.contract import PSEUDONYM_COLUMN
from tests.portal.world import World

DISGUISES = {
    "md5": "SELECT md5(BEN_NIR_PSA) AS x, count(*) AS n FROM ER_PRS_F GROUP BY 1",
    "reversed": "SELECT reverse(BEN_NIR_PSA) AS x, sum(PRS_PAI_MNT) AS paid FROM ER_PRS_F GROUP BY 1",
    "concatenated": "SELECT BEN_NIR_PSA || '' AS x, count(*) AS n FROM ER_PRS_F GROUP BY ALL",
    "hashed in a CTE": "WITH c AS (SELECT hash(BEN_NIR_PSA) AS h, PRS_PAI_MNT FROM ER_PRS_F) "
    "SELECT CAST(h AS VARCHAR) AS who, sum(PRS_PAI_MNT) AS paid FROM c GROUP BY 1",
    "cut": "SELECT substr(CAST(CLE_DCI_JNT AS VARCHAR), 1, 40) AS claim, count(*) AS n FROM ER_PRS_F GROUP BY 1",
    "grouped by the key": "SELECT sum(PRS_PAI_MNT) AS total, count(*) AS lines FROM ER_PRS_F GROUP BY BEN_NIR_PSA",
    "a window per person": "SELECT DISTINCT sum(PRS_PAI_MNT) OVER (PARTITION BY BEN_NIR_PSA) AS total FROM ER_PRS_F",
    "listed": "SELECT b.BEN_SEX_COD, list(md5(f.BEN_NIR_PSA)) AS people FROM ER_PRS_F f "
    "JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1",
    "string_agg": "SELECT string_agg(reverse(BEN_NIR_PSA), ',') AS s FROM IR_BEN_R",
    "arg_max": "SELECT PRS_NAT_REF, arg_max(md5(BEN_NIR_PSA), PRS_PAI_MNT) AS top FROM ER_PRS_F GROUP BY 1",
    "an extract without the key": "SELECT BEN_SEX_COD, BEN_NAI_ANN, BEN_RES_DPT FROM IR_BEN_R",
    "rows packed in lists": "SELECT list(BEN_SEX_COD) AS sex, list(BEN_NAI_ANN) AS born FROM IR_BEN_R",
}
ONE_ROW_PER_PERSON = {
    # No key anywhere: grouped by the person's attributes and their own total, nearly unique to each person.
    "per-person totals": "SELECT b.BEN_NAI_ANN, b.BEN_SEX_COD, b.BEN_RES_DPT, t.total, count(*) AS n FROM IR_BEN_R b "
    "JOIN (SELECT BEN_NIR_PSA, sum(PRS_PAI_MNT) AS total FROM ER_PRS_F GROUP BY 1) t USING (BEN_NIR_PSA) GROUP BY ALL",
}
SMALL_GROUPS = {
    # Each person in one row (grouped by their own birth band and sex), more rows than people / threshold: by
    # pigeonhole some row holds fewer than 11 people, yet far fewer rows than people.
    "five-year birth bands by sex": "SELECT BEN_NAI_ANN // 5 * 5 AS born, BEN_SEX_COD AS sex, count(*) AS n "
    "FROM IR_BEN_R GROUP BY ALL",
}
BY_SEX = "SELECT BEN_SEX_COD AS sex, count(*) AS people FROM IR_BEN_R GROUP BY 1"
HONEST = "SELECT date_trunc('month', EXE_SOI_DTD) AS month, count(*) AS lines, count(DISTINCT BEN_NIR_PSA) AS people \
FROM ER_PRS_F GROUP BY 1 ORDER BY 1"


def submit(w: World, pid: int, sql: str) -> int:
    r = w.call("researcher1", "POST", f"/projects/{pid}/analyses/sql", json={"sql": sql})
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def stored(w: World, job_id: int) -> tuple[str, AnalysisRelease | None]:
    """The platform's record of a job once it has finished: its status and its output (never shown to its author)."""
    deadline = time.monotonic() + 60
    while True:
        with w.hub.session() as session:
            job = session.get(AnalysisJob, job_id)
            assert job is not None
            release = session.scalars(select(AnalysisRelease).where(AnalysisRelease.job_id == job_id)).one_or_none()
            if job.status not in ("queued", "running"):
                if release is not None:
                    session.expunge(release)
                return job.status, release
        assert time.monotonic() < deadline, job_id
        time.sleep(0.02)


def on_the_view(w: World, pid: int, sql: str) -> tuple[list[Any], list[str]]:
    """What the SQL gives on the project's view (test only: what the checkers would have been shown), and the view's
    people."""
    with w.hub.session() as session:
        project = session.get(Project, pid)
        assert project is not None
        people = project_record_keys(w.hub, session, project).column(PSEUDONYM_COLUMN).to_pylist()
        con = open_view(w.hub, session, project)
        try:
            return con.sql(sql).fetchall(), people
        finally:
            con.close()


def test_no_disguised_row_level_output_reaches_the_airlock(attack_world: World) -> None:
    w = attack_world
    pid = w.active_project()
    # Before: the disguises are real row-level data. One row per person, each the digest of a pseudonym...
    rows, people = on_the_view(w, pid, DISGUISES["md5"])
    digests = {hashlib.md5(p.encode()).hexdigest(): p for p in people}
    assert len(rows) >= 0.5 * len(people) and {r[0] for r in rows} <= digests.keys()  # everyone with care
    # ...and the keyless one has about one row per person too.
    keyless, _ = on_the_view(w, pid, ONE_ROW_PER_PERSON["per-person totals"])
    assert len(keyless) >= 0.5 * len(people), (len(keyless), len(people))
    print(f"\nbefore: md5 of the pseudonym, {len(rows)} rows; keyless per-person totals, {len(keyless)} rows; "
          f"{len(people)} people in the view")  # fmt: skip

    bands, _ = on_the_view(w, pid, SMALL_GROUPS["five-year birth bands by sex"])
    assert len(people) / 11 < len(bands) < 0.5 * len(people) and min(r[2] for r in bands) < 11
    print(f"birth bands by sex: {len(bands)} rows, {sum(r[2] < 11 for r in bands)} of them under 11 people")

    attacks = {name: submit(w, pid, sql) for name, sql in {**DISGUISES, **ONE_ROW_PER_PERSON, **SMALL_GROUPS}.items()}
    honest, by_sex = submit(w, pid, HONEST), submit(w, pid, BY_SEX)
    outcomes = {name: stored(w, job_id) for name, job_id in attacks.items()}
    for name in DISGUISES:  # refused from the SQL itself: nothing ran
        status, release = outcomes[name]
        assert status == "refused" and release is None, (name, status)
    for name in ONE_ROW_PER_PERSON:  # ran, and refused on the data before any checker saw it
        status, release = outcomes[name]
        assert release is not None and release.status == "refused", (name, status, release)
        assert "about one row per person" in release.findings[0]
    for name in SMALL_GROUPS:
        status, release = outcomes[name]
        assert release is not None and release.status == "refused", (name, status, release)
        assert "some row describes fewer than 11 people" in release.findings[0]
    for job_id in (honest, by_sex):
        status, release = stored(w, job_id)
        assert release is not None and release.status == "pending", (status, release)

    queue = w.call("reviewer3", "GET", "/airlock").json()
    waiting = {item["job_id"]: item["release_id"] for item in queue}
    assert honest in waiting and by_sex in waiting
    assert not set(attacks.values()) & waiting.keys()
    # Nothing the checkers can open holds a pseudonym or its digest.
    for release_id in waiting.values():
        r = w.call("reviewer3", "GET", f"/airlock/{release_id}")
        if r.status_code != 200:
            continue  # a job of another attack module's project this checker may not read
        text = repr(r.json()["rows"])
        assert not any(p in text for p in people) and not any(d in text for d in digests)
    # The honest monthly table is what the checkers see: twelve months, no key.
    detail = w.call("reviewer3", "GET", f"/airlock/{waiting[honest]}").json()
    assert detail["columns"] == ["month", "lines", "people"] and 1 <= len(detail["rows"]) <= 12
