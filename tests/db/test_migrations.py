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
