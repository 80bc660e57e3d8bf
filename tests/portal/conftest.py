# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.portal.world import Template, World, build_world, make_template, small_delivery  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, small_delivery: Path) -> Template:  # noqa: F811
    return make_template(tmp_path_factory.mktemp("tpl-sqlite"), small_delivery, None)


@pytest.fixture(scope="session")
def postgres_template(
    tmp_path_factory: pytest.TempPathFactory,
    small_delivery: Path,  # noqa: F811
    postgres_cluster: str,
) -> Template:
    return make_template(tmp_path_factory.mktemp("tpl-pg"), small_delivery, postgres_cluster)


def _world(request: pytest.FixtureRequest, tmp: Path) -> Iterator[World]:
    if request.param == "sqlite":
        yield from build_world(tmp, request.getfixturevalue("sqlite_template"), None)
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        yield from build_world(tmp, request.getfixturevalue("postgres_template"), cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A fresh hub per test (a copy of one ingested hub), on SQLite and on PostgreSQL."""
    yield from _world(request, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One hub for a whole module (tests that only read, or act on their own projects)."""
    yield from _world(request, tmp_path_factory.mktemp("world"))
