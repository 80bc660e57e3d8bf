# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The PKCS#11 custody backend against a real SoftHSM2 token (initialised in a temporary directory)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pkcs11 import Attribute, Mechanism

from hygie.config import Settings
from hygie.keys import CustodyLocked, KeyDestroyed, KeyPurpose, UnwrapFailed, WrongPurpose, open_custody
from hygie.keys.pkcs11 import KEYSTORE_FILE, Pkcs11Keystore
from tests.keys.softhsm import Token, fresh_token


def connect(directory: Path, token: Token, *, create: bool = False, **options: object) -> Pkcs11Keystore:
    return Pkcs11Keystore.connect(
        directory, module=token.module, token_label=token.label, pin=token.pin, create=create, **options
    )


@pytest.fixture(scope="module")
def token() -> Token:
    return fresh_token()


@pytest.fixture(scope="module")
def store(token: Token, tmp_path_factory: pytest.TempPathFactory) -> Pkcs11Keystore:
    store = connect(tmp_path_factory.mktemp("p11") / "keys", token, create=True, bulk_mac_min=50)
    store.create("wh", KeyPurpose.WRAP)
    store.create("pseudo", KeyPurpose.PSEUDONYM)
    return store


def test_kek_is_sensitive_and_never_leaves_the_token(store: Pkcs11Keystore) -> None:
    attrs = store.kek_attributes()
    assert attrs == {
        "sensitive": True,
        "extractable": False,
        "always_sensitive": True,
        "never_extractable": True,
        "token": True,
    }
    kek = store._kek(1)
    with pytest.raises(Exception):  # the token refuses to show a sensitive key's value
        kek[Attribute.VALUE]
    # The session objects used for wrapping and HMACs are sensitive and not extractable either.
    store.wrap("wh", b"k" * 32)
    store.mac("pseudo", [b"x"])
    for _sealed, obj in store._objects.values():
        assert obj[Attribute.SENSITIVE] is True and obj[Attribute.EXTRACTABLE] is False
        assert obj[Attribute.TOKEN] is False
    # The keystore file holds only wrapped material, readable by its owner only.
    path = store._dir / KEYSTORE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["kek"]["current"] == 1 and set(doc["keys"]) == {"wh", "pseudo"}


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=512), context=st.binary(max_size=64))
def test_wrap_round_trip_property(store: Pkcs11Keystore, data: bytes, context: bytes) -> None:
    wrapped = store.wrap("wh", data, context)
    assert len(data) < 8 or data not in wrapped
    assert store.unwrap("wh", wrapped, context) == data


def test_tampering_is_refused(store: Pkcs11Keystore, token: Token) -> None:
    dek = os.urandom(32)
    wrapped = store.wrap("wh", dek, b"ctx")
    with pytest.raises(UnwrapFailed):
        store.unwrap("wh", wrapped, b"other context")
    for position in (8, 8 + 12, len(wrapped) - 1):  # nonce, ciphertext, tag
        tampered = bytearray(wrapped)
        tampered[position] ^= 1
        with pytest.raises(UnwrapFailed):
            store.unwrap("wh", bytes(tampered), b"ctx")
    with pytest.raises(UnwrapFailed):
        store.unwrap("wh", b"not a wrapped key at all, no", b"ctx")
    with pytest.raises(WrongPurpose):
        store.wrap("pseudo", dek)

    # A wrapped version altered in the keystore file, or moved to another name, is refused by the token.
    directory = store._dir
    copy = directory.parent / "tampered"
    shutil.copytree(directory, copy)
    doc = json.loads((copy / KEYSTORE_FILE).read_text())
    doc["keys"]["other"] = json.loads(json.dumps(doc["keys"]["wh"]))  # wh's wrapped key under another name
    sealed = bytearray(__import__("base64").b64decode(doc["keys"]["wh"]["versions"]["1"]["sealed"]))
    sealed[5] ^= 1
    doc["keys"]["wh"]["versions"]["1"]["sealed"] = __import__("base64").b64encode(bytes(sealed)).decode()
    (copy / KEYSTORE_FILE).write_text(json.dumps(doc))
    forged = connect(copy, token)
    with pytest.raises(UnwrapFailed):
        forged.unwrap("wh", wrapped, b"ctx")
    with pytest.raises(UnwrapFailed, match="not bound"):
        forged.wrap("other", dek)
    forged.close()


def test_macs_in_the_token_and_in_bulk_agree_and_bulk_reads_are_recorded(store: Pkcs11Keystore) -> None:
    messages = [f"person-{i}".encode() for i in range(120)]
    small = [m for batch in (messages[i : i + 40] for i in range(0, 120, 40)) for m in store.mac("pseudo", batch)]
    assert not store.bulk_reads  # batches under the threshold never bring the key out of the token
    bulk = store.mac("pseudo", messages)
    assert small == bulk and len(set(bulk)) == 120 and all(len(m) == 32 for m in bulk)
    assert store.bulk_reads == [("pseudo", 1, 120)]
    with pytest.raises(WrongPurpose):
        store.mac("wh", [b"x"])


