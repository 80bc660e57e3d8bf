# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A hub holding a small ingested synthetic population, for the governance tests.

The delivery is generated and ingested once per session and database; each test gets a copy of that hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hygie.governance.models import Account, Project
from hygie.hub import Hub
from hygie.synth import generate
from tests.portal.world import Template, clone_hub, make_template, release_hub

PEOPLE, YEARS, SEED, START = 400, 1, 23, 2023


@pytest.fixture(scope="session")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("governance-delivery")
    generate(out, people=PEOPLE, years=YEARS, seed=SEED, start_year=START)
    return out


@pytest.fixture(scope="session")
def sqlite_population(tmp_path_factory: pytest.TempPathFactory, delivery: Path) -> Template:
    return make_template(tmp_path_factory.mktemp("gov-sqlite"), delivery, None)


@pytest.fixture(scope="session")
def postgres_population(tmp_path_factory: pytest.TempPathFactory, delivery: Path, postgres_cluster: str) -> Template:
    return make_template(tmp_path_factory.mktemp("gov-pg"), delivery, postgres_cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def populated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    """A hub of its own holding the population, ingested once per session and copied (ingesting takes seconds),
    on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        hub = clone_hub(tmp_path, request.getfixturevalue("sqlite_population"), None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        hub = clone_hub(tmp_path, request.getfixturevalue("postgres_population"), cluster)
    yield hub
    release_hub(hub)


_projects = iter(range(10**6))


def make_project(hub: Hub, scope: dict[str, Any], *, purpose: str = "research", status: str = "active") -> Project:
    """An active project row made directly (the lifecycle that normally makes it is tested elsewhere)."""
    now = datetime.now(UTC)
    with hub.session() as session:
        requester = session.query(Account).filter_by(username="requester").one_or_none()
        if requester is None:
            requester = Account(
                username="requester", role="researcher", password_hash="x", created_at=now, created_by="test"
            )
            session.add(requester)
            session.flush()
        project = Project(
            requester_id=requester.id,
            organisation="Test lab",
            title=f"Project {next(_projects)}",
            purpose=purpose,
            justification="tests",
            public_summary="tests",
            scope=scope,
            duration_days=365,
            threshold=11,
            status=status,
            created_at=now,
        )
        session.add(project)
        session.commit()
        session.expunge(project)
        return project
