# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The embedded key custody backend: a keystore file in the data dir.

Every key version's material is sealed with AES-256-GCM under a master key that is never stored: it is
derived from ``HYGIE_KEY_PASSPHRASE`` with Argon2id (memory-hard), or read from a separate key file of mode
0600 kept outside the data dir. A copy of the data dir alone therefore yields no key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

from hygie import faults
from hygie.keys.custody import (
    CustodyLocked,
    KeyAlreadyExists,
    KeyDestroyed,
    KeyInfo,
    KeyNotFound,
    KeyPurpose,
    UnwrapFailed,
    WrongPurpose,
)
from hygie.locks import exclusive

FORMAT = "hygie-keystore/1"
WRAP_MAGIC = b"HYW1"
_CHECK = b"hygie keystore check"
KEY_BYTES = 32
NONCE_BYTES = 12


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _material_aad(name: str, version: int, purpose: str) -> bytes:
    return f"hygie-key|{name}|{version}|{purpose}".encode()


def _wrap_aad(name: str, version: int, context: bytes) -> bytes:
    return f"hygie-wrap|{name}|{version}|".encode() + context


def too_open(path: Path) -> bool:
    """Whether a secret file may be read by anyone but its owner. A systemd credential (a file directly in this
    service's ``$CREDENTIALS_DIRECTORY``, from ``LoadCredential=``) is root's, mode 0400, on a read-only file system,
    and readable by the service's user through an ACL entry: ``stat`` shows the ACL's mask as group bits (0440), which
    grant no group anything. There only the bits of others count."""
    mode = stat.S_IMODE(path.stat().st_mode)
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and path.resolve().parent == Path(credentials).resolve():
        return bool(mode & 0o007)
    return bool(mode & 0o077)


def read_key_file(path: Path, data_dir: Path) -> bytes:
    """Read a 32-byte master key file (raw, or base64 text), refusing unsafe placements."""
    path = path.expanduser()
    if not path.is_file():
        raise CustodyLocked(f"key file {path} does not exist; create one with `hygie keys new-key-file PATH`")
    try:
        path.resolve().relative_to(data_dir.resolve())
    except ValueError:
        pass
    else:
        raise CustodyLocked(
            f"key file {path} lies inside the data dir {data_dir}: keep it apart, or a copy of the data dir "
            "carries its own key"
        )
    if too_open(path):
        mode = stat.S_IMODE(path.stat().st_mode)
        raise CustodyLocked(f"key file {path} has mode {mode:04o}; make it readable by its owner only: chmod 600")
    raw = path.read_bytes()
    if len(raw) != KEY_BYTES:
        try:
            raw = base64.b64decode(raw.strip(), validate=True)
        except ValueError:
            raw = b""
    if len(raw) != KEY_BYTES:
        raise CustodyLocked(f"key file {path} must hold exactly 32 bytes (raw or base64)")
    return raw