def test_bulk_key_leaves_memory_after_its_lifetime(token: Token, tmp_path: Path) -> None:
    store = connect(tmp_path / "keys", fresh_token(), create=True, bulk_mac_min=2, bulk_key_seconds=0.05)
    store.create("p", KeyPurpose.PSEUDONYM)
    store.mac("p", [b"a", b"b"])
    import time

    deadline = time.monotonic() + 20
    while store._bulk and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not store._bulk
    store.close()


def test_destroy_erases_the_key_and_the_kek_that_could_open_copies(store: Pkcs11Keystore, token: Token) -> None:
    store.create("project-7", KeyPurpose.WRAP)
    dek = os.urandom(32)
    wrapped = store.wrap("project-7", dek)
    backup = store._dir.parent / "backup-before-destroy"
    shutil.copytree(store._dir, backup)
    before = store.kek_generations()
    kept = store.wrap("wh", dek)

    store.destroy("project-7")

    with pytest.raises(KeyDestroyed):
        store.unwrap("project-7", wrapped)
    after = store.kek_generations()
    assert len(after) == 1 and after[0] not in before  # the old KEK object is gone from the token
    assert store.kek_attributes()["extractable"] is False
    assert store.unwrap("wh", kept) == dek  # other keys were re-wrapped, not lost
    # The keystore copied before the destruction no longer opens: its KEK was destroyed in the token.
    with pytest.raises(CustodyLocked, match="no KEK generation"):
        connect(backup, token)
    # Even pointed at the live KEK, the copy's wrapped key does not unwrap.
    doc = json.loads((backup / KEYSTORE_FILE).read_text())
    doc["kek"]["current"] = after[0]
    for entry in doc["keys"].values():
        for slot in entry["versions"].values():
            if "kek" in slot:
                slot["kek"] = after[0]
    (backup / KEYSTORE_FILE).write_text(json.dumps(doc))
    forged = connect(backup, token)
    with pytest.raises(UnwrapFailed):
        forged.unwrap("project-7", wrapped)
    forged.close()


def test_fork_reinitialises_the_library(store: Pkcs11Keystore) -> None:
    dek = os.urandom(32)
    wrapped = store.wrap("wh", dek, b"fork")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's session handles are meaningless here
        try:
            ok = store.unwrap("wh", wrapped, b"fork") == dek and store.unwrap("wh", store.wrap("wh", dek)) == dek
            os.write(write, b"ok" if ok else b"no")
        except BaseException as exc:
            os.write(write, repr(exc).encode()[:200])
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 512)
    os.close(read)
    assert answer == b"ok" and status == 0
    assert store.unwrap("wh", wrapped, b"fork") == dek  # the parent's session still works


def test_bad_coordinates_are_clear_errors_and_change_nothing(
    store: Pkcs11Keystore, token: Token, tmp_path: Path
) -> None:
    before = (store._dir / KEYSTORE_FILE).read_bytes()
    with pytest.raises(CustodyLocked, match="refused the PIN"):
        Pkcs11Keystore.connect(store._dir, module=token.module, token_label=token.label, pin="wrong-pin")
    with pytest.raises(CustodyLocked, match="no token labelled"):
        Pkcs11Keystore.connect(store._dir, module=token.module, token_label="no-such-token", pin=token.pin)
    with pytest.raises(CustodyLocked, match="no PKCS#11 library"):
        Pkcs11Keystore.connect(store._dir, module=tmp_path / "missing.so", token_label=token.label, pin=token.pin)
    with pytest.raises(CustodyLocked, match="no PKCS#11 keystore"):
        connect(tmp_path / "empty", token)
    with pytest.raises(CustodyLocked, match="already holds Hygie KEKs"):
        connect(tmp_path / "second-hub", token, create=True)
    assert (store._dir / KEYSTORE_FILE).read_bytes() == before


def test_settings_choose_the_backend_and_read_the_pin_from_a_file(tmp_path: Path) -> None:
    token = fresh_token()
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin + "\n")
    pin_file.chmod(0o644)
    settings = Settings(
        data_dir=tmp_path / "hub",
        key_backend="pkcs11",
        pkcs11_module=token.module,
        pkcs11_token_label=token.label,
        pkcs11_pin_file=pin_file,
    )
    with pytest.raises(CustodyLocked, match="chmod 600"):
        open_custody(settings, create=True)
    pin_file.chmod(0o600)
    custody = open_custody(settings, create=True)
    assert isinstance(custody, Pkcs11Keystore)
    custody.create("x", KeyPurpose.WRAP)
    again = open_custody(settings)
    assert again.unwrap("x", custody.wrap("x", b"data key")) == b"data key"
    assert Mechanism.AES_KEY_WRAP_PAD  # the mechanism the KEK wraps with (SoftHSM 2.6 offers it)


def test_threads_share_the_session_safely(store: Pkcs11Keystore) -> None:
    """The Spark custody channel and the server call custody from other threads: one operation at a time per
    session, none mixed up."""
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> bool:
        dek = i.to_bytes(4, "big") * 8
        ok = all(store.unwrap("wh", store.wrap("wh", dek, b"t"), b"t") == dek for _ in range(50))
        return ok and store.mac("pseudo", [dek]) == store.mac("pseudo", [dek])

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))
