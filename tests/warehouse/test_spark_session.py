# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The shared Spark session starts with Hygie's configuration and no key material in it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.spark


def test_session_is_configured_and_reused(spark) -> None:
    from hygie.warehouse.spark import KMS_CLIENT_CLASS, start_spark
    from tests.conftest import make_settings

    conf = dict(spark.sparkContext.getConf().getAll())
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.hadoop.parquet.encryption.kms.client.class"] == KMS_CLIENT_CLASS
    assert conf["spark.io.encryption.enabled"] == "true"
    assert conf["spark.hadoop.hygie.custody.url"].startswith("https://127.0.0.1:")  # TLS even on loopback
    assert len(conf["spark.hadoop.hygie.custody.tls.sha256"]) == 64  # the channel's certificate, pinned
    assert not any("access.token" in k for k in conf)  # tokens are per job, never session-wide
    assert start_spark(make_settings(Path("/nonexistent"), spark_master="local[1]")) is spark  # one per process
    assert spark.range(5).count() == 5
