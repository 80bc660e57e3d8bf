# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""No key in clear anywhere Spark writes or shows: its event log, the driver's log and console, its configuration.

Every version of every key in custody is searched for in hex (both cases) and base64 (standard and URL-safe, with
and without padding), and so is every key-encryption key custody wrapped or unwrapped for the jobs (they live in
the JVMs' memory only). The jobs: a project view built on Spark (reads the warehouse, writes the view) and a read.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from hygie.hub import Hub
from hygie.keys import WAREHOUSE_KEY
from tests.spark_support import EVENT_LOG_DIR
from tests.warehouse.conftest import files_of
from tests.warehouse.test_spark_views import SCOPE, build, engine

pytestmark = pytest.mark.spark


def forms(key: bytes) -> set[bytes]:
    b64 = base64.b64encode(key)
    url = base64.urlsafe_b64encode(key)
    return {key.hex().encode(), key.hex().upper().encode(), b64, b64.rstrip(b"="), url, url.rstrip(b"=")}


class Recording:
    """The hub's custody, remembering every KEK it wrapped or unwrapped (to search for them too)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.keks: list[bytes] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def wrap(self, name: str, data_key: bytes, context: bytes = b"") -> bytes:
        self.keks.append(data_key)
        return self.inner.wrap(name, data_key, context)  # type: ignore[no-any-return]

    def unwrap(self, name: str, wrapped: bytes, context: bytes = b"") -> bytes:
        key: bytes = self.inner.unwrap(name, wrapped, context)
        self.keks.append(key)
        return key


def test_no_key_in_event_log_driver_log_or_configuration(spark, spark_hub: Hub, capfd) -> None:
    from hygie.warehouse.spark import custody_grant, driver_log, read_parquet
    from tests.governance.conftest import make_project

    spark_hub.custody.rotate(WAREHOUSE_KEY)  # two versions of the warehouse key: both searched
    saved = spark_hub.custody
    recording = Recording(saved)
    spark.sparkContext.setLogLevel("INFO")  # the driver log at its most talkative level Spark uses in production
    try:
        spark_hub.custody = recording  # type: ignore[assignment]
        project = make_project(spark_hub, SCOPE)
        with engine(spark_hub, "spark"):
            view = build(spark_hub, project)
        with custody_grant(spark_hub, [WAREHOUSE_KEY], actor="test") as grant:
            assert read_parquet(spark, grant, files_of(spark_hub, "ER_PHA_F")).count() > 0
    finally:
        spark_hub.custody = saved
        spark.sparkContext.setLogLevel("WARN")
    assert view.people > 0 and recording.keks

    needles: dict[bytes, str] = {}
    for info in saved.all_keys():
        for version in info.versions:
            if version in info.destroyed_versions:
                continue
            material = saved._material(info.name, version, info.purpose)  # test-only look inside local custody
            needles.update({form: f"{info.name} v{version}" for form in forms(material)})
    for i, kek in enumerate(recording.keks):
        needles.update({form: f"KEK {i}" for form in forms(kek)})
    names = {label.split(" v")[0] for label in needles.values()}
    assert {WAREHOUSE_KEY, f"project-{project.id}-view", f"project-{project.id}-pseudonym"} <= names

    haystacks: dict[str, bytes] = {}
    events = [p for p in EVENT_LOG_DIR[0].rglob("*") if p.is_file()]
    assert events, "the shared session writes an event log"
    haystacks.update({f"event log {p.name}": p.read_bytes() for p in events})
    haystacks["driver.log"] = Path(driver_log()).read_bytes()
    out, err = capfd.readouterr()
    haystacks["console"] = (out + err).encode()
    conf = spark.sparkContext.getConf().getAll()
    haystacks["SparkConf"] = "\n".join(f"{k}={v}" for k, v in conf).encode()
    haystacks["SQL conf"] = "\n".join(f"{k}={v}" for k, v in spark.conf.getAll.items()).encode()
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    iterator = hadoop.iterator()
    entries = []
    while iterator.hasNext():
        entry = iterator.next()
        entries.append(f"{entry.getKey()}={entry.getValue()}")
    haystacks["Hadoop conf"] = "\n".join(entries).encode()

    # The haystacks are the real ones: the jobs are in them.
    assert b"PHA_PRS_C13" in b"".join(v for k, v in haystacks.items() if k.startswith("event log"))
    assert b"INFO" in haystacks["driver.log"] and b"hygie.custody.url" in haystacks["SparkConf"]
    leaks = [f"{where}: {label}" for where, blob in haystacks.items() for n, label in needles.items() if n in blob]
    assert leaks == []
