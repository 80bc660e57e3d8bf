# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A small hub with an ingested synthetic population, shared by the warehouse's Spark tests (SQLite: the Spark
path does not depend on the metadata database, which the DuckDB tests cover on both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batches
from hygie.synth import generate
from tests.conftest import make_settings

PEOPLE, YEARS, SEED, START = 200, 1, 5, 2023


@pytest.fixture(scope="session")
def spark_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Ingested once per session; tests must not change its warehouse (they write under tmp_path)."""
    delivery = tmp_path_factory.mktemp("spark-delivery")
    generate(delivery, people=PEOPLE, years=YEARS, seed=SEED, start_year=START)
    hub = Hub.init(make_settings(tmp_path_factory.mktemp("spark-hub") / "hub"))
    assert {r.status for r in ingest_batches(hub, expand_batches([delivery]))} == {"accepted"}
    yield hub
    hub.close()


def files_of(hub: Hub, table: str) -> list[Path]:
    with hub.session() as session:
        return hub.warehouse.files(session, table)
