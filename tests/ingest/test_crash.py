# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""kill -9 at any instant of an ingestion leaves the warehouse exactly as it was (or holds the whole batch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hygie.hub import Hub
from hygie.ingest.pipeline import ingest_batch
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.stats import collect
from tests.conftest import TEST_PASSPHRASE, make_settings
from tests.delivery import Delivery, care, keys, person, small_delivery

pytestmark = pytest.mark.slow


CLAIMS_OFFSET = 1_000_000
"""Claim numbers far from small_delivery's, so both can be stored in one hub."""


BIG_VISITS = 150_000  # several chunks, a run of seconds: kills land in every phase


def large_delivery(people: int, visits: int) -> Delivery:
    d = Delivery()
    ben = [person(i) for i in range(people)]
    d.rows["IR_BEN_R"] = ben
    d.rows["ER_PRS_F"] = [care(CLAIMS_OFFSET + i, ben[i % people]["BEN_NIR"], day=1 + i % 19) for i in range(visits)]
    d.rows["ER_BIO_F"] = [
        {**keys(CLAIMS_OFFSET + i), "BIO_PRS_IDE": "1104", "BIO_ACT_QSN": "1", "BIO_ORD_NUM": "1"}
        for i in range(0, visits, 3)
    ]
    return d


def snapshot(hub: Hub) -> tuple[object, ...]:
    with hub.session() as session:
        files = sorted((f.path, f.sha256) for f in session.query(FileRow))
    on_disk = sorted(p.relative_to(hub.warehouse.directory).as_posix() for p in hub.warehouse.directory.rglob("*"))
    return collect(hub), files, on_disk


def run_ingest(hub: Hub, folder: Path, failpoint: str | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HYGIE_DATA_DIR": str(hub.settings.data_dir),
        "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
        "HYGIE_KDF_MEMORY_KIB": "8192",
        "HYGIE_KDF_ITERATIONS": "1",
        "HYGIE_KDF_LANES": "1",
    }
    if hub.settings.database_url:
        env["HYGIE_DATABASE_URL"] = hub.settings.database_url
    if failpoint:
        env["HYGIE_FAILPOINT"] = failpoint
    return subprocess.Popen(
        [sys.executable, "-m", "hygie.cli", "ingest", str(folder), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return large_delivery(4000, BIG_VISITS).write(tmp_path_factory.mktemp("big") / "batch", "BIG")


# Kills at random instants on PostgreSQL, the production database (SQLite is held to the same commit protocol by
# the failpoints of test_kill_at_the_commit_window, on both): one run of this test costs a minute of CPU.
@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_kill_at_random_instants(hub: Hub, tmp_path: Path, big_batch: Path) -> None:
    # Time one full run on a scratch hub, to spread the kills over the whole ingestion.
    probe = Hub.init(make_settings(tmp_path / "probe"))
    started = time.monotonic()
    done = run_ingest(probe, big_batch)
    assert done.wait(timeout=300) == 0, done.stderr.read() if done.stderr else ""
    duration = time.monotonic() - started
    probe.close()

    ingest_batch(hub, small_delivery().write(tmp_path / "first", "FIRST"))
    base = snapshot(hub)
    outcomes = []
    for fraction in (0.05, 0.3, 0.55, 0.8, 0.95):
        proc = run_ingest(hub, big_batch)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reopened = Hub.open(hub.settings)
        state = snapshot(reopened)
        reopened.close()
        if state[0]["batches"] == base[0]["batches"]:  # type: ignore[index]
            assert state == base, f"killed at {fraction:.0%}: warehouse changed"
            outcomes.append("none")
        else:
            assert state[0]["tables"]["ER_PRS_F"] == 13 + BIG_VISITS  # type: ignore[index]
            outcomes.append("all")
            break
    assert "none" in outcomes
    if "all" not in outcomes:
        # The batch is acceptable in this hub: left alone, the same run commits it whole.
        finished = run_ingest(hub, big_batch)
        assert finished.wait(timeout=300) == 0
        reopened = Hub.open(hub.settings)
        assert snapshot(reopened)[0]["tables"]["ER_PRS_F"] == 13 + BIG_VISITS  # type: ignore[index]
        reopened.close()


@pytest.mark.parametrize("failpoint", ["before-publish", "after-publish", "after-commit"])
def test_kill_at_the_commit_window(hub: Hub, tmp_path: Path, failpoint: str) -> None:
    ingest_batch(hub, small_delivery().write(tmp_path / "first", "FIRST"))
    before = snapshot(hub)
    folder = large_delivery(50, 2000).write(tmp_path / "second", "SECOND")
    proc = run_ingest(hub, folder, failpoint)
    assert proc.wait(timeout=120) == -signal.SIGKILL
    reopened = Hub.open(hub.settings)
    state = snapshot(reopened)
    if failpoint == "after-commit":
        assert state[0]["batches"] == 2 and state[0]["tables"]["ER_PRS_F"] == 13 + 2000  # type: ignore[index]
        with reopened.session() as session:
            assert reopened.warehouse.verify(session) == []
    else:
        assert state == before
    reopened.close()
