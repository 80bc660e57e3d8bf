# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

from pathlib import Path

import pytest

from hygie.synth import SynthSummary, generate

from .checks import Delivery

PEOPLE, YEARS, SEED, START = 1500, 2, 11, 2023


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary, list[tuple[int, int]]]:
    out = tmp_path_factory.mktemp("delivery")
    calls: list[tuple[int, int]] = []
    summary = generate(
        out, people=PEOPLE, years=YEARS, seed=SEED, start_year=START, progress=lambda d, t: calls.append((d, t))
    )
    return out, summary, calls


@pytest.fixture(scope="session")
def delivery(generated: tuple[Path, SynthSummary, list[tuple[int, int]]]) -> Delivery:
    return Delivery.read(generated[0])
