from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hygie.config import Settings
from hygie.hub import Hub

TEST_PASSPHRASE = "correct horse battery staple"


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    # A light Argon2id so tests stay fast; production keeps the defaults in hygie.config.
    values: dict[str, object] = {
        "data_dir": data_dir,
        "key_passphrase": TEST_PASSPHRASE,
        "kdf_memory_kib": 8192,
        "kdf_iterations": 1,
        "kdf_lanes": 1,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "hub")


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    h = Hub.init(settings)
    yield h
    h.close()
