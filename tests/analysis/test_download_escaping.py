# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Attack: a researcher's SQL puts spreadsheet formulas in a released output (in a cell and in a column name); the
CSV a colleague downloads carries them neutralised, the JSON as they are. Property tests: tests/test_export_escaping.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.tabular import DANGEROUS
from tests.analysis.test_api import APPROVE, submit_sql
from tests.portal.world import Template, World, build_world

FORMULA = '=HYPERLINK("http://x","y")'


@pytest.fixture
def sqlite_world(sqlite_template: Template, tmp_path: Path) -> Iterator[World]:
    """The database plays no part in escaping: one SQLite hub is enough."""
    yield from build_world(tmp_path, sqlite_template, None)


def test_formulas_in_a_released_output_come_out_of_the_csv_download_neutralised(sqlite_world: World) -> None:
    w = sqlite_world
    pid = w.active_project()
    sql = (f"SELECT '{FORMULA}' || b.BEN_SEX_COD AS label, count(DISTINCT f.BEN_NIR_PSA) AS \"@SUM(A1)\" "
           "FROM ER_PRS_F f JOIN IR_BEN_R b USING (BEN_NIR_PSA) GROUP BY 1 ORDER BY 1")  # fmt: skip
    job = submit_sql(w, pid, sql)
    assert job["status"] == "withheld", job
    release_id = next(
        i["release_id"] for i in w.call("reviewer3", "GET", "/airlock").json() if i["job_id"] == job["id"]
    )
    for checker in ("reviewer3", "reviewer2"):
        r = w.call(checker, "POST", f"/airlock/{release_id}/decisions", json=APPROVE)
        assert r.status_code == 200, r.text
    assert r.json()["status"] == "released"
    base = f"/projects/{pid}/analyses/{job['id']}/download"

    r = w.call("researcher1", "GET", base, params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == '"label","\'@SUM(A1)"'
    assert all(line.startswith('"\'=HYPERLINK(""http://x"",""y"")') for line in lines[1:]), lines
    rows = list(csv.reader(io.StringIO(r.text, newline=""), quoting=csv.QUOTE_NONNUMERIC))
    assert len(rows) >= 2
    for label, people in rows[1:]:
        assert label.startswith("'" + FORMULA) and not label.startswith(DANGEROUS)
        assert isinstance(people, float)  # the count is written as a number, unquoted

    # Stored and served as JSON as computed: only what a spreadsheet opens is escaped.
    data = w.call("researcher1", "GET", base, params={"format": "json"}).json()
    assert data["columns"] == ["label", "@SUM(A1)"]
    assert all(row["label"].startswith(FORMULA) for row in data["rows"])
