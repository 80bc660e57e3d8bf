# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import csv

import pytest

from hygie.synth import generate
from tests.portal.conftest import postgres_template, shared_world, sqlite_template, world  # noqa: F401  (fixtures)
from tests.portal.world import small_delivery  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def outsiders(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    """People of another synthetic population: in the leak, not in the vault."""
    out = tmp_path_factory.mktemp("outsiders")
    generate(out, people=40, years=1, seed=99, start_year=2024)
    with (out / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
