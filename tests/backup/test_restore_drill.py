# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The restore drill, on SQLite and PostgreSQL: ingest, back up, attack the archive, crash a backup, restore elsewhere,
and check that the restored hub verifies and answers the same as the original; a destroyed key stays destroyed."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from hygie.backup.archive import BackupError
from hygie.backup.core import create_backup, restore_backup
from hygie.config import Settings
from hygie.governance.models import Account, Project
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.keys import KeyDestroyed, KeyPurpose
from hygie.synth import generate
from tests import postgres
from tests.conftest import TEST_PASSPHRASE, make_settings

BACKUP_PASSPHRASE = "backup passphrase kept in the safe"
_names = itertools.count()


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backup-delivery")
    generate(out, people=80, years=1, seed=5, start_year=2023)
    return out


def _answers(hub: Hub) -> dict[str, str]:
    """A sample analysis: every table decrypted and read, one digest of its sorted rows per table."""
    out = {}
    with hub.session() as session:
        for table in sorted(hub.warehouse.row_counts(session)):
            dataset = hub.warehouse.dataset(session, table)
            assert dataset is not None
            rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in dataset.to_table().to_pylist())
            out[table] = f"{len(rows)}:{hashlib.sha256(chr(10).join(rows).encode()).hexdigest()}"
    return out


def _target(request: pytest.FixtureRequest, source: Settings, path: Path) -> Settings:
    if source.database_url is None:
        return make_settings(path, backup_passphrase=BACKUP_PASSPHRASE)
    url = postgres.create_database(request.getfixturevalue("postgres_cluster"), f"hygie_restore_{next(_names)}")
    return make_settings(path, database_url=url, backup_passphrase=BACKUP_PASSPHRASE)


def _cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HYGIE_DATA_DIR=str(settings.data_dir),
        HYGIE_KEY_PASSPHRASE=TEST_PASSPHRASE,
        HYGIE_KDF_MEMORY_KIB=str(settings.kdf_memory_kib),
        HYGIE_KDF_ITERATIONS="1",
        HYGIE_KDF_LANES="1",
        HYGIE_BACKUP_PASSPHRASE=BACKUP_PASSPHRASE,
        **extra,
    )
    if settings.database_url:
        env["HYGIE_DATABASE_URL"] = settings.database_url
    return env


def test_restore_drill(request: pytest.FixtureRequest, settings: Settings, delivery: Path, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"backup_passphrase": SecretStr(BACKUP_PASSPHRASE)})
    hub = Hub.init(settings)
    try:
        for batch in expand_batches([delivery]):
            assert ingest_batch(hub, batch).status == "accepted"
        hub.custody.create("project-1-view", KeyPurpose.WRAP)
        closed = hub.custody.create("project-2-view", KeyPurpose.WRAP)
        sealed_by_closed = hub.custody.wrap(closed.name, b"k" * 32, b"ctx")
        hub.custody.destroy(closed.name)  # project 2 closed: its key must be in no later backup
        project_id = _sealed_project(hub)
        before = _answers(hub)
        assert before and all(not v.startswith("0:") for v in before.values())

        # A backup killed half-way through the warehouse leaves no file named DEST, and the hub intact.
        crashed = tmp_path / "crashed.hygiebak"
        killed = subprocess.run(
            [sys.executable, "-c", "from hygie.cli import app; app()", "backup", str(crashed)],
            env=_cli_env(settings, HYGIE_FAILPOINT="backup.mid-warehouse"),
            capture_output=True,
        )
        assert killed.returncode == -9
        assert not crashed.exists()
        partial = tmp_path / ".crashed.hygiebak.partial"
        assert partial.exists()  # what SIGKILL leaves: hidden, and refused below as truncated
        with hub.session() as session:
            assert hub.warehouse.verify(session) == []

        backup = tmp_path / "hub.hygiebak"
        report = create_backup(hub, backup)
        assert report.path == backup and report.bytes == backup.stat().st_size and report.destroyed_key_versions == 1
        assert not (tmp_path / ".hub.hygiebak.partial").exists()
        assert stat_mode(backup) == 0o600
        with pytest.raises(BackupError, match="already exists"):
            create_backup(hub, backup)
    finally:
        hub.close()

    raw = backup.read_bytes()
    for needle in (TEST_PASSPHRASE.encode(), b"keystore", b"warehouse_file", b"CREATE TABLE"):
        assert needle not in raw  # the archive is encrypted throughout

    # Attacks on the archive: each refused with a message naming the fault; the target is left untouched.
    target = _target(request, settings, tmp_path / "restored")
    flipped = tmp_path / "flipped.hygiebak"
    data = bytearray(raw)
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    truncated = tmp_path / "truncated.hygiebak"
    truncated.write_bytes(raw[: len(raw) - 100])
    cases = [
        (flipped, target, "fails authentication"),
        (truncated, target, "truncated"),
        (partial, target, "truncated"),
        (backup, target.model_copy(update={"backup_passphrase": SecretStr("wrong")}), "passphrase does not open"),
        (backup, settings, "not empty"),  # onto the live hub
    ]
    for source, where, message in cases:
        with pytest.raises(BackupError, match=message):
            restore_backup(where, source)
        assert not target.data_dir.exists()
    assert not list(tmp_path.glob(".restored.restore-*"))

    # The drill: restore elsewhere through the command line, then verify and compare.
    done = subprocess.run(
        [sys.executable, "-c", "from hygie.cli import app; app()", "restore", str(backup)],
        env=_cli_env(target),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "audit log intact" in done.stdout and "the warehouse and the audit log verify" in done.stdout
    assert stat_mode(target.data_dir) == 0o700
    assert stat_mode(target.data_dir / "keys" / "keystore.json") == 0o600
    if target.database_url is None:
        assert stat_mode(target.data_dir / "hygie.db") == 0o600
    restored = Hub.open(target)
    try:
        assert _answers(restored) == before
        with pytest.raises(KeyDestroyed):
            restored.custody.unwrap("project-2-view", sealed_by_closed, b"ctx")
        keystore = json.loads((target.data_dir / "keys" / "keystore.json").read_text())
        assert all(set(slot) == {"destroyed_at"} for slot in keystore["keys"]["project-2-view"]["versions"].values())
        assert restored.custody.info("project-1-view").current_version == 1
        with restored.session() as session:  # metadata sealed at rest opens with the restored keys
            assert session.get(Project, project_id).justification == JUSTIFICATION  # type: ignore[union-attr]
    finally:
        restored.close()
    # A second restore onto the now populated hub is refused, and changes nothing.
    with pytest.raises(BackupError, match="not empty"):
        restore_backup(target, backup)
    if target.database_url:
        postgres.drop_database(target.database_url)


JUSTIFICATION = "Cohorte des assures traites par Zqx-5150, suivi a cinq ans"


def _sealed_project(hub: Hub) -> int:
    now = datetime.now(UTC)
    with hub.session() as session:
        account = Account(username="drill", role="researcher", password_hash="x", created_at=now, created_by="test")
        session.add(account)
        session.flush()
        project = Project(
            requester_id=account.id,
            organisation="Lab",
            title="Drill",
            purpose="research",
            justification=JUSTIFICATION,
            public_summary="public",
            scope={},
            duration_days=30,
            threshold=11,
            status="active",
            created_at=now,
        )
        session.add(project)
        session.commit()
        return project.id


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