def write_key_file(path: Path) -> None:
    """Create a new random master key file readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n")
        f.flush()
        os.fsync(f.fileno())


class LocalKeystore:
    """:class:`~hygie.keys.custody.KeyCustody` over a sealed JSON keystore file.

    Mutations take an exclusive ``flock`` and replace the file atomically (write, fsync, rename, fsync
    the directory), so a crash leaves either the old or the new keystore, never a torn one.
    """

    def __init__(self, directory: Path, master_key: bytes, document: dict[str, Any]) -> None:
        self._dir = directory
        self._master = AESGCM(master_key)
        self._doc = document
        self._cache: dict[tuple[str, int], bytes] = {}
        self._seen = self._signature()
        self._mutex = threading.RLock()
        """One thread at a time swaps or writes the in-memory document: a reader reloading it while a writer holds
        the file lock would replace the writer's document, and the writer would save it without its new key."""

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        passphrase: str | None = None,
        key_file: Path | None = None,
        data_dir: Path | None = None,
        kdf_memory_kib: int = 65_536,
        kdf_iterations: int = 3,
        kdf_lanes: int = 4,
        create: bool = False,
    ) -> LocalKeystore:
        path = directory / "keystore.json"
        if not path.exists():
            if not create:
                raise CustodyLocked(f"no keystore at {path}; run `hygie init` first")
            return cls._create(
                directory,
                passphrase=passphrase,
                key_file=key_file,
                data_dir=data_dir or directory.parent,
                kdf=(kdf_memory_kib, kdf_iterations, kdf_lanes),
            )
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise CustodyLocked(f"{path} is not a Hygie keystore of format {FORMAT}")
        master = cls._master_key(doc["kdf"], passphrase, key_file, data_dir or directory.parent)
        try:
            AESGCM(master).decrypt(_unb64(doc["check"]["nonce"]), _unb64(doc["check"]["sealed"]), _CHECK)
        except InvalidTag:
            raise CustodyLocked(
                "the keystore does not open with this master key: check HYGIE_KEY_PASSPHRASE or HYGIE_KEY_FILE"
            ) from None
        return cls(directory, master, doc)

    @staticmethod
    def _master_key(kdf: dict[str, Any], passphrase: str | None, key_file: Path | None, data_dir: Path) -> bytes:
        if kdf["alg"] == "keyfile":
            if key_file is None:
                raise CustodyLocked("this keystore is opened with a key file: set HYGIE_KEY_FILE")
            return read_key_file(key_file, data_dir)
        if kdf["alg"] != "argon2id":
            raise CustodyLocked(f"unknown key derivation {kdf['alg']!r}")
        if not passphrase:
            raise CustodyLocked("this keystore is opened with a passphrase: set HYGIE_KEY_PASSPHRASE")
        return Argon2id(
            salt=_unb64(kdf["salt"]),
            length=KEY_BYTES,
            iterations=int(kdf["iterations"]),
            lanes=int(kdf["lanes"]),
            memory_cost=int(kdf["memory_kib"]),
        ).derive(passphrase.encode("utf-8"))

    @classmethod
    def _create(
        cls,
        directory: Path,
        *,
        passphrase: str | None,
        key_file: Path | None,
        data_dir: Path,
        kdf: tuple[int, int, int],
    ) -> LocalKeystore:
        if key_file is not None:
            kdf_doc: dict[str, Any] = {"alg": "keyfile"}
        elif passphrase:
            memory, iterations, lanes = kdf
            kdf_doc = {
                "alg": "argon2id",
                "salt": _b64(secrets.token_bytes(16)),
                "memory_kib": memory,
                "iterations": iterations,
                "lanes": lanes,
            }
        else:
            raise CustodyLocked(
                "no master key: set HYGIE_KEY_PASSPHRASE, or HYGIE_KEY_FILE to a 0600 key file outside the data dir"
            )
        master = cls._master_key(kdf_doc, passphrase, key_file, data_dir)
        nonce = secrets.token_bytes(NONCE_BYTES)
        doc = {
            "format": FORMAT,
            "created_at": _now(),
            "kdf": kdf_doc,
            "check": {"nonce": _b64(nonce), "sealed": _b64(AESGCM(master).encrypt(nonce, _CHECK, _CHECK))},
            "keys": {},
        }
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = cls(directory, master, doc)
        with store._locked():
            if (directory / "keystore.json").exists():
                raise CustodyLocked(f"a keystore already exists in {directory}")
            store._save()
        return store

    # -- persistence -------------------------------------------------------------------------------

    @property
    def _path(self) -> Path:
        return self._dir / "keystore.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex, exclusive(self._dir / "keystore.lock"):
            if self._path.exists():
                self._doc = json.loads(self._path.read_text(encoding="utf-8"))
                self._cache.clear()
                self._seen = self._signature()
            yield

    def _save(self) -> None:
        tmp = self._dir / f".keystore.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # Compact, so that the C encoder writes it: a keystore of 10,000 keys is saved in milliseconds.
            json.dump(self._doc, f, sort_keys=True, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._seen = self._signature()

    # -- key material ------------------------------------------------------------------------------

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        """Re-read the keystore if another process changed it (a key created, rotated or destroyed by the CLI
        while a server runs): a key destroyed anywhere stops working everywhere, not at the next restart."""
        with self._mutex:
            seen = self._signature()
            if seen == self._seen or seen is None:
                return
            self._doc = json.loads(self._path.read_text(encoding="utf-8"))
            self._cache.clear()
            self._seen = seen

    def _entry(self, name: str) -> dict[str, Any]:
        self._refresh()
        entry = self._doc["keys"].get(name)
        if entry is None:
            raise KeyNotFound(f"no key named {name!r} in the keystore")
        return entry  # type: ignore[no-any-return]

    def _material(self, name: str, version: int, purpose: KeyPurpose) -> bytes:
        entry = self._entry(name)
        if entry["purpose"] != purpose:
            raise WrongPurpose(f"key {name!r} is a {entry['purpose']} key, not a {purpose} key")
        cached = self._cache.get((name, version))
        if cached is not None:
            return cached
        slot = entry["versions"].get(str(version))
        if slot is None:
            raise KeyNotFound(f"key {name!r} has no version {version}")
        if "sealed" not in slot:
            raise KeyDestroyed(f"version {version} of key {name!r} was destroyed on {slot['destroyed_at']}")
        try:
            material = self._master.decrypt(
                _unb64(slot["nonce"]), _unb64(slot["sealed"]), _material_aad(name, version, entry["purpose"])
            )
        except InvalidTag:
            raise CustodyLocked(
                "the keystore no longer opens with the master key this process holds (was it rotated? restart with "
                "the new HYGIE_KEY_PASSPHRASE or HYGIE_KEY_FILE)"
            ) from None
        self._cache[(name, version)] = material
        return material

    def _current(self, name: str, purpose: KeyPurpose) -> int:
        entry = self._entry(name)
        if entry["purpose"] != purpose:
            raise WrongPurpose(f"key {name!r} is a {entry['purpose']} key, not a {purpose} key")
        current = entry.get("current")
        if current is None:
            raise KeyDestroyed(f"every version of key {name!r} was destroyed")
        return int(current)

    def _new_version(self, name: str, purpose: str, version: int) -> dict[str, Any]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._master.encrypt(nonce, secrets.token_bytes(KEY_BYTES), _material_aad(name, version, purpose))
        return {"created_at": _now(), "nonce": _b64(nonce), "sealed": _b64(sealed)}

    def _info(self, name: str) -> KeyInfo:
        entry = self._entry(name)
        versions = sorted(int(v) for v in entry["versions"])
        destroyed = tuple(v for v in versions if "sealed" not in entry["versions"][str(v)])
        return KeyInfo(
            name=name,
            purpose=KeyPurpose(entry["purpose"]),
            current_version=entry.get("current"),
            versions=tuple(versions),
            destroyed_versions=destroyed,
        )

    # -- KeyCustody --------------------------------------------------------------------------------

    def create(self, name: str, purpose: KeyPurpose) -> KeyInfo:
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"key name {name!r} must be letters, digits, '-', '_' or '.'")
        with self._locked():
            if name in self._doc["keys"]:
                raise KeyAlreadyExists(f"a key named {name!r} already exists")
            self._doc["keys"][name] = {
                "purpose": str(purpose),
                "current": 1,
                "versions": {"1": self._new_version(name, str(purpose), 1)},
            }
            self._save()
        return self._info(name)

    def create_many(self, names: Sequence[str], purpose: KeyPurpose) -> int:
        """Create many keys (version 1 each) in one save of the keystore; names already taken are skipped.
        Returns how many were created."""
        for name in names:
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"key name {name!r} must be letters, digits, '-', '_' or '.'")
        created = 0
        with self._locked():
            for name in names:
                if name in self._doc["keys"]:
                    continue
                self._doc["keys"][name] = {
                    "purpose": str(purpose),
                    "current": 1,
                    "versions": {"1": self._new_version(name, str(purpose), 1)},
                }
                created += 1
            self._save()
        return created

    def rekey(
        self,
        *,
        passphrase: str | None = None,
        key_file: Path | None = None,
        data_dir: Path | None = None,
        kdf: tuple[int, int, int] = (65_536, 3, 4),
    ) -> int:
        """Re-seal every live key version under a new master key (a new passphrase, or a new key file), without
        touching any data: the versions' material is unchanged, so every wrapped data key and pseudonym stays valid.

        The keystore file is replaced atomically, once: a crash leaves the old keystore (opened by the old master
        key), and running the rotation again does it all. Returns the number of versions re-sealed."""
        if key_file is not None:
            kdf_doc: dict[str, Any] = {"alg": "keyfile"}
        elif passphrase:
            memory, iterations, lanes = kdf
            kdf_doc = {
                "alg": "argon2id",
                "salt": _b64(secrets.token_bytes(16)),
                "memory_kib": memory,
                "iterations": iterations,
                "lanes": lanes,
            }
        else:
            raise CustodyLocked("a new master key is needed: a new passphrase, or a new key file")
        new_master = self._master_key(kdf_doc, passphrase, key_file, data_dir or self._dir.parent)
        new = AESGCM(new_master)
        count = 0
        with self._locked():
            doc = json.loads(json.dumps(self._doc))  # a failure half-way leaves the document as it was
            for name, entry in doc["keys"].items():
                for version, slot in entry["versions"].items():
                    if "sealed" not in slot:
                        continue
                    aad = _material_aad(name, int(version), entry["purpose"])
                    try:
                        material = self._master.decrypt(_unb64(slot["nonce"]), _unb64(slot["sealed"]), aad)
                    except InvalidTag:
                        raise CustodyLocked(f"key {name!r} version {version} does not open: nothing changed") from None
                    nonce = secrets.token_bytes(NONCE_BYTES)
                    slot["nonce"] = _b64(nonce)
                    slot["sealed"] = _b64(new.encrypt(nonce, material, aad))
                    count += 1
            check_nonce = secrets.token_bytes(NONCE_BYTES)
            doc["kdf"] = kdf_doc
            doc["check"] = {"nonce": _b64(check_nonce), "sealed": _b64(new.encrypt(check_nonce, _CHECK, _CHECK))}
            doc["rekeyed_at"] = _now()
            faults.point("keys.local.rekey.before_replace")
            self._doc = doc
            self._save()
            self._master = new
            self._cache.clear()
        return count

    def ensure(self, name: str, purpose: KeyPurpose) -> KeyInfo:
        self._refresh()
        if name in self._doc["keys"]:
            info = self._info(name)
            if info.purpose != purpose:
                raise WrongPurpose(f"key {name!r} is a {info.purpose} key, not a {purpose} key")
            return info
        try:
            return self.create(name, purpose)
        except KeyAlreadyExists:
            return self._info(name)

    def info(self, name: str) -> KeyInfo:
        return self._info(name)

    def all_keys(self) -> Sequence[KeyInfo]:
        self._refresh()
        return [self._info(name) for name in sorted(self._doc["keys"])]

    def wrap(self, name: str, data_key: bytes, context: bytes = b"") -> bytes:
        version = self._current(name, KeyPurpose.WRAP)
        key = self._material(name, version, KeyPurpose.WRAP)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, data_key, _wrap_aad(name, version, context))
        return WRAP_MAGIC + struct.pack(">I", version) + nonce + sealed

    def unwrap(self, name: str, wrapped: bytes, context: bytes = b"") -> bytes:
        if len(wrapped) < 8 + NONCE_BYTES + 16 or not wrapped.startswith(WRAP_MAGIC):
            raise UnwrapFailed(f"this is not a key wrapped by Hygie under {name!r}")
        (version,) = struct.unpack(">I", wrapped[4:8])
        key = self._material(name, version, KeyPurpose.WRAP)
        try:
            return AESGCM(key).decrypt(
                wrapped[8 : 8 + NONCE_BYTES], wrapped[8 + NONCE_BYTES :], _wrap_aad(name, version, context)
            )
        except InvalidTag:
            raise UnwrapFailed(
                f"the wrapped key does not open under {name!r} version {version} (altered, or other context)"
            ) from None

    def mac(self, name: str, messages: Sequence[bytes], version: int | None = None) -> list[bytes]:
        if version is None:
            version = self._current(name, KeyPurpose.PSEUDONYM)
        key = self._material(name, version, KeyPurpose.PSEUDONYM)
        base = hmac.HMAC(key, hashes.SHA256())
        out: list[bytes] = []
        for message in messages:
            h = base.copy()
            h.update(message)
            out.append(h.finalize())
        return out

    def rotate(self, name: str) -> KeyInfo:
        with self._locked():
            entry = self._entry(name)
            version = max(int(v) for v in entry["versions"]) + 1
            entry["versions"][str(version)] = self._new_version(name, entry["purpose"], version)
            entry["current"] = version
            self._save()
        return self._info(name)

    def destroy(self, name: str, version: int | None = None) -> KeyInfo:
        with self._locked():
            entry = self._entry(name)
            targets = list(entry["versions"]) if version is None else [str(version)]
            for v in targets:
                if v not in entry["versions"]:
                    raise KeyNotFound(f"key {name!r} has no version {v}")
                entry["versions"][v] = {"destroyed_at": _now()}
                self._cache.pop((name, int(v)), None)
            live = [int(v) for v, slot in entry["versions"].items() if "sealed" in slot]
            entry["current"] = max(live) if live else None
            self._save()
        return self._info(name)
