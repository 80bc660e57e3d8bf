# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import functools
import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (imported early: a late import at session end trips a CPython 3.11.7 AST bug)
import pytest

from hygie.config import Settings
from hygie.hub import Hub
from tests import postgres

TEST_PASSPHRASE = "correct horse battery staple"

# The test JVMs (Spark's driver, master, workers) run small jobs for seconds: the optimising JIT and parallel GC
# threads cost them more than they save (a third of the Spark tests' CPU on two cores). Production keeps Java's
# defaults; this only reaches JVMs started by the tests.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:CICompilerCount=1")
# The Python processes the tests start (servers, CLI runs, Spark's Python workers) keep their compiled bytecode
# even where the machine sets PYTHONDONTWRITEBYTECODE (scripts/test unsets it too): otherwise each compiles every
# module it imports again.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    # A light Argon2id so tests stay fast; production keeps the defaults in hygie.config.
    values: dict[str, object] = {
        "data_dir": data_dir,
        "key_passphrase": TEST_PASSPHRASE,
        "kdf_memory_kib": 8192,
        "kdf_iterations": 1,
        "kdf_lanes": 1,
        "password_memory_kib": 1024,
        "password_iterations": 1,
        "analysis_visible_quantum_seconds": 0.0,  # finished jobs show at once (quantum: tests/disclosure/attacks)
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment a ``hygie`` command needs to open the hub of ``settings`` (made by :func:`make_settings`)."""
    env = {"HYGIE_DATA_DIR": str(settings.data_dir), "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
           "HYGIE_KDF_MEMORY_KIB": "8192", "HYGIE_KDF_ITERATIONS": "1", "HYGIE_KDF_LANES": "1"}  # fmt: skip
    if settings.database_url:
        env["HYGIE_DATABASE_URL"] = settings.database_url
    return env


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    if not postgres.available():
        pytest.fail("PostgreSQL binaries are missing: run scripts/test, which installs them")
    with postgres.cluster() as url:
        yield url


_counter = itertools.count()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_cluster: str) -> str:
    """A database at the migrations' heads, copied for each test (CREATE DATABASE … TEMPLATE): a copy costs a
    quarter of a second less than running every migration again, for each of hundreds of tests. The migrations
    themselves run from an empty database in tests/deploy/test_upgrade.py and tests/db."""
    from hygie.db import make_engine, migrate

    url = postgres.create_database(postgres_cluster, "hygie_migrated")
    engine = make_engine(Settings(data_dir=Path("/nonexistent"), database_url=url, key_passphrase="unused"))
    migrate(engine)
    engine.dispose()  # a template takes no connection while it is copied
    return "hygie_migrated"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SQLite counterpart of :func:`migrated_postgres`: a migrated database file, copied into each test's hub
    directory before the hub is created (it then finds its schema at the heads and runs no migration)."""
    from hygie.db import make_engine, migrate

    directory = tmp_path_factory.mktemp("sqlite-template")
    engine = make_engine(make_settings(directory))
    migrate(engine)
    engine.dispose()  # the last connection checkpoints the write-ahead log into the file
    template = directory / "hygie.db"
    assert not (directory / "hygie.db-wal").exists() or (directory / "hygie.db-wal").stat().st_size == 0
    return template


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Each test using a hub runs twice: on the embedded SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        (tmp_path / "hub").mkdir()
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), tmp_path / "hub" / "hygie.db")
        (tmp_path / "hub" / "hygie.db").chmod(0o600)  # as the hub creates it
        yield make_settings(tmp_path / "hub")
        return
    url = postgres.create_database(
        request.getfixturevalue("postgres_cluster"),
        f"hygie_test_{next(_counter)}",
        template=request.getfixturevalue("migrated_postgres"),
    )
    yield make_settings(tmp_path / "hub", database_url=url)
    postgres.drop_database(url)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    h = Hub.init(settings)
    yield h
    h.close()


from tests.spark_support import spark  # noqa: E402,F401  (the one shared Spark session; see tests/spark_support.py)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    # Under pytest-xdist (scripts/test runs two workers) a module's tests stay together on one worker: several
    # modules build one world per module and walk it through a journey test after test. Every module with Spark
    # tests goes to one worker, so the suite starts one JVM, not one per worker. (xdist's own `xdist_group` marks
    # do nothing under pytest 9, which ignores the node id xdist rewrites; scheduling by scope does not need them.)
    from xdist.scheduler import LoadScopeScheduling

    from tests import scheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        _ordered = False

        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "spark" if _uses_spark(path) else path

        def _assign_work_unit(self, node: object) -> None:
            # The queue is complete at the first assignment: longest scope first (tests/scheduling.py).
            if not self._ordered:
                seconds = scheduling.recorded()
                units = sorted(self.workqueue.items(), key=lambda unit: -scheduling.estimate(unit[1], seconds))
                self.workqueue.clear()
                self.workqueue.update(units)
                self._ordered = True
            super()._assign_work_unit(node)

    return ModuleScheduling(config, log)


@functools.cache
def _uses_spark(path: str) -> bool:
    source = Path(path)
    return source.is_file() and "mark.spark" in source.read_text(encoding="utf-8")
