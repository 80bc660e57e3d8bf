# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The first command of the README: `hygie demo` builds the whole platform on synthetic data — accounts of every
role, a reviewed project with its view, a breach imported and notified — and a second run changes nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hygie.breach.models import BreachIncident, BreachNotice
from hygie.cli import app
from hygie.config import get_settings
from hygie.governance.models import Account, Project
from hygie.hub import Hub
from tests.conftest import TEST_PASSPHRASE
from tests.ingest.test_security import scan_data_dir
from tests.test_journey_ingest import LIGHT_KDF


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"HYGIE_DATA_DIR": str(tmp_path / "hub"), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE, **LIGHT_KDF}.items():
        monkeypatch.setenv(k, v)


def _state(hub: Hub) -> tuple[dict[str, str], list[str], list[tuple[str, int]], int]:
    with hub.session() as session:
        roles = {a.username: a.role for a in session.scalars(select(Account))}
        projects = [p.status for p in session.scalars(select(Project))]
        incidents = [(i.status, i.counts["matched"]) for i in session.scalars(select(BreachIncident))]
        citizen = session.scalars(select(Account).where(Account.username == "citoyen1")).one()
        notices = session.scalar(
            select(func.count()).select_from(BreachNotice).where(BreachNotice.person_index == citizen.person_index)
        )
        return roles, projects, incidents, int(notices or 0)


def test_demo_builds_the_platform_once(tmp_path: Path, env: None) -> None:
    out = tmp_path / "deliveries"
    args = ["demo", "--people", "400", "--years", "1", "--out", str(out), "--no-serve"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "demo breach:" in first.output and "citoyen1" in first.output
    hub = Hub.open(get_settings())
    try:
        roles, projects, incidents, notices = _state(hub)
    finally:
        hub.close()
    assert {"operateur", "dpd", "relecteur1", "relecteur2", "chercheuse", "auditeur", "citoyen1", "citoyen2"} <= set(
        roles
    )
    assert projects == ["active"]
    assert len(incidents) == 1 and incidents[0][0] == "notified" and incidents[0][1] >= 250
    assert notices == 1  # the first demo citizen can read their notice in the portal

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    hub = Hub.open(get_settings())
    try:
        assert _state(hub) == (roles, projects, incidents, notices)
    finally:
        hub.close()
    # No identifier of the synthetic population in clear anywhere under the hub's data directory (the demo leak
    # is kept encrypted, its outcomes hold no value).
    needles: list[bytes] = []
    with (out / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            needles += [row["BEN_NIR"].encode(), row["BEN_NIR"][:13].encode(), f"{row['NOM']};{row['PRENOM']}".encode()]
            needles += [row[k].encode() for k in ("EMAIL", "TELEPHONE") if row[k]]
    assert scan_data_dir(tmp_path / "hub", needles) == []
