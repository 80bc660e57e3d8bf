from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (imported early: a late import at session end trips a CPython 3.11.7 AST bug)
import pytest

from hygie.config import Settings
from hygie.hub import Hub
from tests import postgres

TEST_PASSPHRASE = "correct horse battery staple"


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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    if not postgres.available():
        pytest.fail("PostgreSQL binaries are missing: run scripts/test, which installs them")
    with postgres.cluster() as url:
        yield url


_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Each test using a hub runs twice: on the embedded SQLite default and on PostgreSQL."""
    if request.param == "sqlite":
        yield make_settings(tmp_path / "hub")
        return
    url = postgres.create_database(request.getfixturevalue("postgres_cluster"), f"hygie_test_{next(_counter)}")
    yield make_settings(tmp_path / "hub", database_url=url)
    postgres.drop_database(url)


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    h = Hub.init(settings)
    yield h
    h.close()
