# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import hygie.db.models  # noqa: F401
from hygie.db import Base
from hygie.hub import Hub


def test_migrations_build_exactly_the_declared_models(hub: Hub) -> None:
    """Every model change comes with its migration, on SQLite and on PostgreSQL."""
    with hub.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
