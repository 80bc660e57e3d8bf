# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""`hygie analysis` talks to the HTTP API: submit, jobs, show, download."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hygie import apiclient
from hygie.cli import app
from tests.portal.world import World


def test_submit_follow_and_download(shared_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = shared_world
    pid = w.active_project()
    headers = w.headers("researcher1")

    def in_process(server: str) -> httpx.Client:
        return TestClient(w.client.app, headers=headers)

    monkeypatch.setattr(apiclient, "client", in_process)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"group_by": ["sex"], "measures": ["people", "events"]}))
    runner = CliRunner()
    result = runner.invoke(app, ["analysis", "submit", "--project", str(pid), "--spec", str(spec), "--poll", "0.05"])
    assert result.exit_code == 0, result.output
    job = json.loads(result.output)
    assert job["status"] == "released"
    result = runner.invoke(app, ["analysis", "jobs", "--project", str(pid)])
    assert result.exit_code == 0 and str(job["id"]) in result.output
    result = runner.invoke(app, ["analysis", "show", str(job["id"]), "--project", str(pid)])
    assert result.exit_code == 0 and '"people"' in result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["analysis", "download", str(job["id"]), "--project", str(pid), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0].startswith('"sex","people","events"')  # text cells quoted
    sql = tmp_path / "q.sql"
    sql.write_text("SELECT * FROM read_parquet('x')")
    result = runner.invoke(app, ["analysis", "submit", "--project", str(pid), "--sql", str(sql)])
    assert result.exit_code == 1 and "refused" in result.output
