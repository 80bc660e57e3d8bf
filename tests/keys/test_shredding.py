# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Shredding that a backup cannot undo: the hub's files copied before a project's view is destroyed, then put back.

With the PKCS#11 backend the copy stays unreadable: destroying the project's keys rotated the KEK in the token and
destroyed the old one, the only thing that opened the copied keystore. With the local keystore the copy, opened
with the same passphrase, still reads the view: the limit the docs and ``hygie keys destroy`` state.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pyarrow.parquet.encryption as pe
import pytest

from hygie.governance.models import Project
from hygie.governance.views import build_view, destroy_view, open_view, project_view_key
from hygie.hub import Hub
from hygie.ingest.pipeline import expand_batches, ingest_batch
from hygie.keys import CustodyLocked, KeyDestroyed, open_custody
from hygie.keys.pkcs11 import KEYSTORE_FILE
from hygie.synth import generate
from hygie.warehouse.encryption import CustodyKmsClient
from tests.conftest import make_settings
from tests.governance.conftest import make_project
from tests.keys.softhsm import fresh_token

SCOPE: dict[str, Any] = {
    "tables": {"IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN"], "ER_PRS_F": ["EXE_SOI_DTD", "PRS_PAI_MNT"]},
    "population": {"period_start": "2023-01-01", "period_end": "2023-12-31"},
}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shred-delivery")
    generate(out, people=80, years=1, seed=41, start_year=2023)
    return out


def _hub_with_a_view(data_dir: Path, delivery: Path, **settings: object) -> tuple[Hub, Project, int, list[Path]]:
    hub = Hub.init(make_settings(data_dir, **settings))
    for batch in expand_batches([delivery]):
        assert ingest_batch(hub, batch).status == "accepted"
    project = make_project(hub, SCOPE)
    with hub.session() as session:
        view = build_view(hub, session, project, actor="account:1")
        session.commit()
        files = [data_dir / meta["file"] for meta in view.tables.values()]
        con = open_view(hub, session, project)
        rows = con.sql("SELECT count(*) FROM ER_PRS_F").fetchall()[0][0]
        con.close()
    assert rows > 0
    return hub, project, rows, files


def _back_up_and_destroy(hub: Hub, project: Project, tmp_path: Path) -> Path:
    data_dir = hub.settings.data_dir
    hub.close()
    backup = tmp_path / "backup"
    shutil.copytree(data_dir, backup)  # everything: keystore, database, warehouse, the project's view
    reopened = Hub.open(hub.settings)
    with reopened.session() as session:
        destroy_view(reopened, session, project, actor="account:2")
        session.commit()
    output = reopened.custody.info(project_view_key(project.id))
    assert output.current_version is None
    reopened.close()
    return backup


def _put_back(backup: Path, live: Path) -> None:
    """The backup's files put back beside the live ones: every file the live hub no longer has is restored."""
    for path in backup.rglob("*"):
        target = live / path.relative_to(backup)
        if path.is_file() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def test_pkcs11_a_backup_put_back_does_not_bring_the_view_back(delivery: Path, tmp_path: Path) -> None:
    token = fresh_token()
    options: dict[str, object] = {
        "key_backend": "pkcs11",
        "pkcs11_module": token.module,
        "pkcs11_token_label": token.label,
        "pkcs11_pin": token.pin,
    }
    hub, project, _rows, files = _hub_with_a_view(tmp_path / "hub", delivery, **options)
    live = hub.settings.data_dir
    backup = _back_up_and_destroy(hub, project, tmp_path)

    _put_back(backup, live)
    assert all(f.exists() for f in files)  # the view's files are back in place
    hub = Hub.open(make_settings(live, **options))
    for f in files:
        with pytest.raises(KeyDestroyed):
            pq.read_table(f, decryption_properties=_decryption(hub))
    hub.close()

    # The backup's keystore put in place of the live one: it no longer opens (its KEK is gone from the token).
    shutil.copy2(backup / "keys" / KEYSTORE_FILE, live / "keys" / KEYSTORE_FILE)
    with pytest.raises(CustodyLocked, match="no KEK generation"):
        open_custody(make_settings(live, **options))
    # And the whole backup opened as a hub of its own: no more.
    with pytest.raises(CustodyLocked, match="no KEK generation"):
        Hub.open(make_settings(backup, **options))


def _decryption(hub: Hub) -> Any:
    """Decryption through the hub's custody, whatever master key a file names (no key created on the way)."""
    factory = pe.CryptoFactory(lambda _config: CustodyKmsClient(hub.custody))
    return factory.file_decryption_properties(pe.KmsConnectionConfig(), pe.DecryptionConfiguration())


def test_local_keystore_limit_a_backup_still_reads_the_destroyed_view(delivery: Path, tmp_path: Path) -> None:
    """The stated limit of the local backend: a keystore copied before the destruction, with the unchanged
    passphrase, still opens the project's keys. Only the PKCS#11 backend (or a rotated passphrase) closes this."""
    hub, project, rows, files = _hub_with_a_view(tmp_path / "hub", delivery)
    backup = _back_up_and_destroy(hub, project, tmp_path)
    live = make_settings(tmp_path / "hub")
    current = Hub.open(live)
    with pytest.raises(KeyDestroyed):
        pq.read_table(backup / files[0].relative_to(live.data_dir), decryption_properties=_decryption(current))
    current.close()
    old = Hub.open(make_settings(backup))
    try:
        with old.session() as session:
            project_row = session.get(Project, project.id)
            assert project_row is not None
            con = open_view(old, session, project_row)
            assert con.sql("SELECT count(*) FROM ER_PRS_F").fetchall()[0][0] == rows
            con.close()
    finally:
        old.close()
