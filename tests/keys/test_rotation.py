# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Master key rotation: every live key re-wrapped without touching data, resumable after a crash (SIGKILL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hygie.keys import CustodyLocked, KeyPurpose, LocalKeystore
from hygie.keys.local import write_key_file
from hygie.keys.pkcs11 import Pkcs11Keystore
from hygie.keys.rotation import rotate_master
from tests.keys.softhsm import Token, fresh_token

LIGHT = {"kdf_memory_kib": 8192, "kdf_iterations": 1, "kdf_lanes": 1}
KDF = (8192, 1, 1)
ROOT = Path(__file__).resolve().parents[2]


def connect(directory: Path, token: Token, *, create: bool = False, batch: int = 500) -> Pkcs11Keystore:
    return Pkcs11Keystore.connect(
        directory, module=token.module, token_label=token.label, pin=token.pin, create=create, rotation_batch=batch
    )


@pytest.mark.slow  # about 20 s on the 2-core machine under load (about 5 s alone): 10,000 keys made, then re-wrapped
def test_kek_rotation_of_10000_wrapped_keys(tmp_path: Path) -> None:
    token = fresh_token()
    store = connect(tmp_path / "keys", token, create=True, batch=1000)
    names = [f"k{i:05d}" for i in range(10_000)]
    started = time.perf_counter()
    assert store.create_many(names[:9_000], KeyPurpose.WRAP) == 9_000
    assert store.create_many(names[9_000:], KeyPurpose.PSEUDONYM) == 1_000
    created = time.perf_counter() - started
    sample = names[::97]
    wrapped = {n: store.wrap(n, n.encode() * 2) for n in sample if n < "k09000"}
    macs = {n: store.mac(n, [b"someone"])[0] for n in names[9_000::50]}
    progress: list[tuple[int, int]] = []

    result = rotate_master(store, progress=lambda done, total: progress.append((done, total)))

    assert (result.backend, result.keys_rewrapped, result.old_generation, result.new_generation) == (
        "pkcs11",
        10_000,
        1,
        2,
    )
    assert progress[-1] == (10_000, 10_000) and len(progress) == 10
    assert store.kek_generations() == [2]
    reopened = connect(tmp_path / "keys", token)
    for name, blob in wrapped.items():  # data wrapped before the rotation opens after it, untouched
        assert reopened.unwrap(name, blob) == name.encode() * 2
    for name, mac in macs.items():
        assert reopened.mac(name, [b"someone"])[0] == mac
    print(
        f"\nSoftHSM2: 10,000 key versions created in {created:.1f} s; KEK rotation re-wrapped 10,000 in "
        f"{result.seconds:.1f} s ({10_000 / result.seconds:,.0f} re-wraps/s)"
    )


