# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The analyst's world for the attack suite: one ingested demo-like hub (SQLite) per module, with the project's
researchers and output checkers, and the clear deliveries (``world.delivery``) the attacks compute the truth from.

Disclosure control does not depend on the metadata database, so the attacks run on SQLite only; the analysis and
portal suites run the same services on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.analysis.conftest import sqlite_template  # noqa: F401  (fixture)
from tests.portal.world import Template, World, build_world, small_delivery  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def attack_world(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Template) -> Iterator[World]:  # noqa: F811
    """One hub for a whole attack module (each attack works in its own project)."""
    yield from build_world(tmp_path_factory.mktemp("attack"), sqlite_template, None)
