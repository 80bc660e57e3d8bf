# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The ONE Spark session of the test run, shared by every Spark test (owner: S2; S1's engine tests use it too).

``spark`` is session-scoped and registered for every test through ``tests/conftest.py``: a test that asks for it
is a Spark test and must carry ``@pytest.mark.spark``. The session is ``local[2]``, UI off, 2 shuffle partitions,
with Spark's event log written to a temporary directory (:data:`EVENT_LOG_DIR` is known after the fixture starts)
so tests can grep it (tests/warehouse/test_spark_keys.py). Do not stop it or start another one in a test: a
process has one SparkContext (hygie.warehouse.spark keeps it). Its custody is not a hub's: each job brings its own
through ``hygie.warehouse.spark.custody_grant(hub, ...)``, so one session serves every test's hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import make_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

EVENT_LOG_DIR: list[Path] = []
"""Where the shared session writes its event log (one entry once it has started)."""


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    from hygie.warehouse.spark import start_spark, stop_session

    events = tmp_path_factory.mktemp("spark-events")
    settings = make_settings(
        tmp_path_factory.mktemp("spark-settings"),
        spark_master="local[2]",
        spark_shuffle_partitions=2,
        spark_ui=False,
        spark_event_log_dir=events,
    )
    EVENT_LOG_DIR.append(events)
    session = start_spark(settings)
    yield session
    stop_session()
