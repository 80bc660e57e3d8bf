# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Spark on a standalone cluster started on this machine: a master and two workers from pyspark's installation,
a driver (its own process: one SparkContext per process) running one aggregate over the encrypted warehouse,
executors in the workers' JVMs reaching custody over the loopback channel. Same answer as DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from hygie.hub import Hub
from tests.conftest import TEST_PASSPHRASE

pytestmark = pytest.mark.spark

DRIVER = textwrap.dedent(
    """
    import json
    from hygie.config import Settings
    from hygie.hub import Hub
    from hygie.keys import WAREHOUSE_KEY
    from hygie.warehouse.spark import collect_checked, custody_grant, read_parquet, spark_session
    from pyspark.sql import functions as F

    hub = Hub.open(Settings())
    spark = spark_session(hub)
    with hub.session() as session:
        files = hub.warehouse.files(session, "ER_PRS_F")
    with custody_grant(hub, [WAREHOUSE_KEY], actor="test:cluster") as grant:
        df = read_parquet(spark, grant, files).repartition(4)
        rows = collect_checked(grant, df.groupBy(F.month("EXE_SOI_DTD").alias("m")).agg(
            F.count("*").alias("n"), F.round(F.sum("PRS_PAI_MNT"), 2).alias("paid")))
        unwraps = dict(grant.unwraps)
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    conf = dict(spark.sparkContext.getConf().getAll())
    print("RESULT " + json.dumps({"rows": sorted([r.m, r.n, r.paid] for r in rows), "executors": executors,
                                  "rpc": [conf.get("spark.authenticate"), conf.get("spark.network.crypto.enabled")],
                                  "master": spark.sparkContext.master, "unwraps": unwraps}))
    spark.stop()
    """
)


def test_one_aggregate_on_a_two_worker_standalone_cluster(spark_hub: Hub, tmp_path) -> None:
    import secrets

    from hygie.warehouse.spark import standalone_cluster

    secret = tmp_path / "cluster.secret"  # RPC authenticated and encrypted between driver, master, workers
    secret.touch(mode=0o600)
    secret.write_text(secrets.token_urlsafe(32))

    with spark_hub.session() as session:
        con = spark_hub.warehouse.connect(session, ["ER_PRS_F"])
        expected = con.sql(
            "SELECT month(EXE_SOI_DTD), count(*), round(sum(PRS_PAI_MNT), 2) FROM ER_PRS_F GROUP BY 1 ORDER BY 1"
        ).fetchall()
        con.close()
    with standalone_cluster(2, cores=1, memory_mb=512, secret_file=secret) as master:
        env = {
            **os.environ,
            "HYGIE_DATA_DIR": str(spark_hub.settings.data_dir),
            "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
            "HYGIE_SPARK_MASTER": master,
            "HYGIE_SPARK_EXECUTOR_MEMORY_MB": "512",
            "HYGIE_SPARK_AUTH_SECRET_FILE": str(secret),
        }
        done = subprocess.run(
            [sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=240, check=False
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[0].removeprefix("RESULT "))
    assert result["master"] == master and result["executors"] == 2
    assert [tuple(r) for r in result["rows"]] == [(m, n, pytest.approx(p)) for m, n, p in expected]
    assert result["unwraps"]["warehouse"] >= 1
    assert result["rpc"] == ["true", "true"]
    assert "without RPC encryption" not in done.stderr
