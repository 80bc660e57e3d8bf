"""A hub holding a small ingested synthetic population, for the governance tests.

The delivery is generated once per session; each test ingests it into its own hub (on SQLite and on
PostgreSQL through the ``hub`` fixture), which takes a second or two at this size.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hygie.governance.models import Account, Project
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.synth import generate

PEOPLE, YEARS, SEED, START = 400, 1, 23, 2023


@pytest.fixture(scope="session")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("governance-delivery")
    generate(out, people=PEOPLE, years=YEARS, seed=SEED, start_year=START)
    return out


@pytest.fixture
def populated(hub: Hub, delivery: Path) -> Iterator[Hub]:
    for batch in expand_batches([delivery]):
        result = ingest_batch(hub, batch)
        assert result.status == "accepted", result
    yield hub


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
