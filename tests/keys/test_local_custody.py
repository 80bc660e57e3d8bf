# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.keys import (
    CustodyLocked,
    KeyAlreadyExists,
    KeyDestroyed,
    KeyPurpose,
    LocalKeystore,
    UnwrapFailed,
    WrongPurpose,
)
from hygie.keys.local import write_key_file

LIGHT = {"kdf_memory_kib": 8192, "kdf_iterations": 1, "kdf_lanes": 1}


def open_store(directory: Path, passphrase: str = "s3cret", create: bool = False) -> LocalKeystore:
    return LocalKeystore.open(directory, passphrase=passphrase, create=create, **LIGHT)


@pytest.fixture
def store(tmp_path: Path) -> LocalKeystore:
    return open_store(tmp_path / "keys", create=True)


def test_wrap_unwrap_round_trip_and_context_binding(store: LocalKeystore) -> None:
    store.create("wh", KeyPurpose.WRAP)
    dek = os.urandom(32)
    wrapped = store.wrap("wh", dek, b"ctx")
    assert dek not in wrapped
    assert store.unwrap("wh", wrapped, b"ctx") == dek
    with pytest.raises(UnwrapFailed):
        store.unwrap("wh", wrapped, b"other")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 1
    with pytest.raises(UnwrapFailed):
        store.unwrap("wh", bytes(tampered), b"ctx")


@settings(max_examples=50, deadline=None)
@given(data=st.binary(min_size=0, max_size=256), context=st.binary(max_size=64))
def test_wrap_round_trip_property(tmp_path_factory: pytest.TempPathFactory, data: bytes, context: bytes) -> None:
    store = _shared_store(tmp_path_factory)
    assert store.unwrap("prop", store.wrap("prop", data, context), context) == data


_STORES: dict[str, LocalKeystore] = {}


def _shared_store(factory: pytest.TempPathFactory) -> LocalKeystore:
    if "s" not in _STORES:
        s = open_store(factory.mktemp("prop") / "keys", create=True)
        s.create("prop", KeyPurpose.WRAP)
        _STORES["s"] = s
    return _STORES["s"]


def test_mac_is_stable_and_key_dependent(store: LocalKeystore) -> None:
    store.create("p1", KeyPurpose.PSEUDONYM)
    store.create("p2", KeyPurpose.PSEUDONYM)
    a = store.mac("p1", [b"x", b"y"])
    assert a == store.mac("p1", [b"x", b"y"])
    assert a[0] != a[1]
    assert store.mac("p2", [b"x"])[0] != a[0]
    with pytest.raises(WrongPurpose):
        store.wrap("p1", b"k")


def test_reopen_with_right_and_wrong_passphrase(tmp_path: Path) -> None:
    s = open_store(tmp_path / "keys", create=True)
    s.create("p", KeyPurpose.PSEUDONYM)
    mac = s.mac("p", [b"m"])
    again = open_store(tmp_path / "keys")
    assert again.mac("p", [b"m"]) == mac
    with pytest.raises(CustodyLocked, match="does not open"):
        open_store(tmp_path / "keys", passphrase="wrong")
    with pytest.raises(CustodyLocked, match="HYGIE_KEY_PASSPHRASE"):
        LocalKeystore.open(tmp_path / "keys", **LIGHT)


def test_keystore_file_holds_no_key_material_in_clear(store: LocalKeystore, tmp_path: Path) -> None:
    store.create("p", KeyPurpose.PSEUDONYM)
    material = store._material("p", 1, KeyPurpose.PSEUDONYM)
    raw = (tmp_path / "keys" / "keystore.json").read_bytes()
    import base64

    assert material not in raw and base64.b64encode(material) not in raw
    assert stat.S_IMODE((tmp_path / "keys" / "keystore.json").stat().st_mode) == 0o600


def test_rotate_keeps_old_versions_for_unwrap_and_destroy_shreds(store: LocalKeystore) -> None:
    store.create("wh", KeyPurpose.WRAP)
    old = store.wrap("wh", b"k" * 32)
    info = store.rotate("wh")
    assert info.current_version == 2
    new = store.wrap("wh", b"n" * 32)
    assert store.unwrap("wh", old) == b"k" * 32
    store.destroy("wh", 1)
    with pytest.raises(KeyDestroyed):
        store.unwrap("wh", old)
    assert store.unwrap("wh", new) == b"n" * 32
    store.destroy("wh")
    with pytest.raises(KeyDestroyed):
        store.unwrap("wh", new)
    with pytest.raises(KeyDestroyed):
        store.wrap("wh", b"x")
    with pytest.raises(KeyAlreadyExists):
        store.create("wh", KeyPurpose.WRAP)