def _child(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.slow  # kill -9 of child processes
def test_kek_rotation_killed_midway_resumes(tmp_path: Path) -> None:
    token = fresh_token()
    store = connect(tmp_path / "keys", token, create=True, batch=100)
    names = [f"p{i:04d}" for i in range(450)]
    store.create_many(names, KeyPurpose.WRAP)
    blobs = {n: store.wrap(n, b"data key of " + n.encode()) for n in names}
    script = (
        "from pathlib import Path\nfrom hygie.keys.pkcs11 import Pkcs11Keystore\n"
        f"s = Pkcs11Keystore.connect(Path({str(tmp_path / 'keys')!r}), module=Path({str(token.module)!r}), "
        f"token_label={token.label!r}, pin={token.pin!r}, rotation_batch=100)\n"
        "s.rotate_kek()\n"
    )
    killed = _child(script, {"HYGIE_FAILPOINT": "keys.pkcs11.rotation.batch"})
    assert killed.returncode == -9, killed.stderr
    # Killed after its first saved batch: both KEKs in the token, the keystore half re-wrapped, every key usable.
    # (Looked at in the file: opening the keystore would finish the rotation.)
    doc = json.loads((tmp_path / "keys" / "pkcs11-keystore.json").read_text())
    moved = sum(1 for e in doc["keys"].values() for s in e["versions"].values() if s["kek"] == doc["kek"]["pending"])
    assert doc["kek"]["pending"] == 2 and moved == 100
    assert store.kek_generations() == [1, 2]
    assert all(store.unwrap(n, blobs[n]) == b"data key of " + n.encode() for n in names[::10])

    # Killed after the last batch, before the old KEK was destroyed: the rerun destroys it.
    resumed = _child(script, {"HYGIE_FAILPOINT": "keys.pkcs11.rotation.before_destroy"})
    assert resumed.returncode == -9, resumed.stderr
    assert store.kek_generations() == [1, 2]

    again = connect(tmp_path / "keys", token)  # opening finishes what the crash left
    assert again.kek_generations() == [2]
    assert all(again.unwrap(n, blobs[n]) == b"data key of " + n.encode() for n in names)


def test_local_master_rotation_passphrase_and_key_file(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keys"
    store = LocalKeystore.open(directory, passphrase="old secret", create=True, **LIGHT)
    store.create("wh", KeyPurpose.WRAP)
    store.create("pseudo", KeyPurpose.PSEUDONYM)
    store.create("gone", KeyPurpose.WRAP)
    store.destroy("gone")
    blob = store.wrap("wh", b"file key", b"ctx")
    mac = store.mac("pseudo", [b"x"])[0]

    result = rotate_master(store, new_passphrase="new secret", kdf=KDF)
    assert (result.backend, result.keys_rewrapped) == ("local", 2)
    with pytest.raises(CustodyLocked):
        LocalKeystore.open(directory, passphrase="old secret", **LIGHT)
    reopened = LocalKeystore.open(directory, passphrase="new secret", **LIGHT)
    assert reopened.unwrap("wh", blob, b"ctx") == b"file key" and reopened.mac("pseudo", [b"x"])[0] == mac
    assert store.unwrap("wh", blob, b"ctx") == b"file key"  # the rotating process goes on with the new key

    key_file = tmp_path / "master.key"
    write_key_file(key_file)
    rotate_master(reopened, new_key_file=key_file, data_dir=tmp_path / "data")
    with pytest.raises(CustodyLocked):
        LocalKeystore.open(directory, passphrase="new secret", **LIGHT)
    by_file = LocalKeystore.open(directory, key_file=key_file, data_dir=tmp_path / "data")
    assert by_file.unwrap("wh", blob, b"ctx") == b"file key"
    with pytest.raises(CustodyLocked, match="one of them"):
        rotate_master(by_file)


def test_local_master_rotation_killed_midway_leaves_the_old_key_and_reruns(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keys"
    store = LocalKeystore.open(directory, passphrase="old secret", create=True, **LIGHT)
    store.create_many([f"k{i}" for i in range(200)], KeyPurpose.WRAP)
    blob = store.wrap("k7", b"file key")
    script = (
        "from pathlib import Path\nfrom hygie.keys import LocalKeystore\n"
        "from hygie.keys.rotation import rotate_master\n"
        f"s = LocalKeystore.open(Path({str(directory)!r}), passphrase='old secret', kdf_memory_kib=8192, "
        "kdf_iterations=1, kdf_lanes=1)\n"
        "print(rotate_master(s, new_passphrase='new secret', kdf=(8192, 1, 1)).keys_rewrapped)\n"
    )
    killed = _child(script, {"HYGIE_FAILPOINT": "keys.local.rekey.before_replace"})
    assert killed.returncode == -9, killed.stderr
    old = LocalKeystore.open(directory, passphrase="old secret", **LIGHT)  # nothing half-done
    assert old.unwrap("k7", blob) == b"file key"
    rerun = _child(script, {})
    assert rerun.returncode == 0 and rerun.stdout.strip() == "200", rerun.stderr
    new = LocalKeystore.open(directory, passphrase="new secret", **LIGHT)
    assert all(new.unwrap("k7", blob) == b"file key" for _ in range(2))
    assert len(new.all_keys()) == 200


def test_cli_destroy_states_the_local_limit_and_rotate_master_is_recorded(tmp_path: Path) -> None:
    from sqlalchemy import select
    from typer.testing import CliRunner

    from hygie.audit.events import AuditEvent
    from hygie.cli import app
    from hygie.hub import Hub
    from hygie.keys import WAREHOUSE_KEY
    from tests.conftest import TEST_PASSPHRASE, make_settings

    hub = Hub.init(make_settings(tmp_path / "hub"))
    hub.custody.create("project-9-view", KeyPurpose.WRAP)
    blob = hub.custody.wrap(WAREHOUSE_KEY, b"a file's key", b"parquet-kek")
    hub.close()
    env = {
        "HYGIE_DATA_DIR": str(tmp_path / "hub"),
        "HYGIE_KEY_PASSPHRASE": TEST_PASSPHRASE,
        "HYGIE_KDF_MEMORY_KIB": "8192",
        "HYGIE_KDF_ITERATIONS": "1",
        "HYGIE_KDF_LANES": "1",
    }
    runner = CliRunner()
    destroyed = runner.invoke(app, ["keys", "destroy", "project-9-view"], env=env)
    assert destroyed.exit_code == 0, destroyed.output
    assert "limit:" in destroyed.output and "rotate-master" in destroyed.output
    refused = runner.invoke(app, ["keys", "destroy", WAREHOUSE_KEY], env=env)
    assert refused.exit_code == 2 and "nothing done" in refused.output
    missing = runner.invoke(app, ["keys", "rotate-master"], env=env)
    assert missing.exit_code == 2 and "nothing changed" in missing.output

    rotated = runner.invoke(app, ["keys", "rotate-master"], env={**env, "HYGIE_NEW_KEY_PASSPHRASE": "a new one"})
    assert rotated.exit_code == 0, rotated.output
    with pytest.raises(CustodyLocked):
        Hub.open(make_settings(tmp_path / "hub"))
    hub = Hub.open(make_settings(tmp_path / "hub", key_passphrase="a new one"))
    try:
        assert hub.custody.unwrap(WAREHOUSE_KEY, blob, b"parquet-kek") == b"a file's key"
        with hub.session() as session:
            acts = [(e.action, e.outcome) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        assert ("key.destroy", "ok") in acts and ("key.destroy", "denied") in acts
        start = acts.index(("key.master.rotate.start", "ok"))
        assert acts.index(("key.master.rotate", "failed")) < start < acts.index(("key.master.rotate", "ok"))
    finally:
        hub.close()


def test_keys_whose_stored_macs_would_stop_matching_are_not_rotated_alone(tmp_path: Path) -> None:
    """Rotating a project's pseudonym or cell-key key would silently let an objector back into its live view's
    queries and re-noise its released tables; the CLI refuses, recorded; WRAP keys and versioned keys rotate."""
    from sqlalchemy import select
    from typer.testing import CliRunner

    from hygie.audit.events import AuditEvent
    from hygie.cli import app
    from hygie.hub import Hub
    from tests.conftest import cli_env, make_settings

    settings = make_settings(tmp_path / "hub")
    hub = Hub.init(settings)
    for name in ("project-4-pseudonym", "project-4-cellkey", "identity-pivot", "citizen-index"):
        hub.custody.ensure(name, KeyPurpose.PSEUDONYM)
    hub.custody.ensure("project-4-view", KeyPurpose.WRAP)
    runner = CliRunner()
    for name in ("project-4-pseudonym", "project-4-cellkey", "identity-pivot", "vault-index"):
        refused = runner.invoke(app, ["keys", "rotate", name], env=cli_env(settings))
        assert refused.exit_code == 2 and "nothing was changed" in " ".join(refused.output.split()), refused.output
        assert hub.custody.info(name).current_version == 1
    for name in ("project-4-view", "citizen-index"):
        rotated = runner.invoke(app, ["keys", "rotate", name], env=cli_env(settings))
        assert rotated.exit_code == 0, rotated.output
        assert hub.custody.info(name).current_version == 2
    with hub.session() as session:
        outcomes = list(session.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "key.rotate")))
    assert outcomes.count("denied") == 4 and outcomes.count("ok") == 2
    hub.close()


@pytest.mark.slow  # kill -9 of a child process
def test_a_destroy_killed_before_its_kek_rotation_is_finished_at_the_next_opening(tmp_path: Path) -> None:
    token = fresh_token()
    store = connect(tmp_path / "keys", token, create=True)
    store.create_many(["keep", "shred"], KeyPurpose.WRAP)
    kept = store.wrap("keep", b"k")
    script = (
        "from pathlib import Path\nfrom hygie.keys.pkcs11 import Pkcs11Keystore\n"
        f"s = Pkcs11Keystore.connect(Path({str(tmp_path / 'keys')!r}), module=Path({str(token.module)!r}), "
        f"token_label={token.label!r}, pin={token.pin!r})\n"
        "s.destroy('shred')\n"
    )
    killed = _child(script, {"HYGIE_FAILPOINT": "keys.pkcs11.destroy.before_rotation"})
    assert killed.returncode == -9, killed.stderr
    assert store.kek_generations() == [1]  # the destroyed key's KEK still exists: the destruction is not complete
    doc = json.loads((tmp_path / "keys" / "pkcs11-keystore.json").read_text())
    assert doc["kek"]["shred_pending"] is True

    reopened = connect(tmp_path / "keys", token)  # opening completes it
    assert reopened.kek_generations() == [2]
    assert reopened.unwrap("keep", kept) == b"k"
    assert reopened.info("shred").current_version is None
