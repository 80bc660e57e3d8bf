# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A module-scoped world for the leads tests: a synthetic delivery with every anomaly kind injected (truth apart),
ingested once on SQLite, staff of every role, and an active control project (purpose 'expenditure', approved by
two reviewers) whose scope holds what the rules read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hygie.synth import generate
from hygie.synth.anomalies import inject
from tests.portal.world import Template, World, build_world, make_template

PEOPLE, SEED = 1200, 17
LEADS_SCOPE: dict[str, Any] = {
    "tables": {
        "ER_PRS_F": ["CLE_DCI_JNT", "EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_SGN",
                     "PFS_EXE_NUM", "PFS_PRE_NUM", "PSE_SPE_COD"],
        "IR_BEN_R": ["BEN_DCD_DTE"],
    },
    "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
    "potential_identifiers": ["care_dates"],
}  # fmt: skip


def leads_project(world: World, requester: str = "researcher1", **overrides: Any) -> int:
    body = {
        "title": "Leads of improper billing 2024",
        "purpose": "expenditure",
        "justification": "Find claims billed after death, twice, beyond a day of work or far from peers.",
        "public_summary": "Control of 2024 spending: leads for the insurer's controllers, with their evidence.",
        "scope": LEADS_SCOPE,
        **overrides,
    }
    return world.active_project(requester, **body)


@pytest.fixture(scope="session")
def anomalous_delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("leads-delivery")
    out, truth = root / "delivery", root / "truth.json"
    generate(out, people=PEOPLE, years=1, seed=SEED, start_year=2024)
    inject(out, truth, seed=SEED)
    return out, truth


@pytest.fixture(scope="session")
def leads_template(tmp_path_factory: pytest.TempPathFactory, anomalous_delivery: tuple[Path, Path]) -> Template:
    return make_template(tmp_path_factory.mktemp("leads-sqlite"), anomalous_delivery[0], None)


@pytest.fixture(scope="session")
def leads_pg_template(
    tmp_path_factory: pytest.TempPathFactory, anomalous_delivery: tuple[Path, Path], postgres_cluster: str
) -> Template:
    return make_template(tmp_path_factory.mktemp("leads-pg"), anomalous_delivery[0], postgres_cluster)


def leads_world(tmp: Path, template: Template, cluster: str | None = None) -> Iterator[World]:
    yield from build_world(tmp, template, cluster)


def either_world(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    """The world on SQLite or PostgreSQL, as ``request.param`` says (a module fixture parametrised over both)."""
    if request.param == "sqlite":
        yield from leads_world(tmp, request.getfixturevalue("leads_template"))
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        yield from leads_world(tmp, request.getfixturevalue("leads_pg_template"), cluster)


__all__ = ["anomalous_delivery", "either_world", "leads_pg_template", "leads_project", "leads_template", "leads_world"]
