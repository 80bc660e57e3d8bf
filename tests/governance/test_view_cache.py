# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Views read from the in-memory cache answer exactly as from their files, and the cache never outlives what made
them readable: an objection, a rewritten file, a destroyed view.

The attacks: a researcher counting a person who objected after the view was cached; a view served from memory
after its files were destroyed (crypto-shredding undone in a live process) or replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.analysis.cellkeys import project_record_keys
from hygie.governance.models import Project
from hygie.governance.views import ViewError, destroy_view, newest_ready
from hygie.hub import Hub
from hygie.warehouse.viewcache import ViewCache
from tests.portal.world import Template, clone_hub, release_hub

from .conftest import make_project
from .test_optout import citizen_with_drugs, object_
from .test_views import BROAD, build, query, rekeyed


@pytest.fixture
def populated(tmp_path: Path, sqlite_population: Template) -> Iterator[Hub]:
    """The cache is the same whatever the database: on SQLite only."""
    hub = clone_hub(tmp_path, sqlite_population, None)
    yield hub
    release_hub(hub)


COUNTS = "SELECT (SELECT count(*) FROM IR_BEN_R), (SELECT count(*) FROM ER_PRS_F), (SELECT count(*) FROM ER_PHA_F)"


def test_cached_and_streamed_views_answer_alike(populated: Hub, delivery: Path) -> None:
    hub = populated
    project = make_project(hub, BROAD)
    build(hub, project)
    hub.view_cache = ViewCache(0, 60)
    streamed = query(hub, project, COUNTS)
    hub.view_cache = ViewCache(1 << 30, 60)
    assert query(hub, project, COUNTS) == streamed  # loads
    assert hub.view_cache.size > 0
    assert query(hub, project, COUNTS) == streamed  # from memory
    hub.view_cache = ViewCache(1024, 60)  # smaller than the view: streamed, not kept
    assert query(hub, project, COUNTS) == streamed and hub.view_cache.size == 0


def test_an_objection_after_caching_leaves_the_cached_view_at_once(populated: Hub, delivery: Path) -> None:
    hub = populated
    hub.view_cache = ViewCache(1 << 30, 60)
    citizen, psa = citizen_with_drugs(hub, delivery, "cached-objector")
    project = make_project(hub, BROAD)
    build(hub, project)
    (pid,) = rekeyed(hub, project, {psa})
    mine = f"SELECT count(*) FROM ER_PRS_F WHERE BEN_NIR_PSA = '{pid}'"
    ((care,),) = query(hub, project, mine)
    assert care > 0 and hub.view_cache.size > 0
    object_(hub, citizen)
    assert query(hub, project, mine) == [(0,)]
    assert query(hub, project, f"SELECT count(*) FROM IR_BEN_R WHERE BEN_NIR_PSA = '{pid}'") == [(0,)]


def test_a_rewritten_or_destroyed_view_is_never_served_from_memory(populated: Hub, delivery: Path) -> None:
    hub = populated
    hub.view_cache = ViewCache(1 << 30, 60)
    project = make_project(hub, BROAD)
    build(hub, project)
    query(hub, project, COUNTS)
    with hub.session() as session:
        view = newest_ready(session, project.id)
        assert view is not None
        care = hub.settings.data_dir / view.tables["ER_PRS_F"]["file"]
    # Same size, other bytes: the cache keys the file as it is now, so the damaged file is read (and refused).
    data = bytearray(care.read_bytes())
    data[len(data) // 2] ^= 0xFF
    care.write_bytes(bytes(data))
    with pytest.raises(Exception):
        query(hub, project, "SELECT sum(PRS_PAI_MNT) FROM ER_PRS_F")
    build(hub, project)  # a new generation
    query(hub, project, COUNTS)
    assert hub.view_cache.size > 0
    with hub.session() as session:
        project_record_keys(hub, session, session.get(Project, project.id))
    assert hub.view_cache.attached(project.id, "record_keys", dict)  # derived from the view: kept beside it
    with hub.session() as session:
        destroy_view(hub, session, project, actor="account:1")
        session.commit()
    assert hub.view_cache.size == 0
    assert hub.view_cache.attached(project.id, "record_keys", dict) == {}  # and gone with it
    with pytest.raises(ViewError):
        query(hub, project, COUNTS)