def test_destroyed_key_stays_destroyed_after_reopen(tmp_path: Path) -> None:
    s = open_store(tmp_path / "keys", create=True)
    s.create("p", KeyPurpose.PSEUDONYM)
    s.destroy("p")
    with pytest.raises(KeyDestroyed):
        open_store(tmp_path / "keys").mac("p", [b"m"])


def test_key_file_mode_and_placement(tmp_path: Path) -> None:
    key = tmp_path / "master.key"
    write_key_file(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    data_dir = tmp_path / "data"
    s = LocalKeystore.open(data_dir / "keys", key_file=key, data_dir=data_dir, create=True)
    s.create("p", KeyPurpose.PSEUDONYM)
    assert LocalKeystore.open(data_dir / "keys", key_file=key, data_dir=data_dir).mac("p", [b"a"])
    os.chmod(key, 0o644)
    with pytest.raises(CustodyLocked, match="chmod 600"):
        LocalKeystore.open(data_dir / "keys", key_file=key, data_dir=data_dir)
    inside = data_dir / "inside.key"
    write_key_file(inside)
    with pytest.raises(CustodyLocked, match="inside the data dir"):
        LocalKeystore.open(tmp_path / "d2" / "keys", key_file=inside, data_dir=data_dir, create=True)


def test_a_key_destroyed_by_another_process_stops_working_here_at_once(tmp_path: Path) -> None:
    """A server keeps its keystore open while the console closes a project: the shredding reaches it."""
    server = open_store(tmp_path / "keys", create=True)
    server.create("project-1-pseudonym", KeyPurpose.PSEUDONYM)
    server.create("project-1-view", KeyPurpose.WRAP)
    wrapped = server.wrap("project-1-view", os.urandom(32))
    assert server.mac("project-1-pseudonym", [b"x"])  # material now cached in the server
    console = open_store(tmp_path / "keys")
    console.destroy("project-1-pseudonym")
    console.destroy("project-1-view")
    console.create("made-by-the-console", KeyPurpose.WRAP)
    with pytest.raises(KeyDestroyed):
        server.mac("project-1-pseudonym", [b"x"])
    with pytest.raises(KeyDestroyed):
        server.unwrap("project-1-view", wrapped)
    assert server.info("made-by-the-console").current_version == 1


def test_a_key_created_while_another_thread_reloads_the_keystore_is_kept(tmp_path: Path) -> None:
    """A thread re-reading the keystore (another instance changed it) must not swap the document of a writer of the
    same instance holding the file lock: the writer would save it without its new key (seen in CI as
    ``KeyNotFound`` right after a project's view key was created). The interleaving is forced."""
    import threading
    from pathlib import PosixPath

    mine = open_store(tmp_path / "keys", create=True)
    open_store(tmp_path / "keys").ensure("elsewhere", KeyPurpose.WRAP)  # another instance: mine's copy is stale
    at_read, inserted, reloaded = threading.Event(), threading.Event(), threading.Event()

    class Paused(PosixPath):
        def read_text(self, *args: Any, **kwargs: Any) -> str:
            if threading.current_thread() is reader_thread:
                at_read.set()
                inserted.wait(0.5)  # the writer has added its key in memory
            return super().read_text(*args, **kwargs)

    mine._dir = Paused(mine._dir)  # the keystore file is a path under it
    save = mine._save

    def paused_save() -> None:
        inserted.set()
        reloaded.wait(0.5)  # the reader has finished its reload
        save()

    mine._save = paused_save  # type: ignore[method-assign]

    def reload() -> None:
        mine._refresh()
        reloaded.set()

    reader_thread = threading.Thread(target=reload)
    reader_thread.start()
    assert at_read.wait(5)
    mine.create("project-1-view", KeyPurpose.WRAP)
    reader_thread.join()
    assert open_store(tmp_path / "keys").info("project-1-view").current_version == 1
