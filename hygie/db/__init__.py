# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The metadata database: SQLAlchemy 2 models, Alembic migrations; SQLite in the data dir by default,
PostgreSQL through ``HYGIE_DATABASE_URL``.

Each layer declares its own tables on :class:`Base`; :mod:`hygie.db.models` imports them all so that
migrations see one metadata.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from hygie.config import Settings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


@event.listens_for(Base, "load", propagate=True)
@event.listens_for(Base, "refresh", propagate=True)
def _utc_on_load(instance: Any, *_args: Any) -> None:
    """SQLite hands back timezone-aware columns as naive datetimes (stored in UTC): give them their UTC zone back
    on load, so every datetime leaving the platform is an unambiguous RFC 3339 timestamp, whatever the database."""
    for column in instance.__table__.columns:
        if isinstance(column.type, DateTime) and column.type.timezone:
            value = instance.__dict__.get(column.key)
            if isinstance(value, datetime) and value.tzinfo is None:
                set_committed_value(instance, column.key, value.replace(tzinfo=UTC))


def _sqlite_pragmas(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # WAL with FULL sync: a committed batch survives a crash or power loss; readers never block the writer.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return on_connect


def make_engine(settings: Settings) -> Engine:
    """An engine whose every call is bounded: waiting for a pooled connection, opening one, and (on PostgreSQL)
    each statement, so a failing database yields an error the portal can answer 503 with, never a hung request."""
    url = make_url(settings.database)
    options: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        timeout = int(settings.database_statement_timeout_ms)
        options["connect_args"] = {
            "connect_timeout": settings.database_connect_timeout_seconds,
            **({"options": f"-c statement_timeout={timeout}"} if timeout > 0 else {}),
        }
    if url.database not in (None, "", ":memory:"):
        options.update(
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
    engine = create_engine(url, future=True, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(settings.sqlite_busy_timeout_ms))
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(engine: Engine) -> None:
    """Bring the database schema to the latest migration of every branch (layers add theirs side by side).

    Every opening of a hub calls this, and importing Alembic alone costs about 0.4 s of CPU (``hygie serve`` and
    every console command pay it): when the database already records exactly the scripts' heads there is nothing
    to run, and Alembic is not imported."""
    heads = _script_heads(Path(__file__).parent / "migrations" / "versions")
    if heads is not None and _database_revisions(engine) == heads:
        return
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(migration_config(connection), "heads")


def migration_config(connection: Connection) -> Any:
    """Alembic's configuration for this package's migrations, run on ``connection`` (its transaction)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    return config


def _script_heads(versions: Path) -> set[str] | None:
    """The head revisions of the migration scripts, read from their source (``revision`` and ``down_revision``
    literals) without importing Alembic; None when a script is not in that plain form, and Alembic decides."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        if path.name.startswith("_"):
            continue
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name, value = node.targets[0].id, node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                name, value = node.target.id, node.value
            else:
                continue
            if name in ("revision", "down_revision"):
                try:
                    values[name] = ast.literal_eval(value)
                except ValueError:
                    return None
        revision, down = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            parents.update(down)
        elif down is not None:
            return None
    return (revisions - parents) or None


def _database_revisions(engine: Engine) -> set[str]:
    """The revisions the database says it is at (none for a new database)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return set()
        return set(connection.scalars(text("SELECT version_num FROM alembic_version")))
