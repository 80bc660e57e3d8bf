# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The HSM key custody backend (PKCS#11), as HashiCorp Vault's PKCS#11 seal or Barbican's PKCS#11 back end.

One master **KEK** lives in the token: AES-256, generated there, ``CKA_SENSITIVE`` and not ``CKA_EXTRACTABLE``, able
to wrap and unwrap keys and nothing else. Every named key version (the warehouse key, the vault key, each project's
keys, the pseudonym and blind-index keys) is generated inside the token too, leaves it only wrapped under the KEK
(``CKM_AES_KEY_WRAP_PAD``, RFC 5649) and is stored so in ``keys/pkcs11-keystore.json``. To be used it is unwrapped
back into the token as a *session* object (sensitive, not extractable, gone when the process ends):

* data keys (Parquet KEKs, the vault's record key) are wrapped and unwrapped by the token with ``CKM_AES_GCM``, the
  caller's context as authenticated data, the same layout as the local keystore's;
* HMACs of small batches (a query, one person's lookup) are computed in the token (``CKM_SHA256_HMAC``);
  batches of at least ``HYGIE_PKCS11_BULK_MAC_MIN`` messages (ingestion, view builds) would cost minutes there, so
  the pseudonym key is read out into process memory for at most ``HYGIE_PKCS11_BULK_KEY_SECONDS`` and each such
  read is logged (logger ``hygie.keys``, event ``pseudonym key in memory``) and counted in :attr:`bulk_reads`.

**Shredding holds.** Destroying a key version drops its wrapped copy from the keystore *and* rotates the KEK: every
surviving version is re-wrapped under a new KEK generated in the token, then the old KEK object is destroyed in the
token. A copy of the keystore, data dir or database taken before the destruction holds the destroyed key wrapped
only under a KEK that no longer exists anywhere. A rotation interrupted by a crash resumes where it stopped (both
KEKs stay in the token until every key is re-wrapped); opening the keystore finishes it.

Forked processes: PKCS#11 state does not survive ``fork()``; every token operation checks :func:`os.getpid` and a
child re-initialises the library and opens its own session before its first operation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, hmac
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11._pkcs11 import lib as Pkcs11Lib
from pkcs11.exceptions import NoSuchKey, NoSuchToken, PinIncorrect, PinLenRange, PKCS11Error
from pkcs11.mechanisms import GCMParams

from hygie import faults
from hygie.keys.custody import (
    CustodyLocked,
    KeyDestroyed,
    KeyInfo,
    KeyNotFound,
    KeyPurpose,
    UnwrapFailed,
    WrongPurpose,
)
from hygie.keys.local import (
    KEY_BYTES,
    NONCE_BYTES,
    WRAP_MAGIC,
    LocalKeystore,
    _b64,
    _material_aad,
    _now,
    _unb64,
    too_open,
)
from hygie.keys.local import _wrap_aad as _gcm_aad

FORMAT = "hygie-pkcs11-keystore/1"
KEK_LABEL = "hygie-kek-"
KEYSTORE_FILE = "pkcs11-keystore.json"
log = logging.getLogger("hygie.keys")

_KEK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}


def _usage(purpose: str) -> dict[Attribute, Any]:
    if purpose == KeyPurpose.WRAP:
        return {Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.SIGN: False, Attribute.VERIFY: False}
    return {Attribute.SIGN: True, Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.DECRYPT: False}


def _key_type(purpose: str) -> KeyType:
    return KeyType.AES if purpose == KeyPurpose.WRAP else KeyType.GENERIC_SECRET


def read_pin(pin: str | None, pin_file: Path | None) -> str:
    """The token's user PIN, from the environment or a 0600 file (never from a command line)."""
    if pin:
        return pin
    if pin_file is None:
        raise CustodyLocked("the HSM needs its user PIN: set HYGIE_PKCS11_PIN or HYGIE_PKCS11_PIN_FILE")
    path = pin_file.expanduser()
    if not path.is_file():
        raise CustodyLocked(f"PIN file {path} does not exist")
    if too_open(path):  # a systemd credential's ACL shows as group bits: see too_open
        mode = stat.S_IMODE(path.stat().st_mode)
        raise CustodyLocked(f"PIN file {path} has mode {mode:04o}; make it readable by its owner only: chmod 600")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise CustodyLocked(f"PIN file {path} is empty")
    return text


_LIBS: dict[str, tuple[int, Pkcs11Lib]] = {}
_LIBS_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str], tuple[int, Any, str]] = {}
"""(module, token label) -> (pid, logged-in session, the PIN that logged it in)."""
_MUTEXES: dict[tuple[str, str], threading.RLock] = {}


def _library(module: Path) -> Pkcs11Lib:
    """One loaded library per module and process; a forked child re-initialises it (PKCS#11 state does not
    survive fork)."""
    key = str(module)
    with _LIBS_LOCK:
        held = _LIBS.get(key)
        if held is not None:
            pid, lib = held
            if pid != os.getpid():
                lib.reinitialize()
                _LIBS[key] = (os.getpid(), lib)
            return lib
        if not module.is_file():
            raise CustodyLocked(f"no PKCS#11 library at {module}: set HYGIE_PKCS11_MODULE")
        try:
            lib = Pkcs11Lib(key)
        except (OSError, RuntimeError) as exc:
            raise CustodyLocked(f"the PKCS#11 library {module} does not load ({type(exc).__name__})") from None
        _LIBS[key] = (os.getpid(), lib)
        return lib


class Pkcs11Keystore(LocalKeystore):
    """:class:`~hygie.keys.custody.KeyCustody` whose master KEK lives in a PKCS#11 token.

    The JSON document, its locking, atomic saves and re-reading are the local keystore's; what differs is how a
    version's material is sealed (wrapped by the token) and where it is used (in the token)."""

    def __init__(
        self,
        directory: Path,
        document: dict[str, Any],
        *,
        module: Path,
        token_label: str,
        pin: str,
        bulk_mac_min: int = 20_000,
        bulk_key_seconds: float = 60.0,
        rotation_batch: int = 500,
    ) -> None:
        self._dir = directory
        self._doc = document
        self._cache: dict[tuple[str, int], bytes] = {}
        self._seen = self._signature()
        with _LIBS_LOCK:
            self._mutex = _MUTEXES.setdefault((str(module), token_label), threading.RLock())
        """One lock per token and process, shared by every keystore on it: they share one session (PKCS#11 logs
        in per application, not per session), and a session runs one operation at a time."""
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._bulk_mac_min = bulk_mac_min
        self._bulk_key_seconds = bulk_key_seconds
        self.rotation_batch = rotation_batch
        self._pid = -1
        self._sess: Any = None
        self._objects: dict[tuple[str, int], tuple[str, Any]] = {}
        """Session objects of unwrapped versions, by (name, version), with the wrapped copy they came from."""
        self._keks: dict[int, Any] = {}
        self._bulk: dict[tuple[str, int], bytes] = {}
        self.bulk_reads: list[tuple[str, int, int]] = []
        """(key name, version, messages) of every time a pseudonym key was read into process memory."""

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        directory: Path,
        *,
        module: Path,
        token_label: str,
        pin: str,
        create: bool = False,
        bulk_mac_min: int = 20_000,
        bulk_key_seconds: float = 60.0,
        rotation_batch: int = 500,
    ) -> Pkcs11Keystore:
        path = directory / KEYSTORE_FILE
        options: dict[str, Any] = {
            "module": module,
            "token_label": token_label,
            "pin": pin,
            "bulk_mac_min": bulk_mac_min,
            "bulk_key_seconds": bulk_key_seconds,
            "rotation_batch": rotation_batch,
        }
        if not path.exists():
            if not create:
                raise CustodyLocked(f"no PKCS#11 keystore at {path}; run `hygie init` with HYGIE_KEY_BACKEND=pkcs11")
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            store = cls(directory, {}, **options)
            store._create_document()
            return store
        import json

        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise CustodyLocked(f"{path} is not a Hygie PKCS#11 keystore of format {FORMAT}")
        store = cls(directory, doc, **options)
        current = int(doc["kek"]["current"])
        if store._kek(current) is None:
            raise CustodyLocked(
                f"token {token_label!r} holds no KEK generation {current}: wrong token, or its KEK was destroyed"
            )
        if doc["kek"].get("pending") is not None or doc["kek"].get("shred_pending"):
            store.rotate_kek()  # finish what a crash interrupted: a destruction is not complete until then
        elif set(store.kek_generations()) != {current}:
            store._drop_stale_keks()
        return store

    def _drop_stale_keks(self) -> None:
        """Destroy KEKs a crash left behind: the old one of a finished rotation (it could still open earlier copies
        of the keystore), or a new one generated but never recorded (nothing is wrapped under it)."""
        with self._locked():
            if self._doc["kek"].get("pending") is not None:
                return  # a rotation is under way in another process: it destroys the old KEK itself
            current = int(self._doc["kek"]["current"])
            with self._mutex:
                for generation, obj in self._kek_labels().items():
                    if generation != current:
                        obj.destroy()
                        self._keks.pop(generation, None)

    def _create_document(self) -> None:
        with self._locked():
            if self._path.exists():
                raise CustodyLocked(f"a PKCS#11 keystore already exists in {self._dir}")
            if self._kek_labels():
                raise CustodyLocked(
                    f"token {self._token_label!r} already holds Hygie KEKs (another hub's?): give each hub its own "
                    "token, or clear this one with the token's own tools"
                )
            self._generate_kek(1)
            self._doc = {
                "format": FORMAT,
                "created_at": _now(),
                "token_label": self._token_label,
                "kek": {"current": 1, "pending": None, "shred_pending": False},
                "keys": {},
            }
            self._save()

    @property
    def _path(self) -> Path:
        return self._dir / KEYSTORE_FILE

    # -- the token ----------------------------------------------------------------------------------

    def _session(self) -> Any:
        if self._sess is not None and self._pid == os.getpid():
            return self._sess
        # First use, or a forked child: the parent's session and object handles mean nothing here.
        self._objects.clear()
        self._keks.clear()
        lib = _library(self._module)
        shared = _SESSIONS.get((str(self._module), self._token_label))
        if shared is not None and shared[0] == os.getpid():
            if not secrets.compare_digest(shared[2].encode(), self._pin.encode()):
                raise CustodyLocked(
                    f"token {self._token_label!r} refused the PIN (HYGIE_PKCS11_PIN or HYGIE_PKCS11_PIN_FILE); "
                    "repeated failures lock the token"
                )
            self._sess = shared[1]
            self._pid = os.getpid()
            return self._sess
        try:
            token = lib.get_token(token_label=self._token_label)
        except NoSuchToken:
            raise CustodyLocked(
                f"no token labelled {self._token_label!r} in {self._module}: check HYGIE_PKCS11_TOKEN_LABEL"
            ) from None
        try:
            self._sess = token.open(rw=True, user_pin=self._pin)
        except (PinIncorrect, PinLenRange):
            raise CustodyLocked(
                f"token {self._token_label!r} refused the PIN (HYGIE_PKCS11_PIN or HYGIE_PKCS11_PIN_FILE); "
                "repeated failures lock the token"
            ) from None
        except PKCS11Error as exc:
            raise CustodyLocked(f"token {self._token_label!r} cannot be opened ({type(exc).__name__})") from None
        self._pid = os.getpid()
        _SESSIONS[(str(self._module), self._token_label)] = (self._pid, self._sess, self._pin)
        return self._sess

    def _kek_labels(self) -> dict[int, Any]:
        found: dict[int, Any] = {}
        for obj in self._session().get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
            label = obj[Attribute.LABEL]
            if isinstance(label, str) and label.startswith(KEK_LABEL) and label[len(KEK_LABEL) :].isdigit():
                found[int(label[len(KEK_LABEL) :])] = obj
        return found

    def _kek(self, generation: int) -> Any:
        with self._mutex:
            session = self._session()
            cached = self._keks.get(generation)
            if cached is not None:
                return cached
            try:
                obj = session.get_key(object_class=ObjectClass.SECRET_KEY, label=f"{KEK_LABEL}{generation}")
            except NoSuchKey:
                return None
            self._keks[generation] = obj
            return obj

    def _generate_kek(self, generation: int) -> Any:
        with self._mutex:
            obj = self._session().generate_key(
                KeyType.AES, 256, label=f"{KEK_LABEL}{generation}", store=True, template=dict(_KEK_TEMPLATE)
            )
            self._keks[generation] = obj
            return obj

    def kek_attributes(self) -> dict[str, bool]:
        """The current KEK's protection attributes, as the token reports them (never its value)."""
        kek = self._kek(int(self._doc["kek"]["current"]))
        with self._mutex:
            return {
                "sensitive": bool(kek[Attribute.SENSITIVE]),
                "extractable": bool(kek[Attribute.EXTRACTABLE]),
                "always_sensitive": bool(kek[Attribute.ALWAYS_SENSITIVE]),
                "never_extractable": bool(kek[Attribute.NEVER_EXTRACTABLE]),
                "token": bool(kek[Attribute.TOKEN]),
            }

    def kek_generations(self) -> list[int]:
        """KEK generations present in the token (one, except during a rotation)."""
        with self._mutex:
            return sorted(self._kek_labels())

    def _unwrap_version(self, generation: int, sealed: str, purpose: str, template: dict[Attribute, Any]) -> Any:
        kek = self._kek(generation)
        if kek is None:
            raise CustodyLocked(f"the token no longer holds KEK generation {generation}")
        try:
            return kek.unwrap_key(
                ObjectClass.SECRET_KEY,
                _key_type(purpose),
                _unb64(sealed),
                mechanism=Mechanism.AES_KEY_WRAP_PAD,
                template={Attribute.TOKEN: False, **_usage(purpose), **template},
            )
        except PKCS11Error:
            raise UnwrapFailed("a stored key does not unwrap under the token's KEK (altered keystore)") from None

    # -- sealing versions -----------------------------------------------------------------------------

    def _new_version(self, name: str, purpose: str, version: int) -> dict[str, Any]:
        with self._mutex:
            generation = int(self._doc["kek"].get("pending") or self._doc["kek"]["current"])
            obj = self._session().generate_key(
                _key_type(purpose),
                KEY_BYTES * 8,
                store=False,
                template={Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True, **_usage(purpose)},
            )
            try:
                sealed = self._kek(generation).wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                check = self._binding(obj, name, version, purpose)
            finally:
                obj.destroy()
        return {"created_at": _now(), "kek": generation, "sealed": _b64(sealed), "check": _b64(check)}

    @staticmethod
    def _binding(obj: Any, name: str, version: int, purpose: str) -> bytes:
        """A value only this key computes over its name and version: a wrapped key moved to another name or version
        in the keystore file is refused instead of silently used (RFC 5649 wrapping authenticates no context)."""
        aad = _material_aad(name, version, purpose)
        if purpose == KeyPurpose.WRAP:
            return bytes(obj.encrypt(b"", mechanism=Mechanism.AES_GCM, mechanism_param=GCMParams(b"\0" * 12, aad)))
        return bytes(obj.sign(aad, mechanism=Mechanism.SHA256_HMAC))

    def _object(self, name: str, version: int, purpose: KeyPurpose) -> Any:
        """The token session object of one live version (unwrapped once per process, kept while it stays live)."""
        entry = self._entry(name)
        if entry["purpose"] != purpose:
            raise WrongPurpose(f"key {name!r} is a {entry['purpose']} key, not a {purpose} key")
        slot = entry["versions"].get(str(version))
        if slot is None:
            raise KeyNotFound(f"key {name!r} has no version {version}")
        with self._mutex:
            self._session()
            held = self._objects.get((name, version))
            if "sealed" not in slot:
                self._forget(name, version)
                raise KeyDestroyed(f"version {version} of key {name!r} was destroyed on {slot['destroyed_at']}")
            if held is not None and held[0] == slot["sealed"]:
                return held[1]
            obj = self._unwrap_version(
                int(slot["kek"]), slot["sealed"], purpose, {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False}
            )
            check = slot.get("check")
            if check is None or not secrets.compare_digest(self._binding(obj, name, version, purpose), _unb64(check)):
                obj.destroy()
                raise UnwrapFailed(f"the stored key {name!r} version {version} is not bound to that name (altered)")
            self._forget(name, version)
            self._objects[(name, version)] = (slot["sealed"], obj)
            return obj

    def _forget(self, name: str, version: int) -> None:
        held = self._objects.pop((name, version), None)
        self._bulk.pop((name, version), None)
        if held is not None:
            with contextlib.suppress(PKCS11Error):  # gone already (token reset): nothing left to erase
                held[1].destroy()

    def rekey(
        self,
        *,
        passphrase: str | None = None,
        key_file: Path | None = None,
        data_dir: Path | None = None,
        kdf: tuple[int, int, int] = (65_536, 3, 4),
    ) -> int:
        raise CustodyLocked("with the PKCS#11 backend the master key is the token's KEK: rotate it (rotate_kek)")

    def _material(self, name: str, version: int, purpose: KeyPurpose) -> bytes:
        raise NotImplementedError("the PKCS#11 keystore never hands out key material")  # pragma: no cover

    # -- KeyCustody --------------------------------------------------------------------------------

    def wrap(self, name: str, data_key: bytes, context: bytes = b"") -> bytes:
        version = self._current(name, KeyPurpose.WRAP)
        obj = self._object(name, version, KeyPurpose.WRAP)
        nonce = secrets.token_bytes(NONCE_BYTES)
        with self._mutex:
            self._session()
            params = GCMParams(nonce, _gcm_aad(name, version, context))
            sealed = obj.encrypt(data_key, mechanism=Mechanism.AES_GCM, mechanism_param=params)
        return WRAP_MAGIC + struct.pack(">I", version) + nonce + bytes(sealed)

    def unwrap(self, name: str, wrapped: bytes, context: bytes = b"") -> bytes:
        if len(wrapped) < 8 + NONCE_BYTES + 16 or not wrapped.startswith(WRAP_MAGIC):
            raise UnwrapFailed(f"this is not a key wrapped by Hygie under {name!r}")
        (version,) = struct.unpack(">I", wrapped[4:8])
        obj = self._object(name, version, KeyPurpose.WRAP)
        params = GCMParams(wrapped[8 : 8 + NONCE_BYTES], _gcm_aad(name, version, context))
        try:
            with self._mutex:
                self._session()
                opened = obj.decrypt(wrapped[8 + NONCE_BYTES :], mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return bytes(opened)
        except PKCS11Error:
            raise UnwrapFailed(
                f"the wrapped key does not open under {name!r} version {version} (altered, or other context)"
            ) from None

    def mac(self, name: str, messages: Sequence[bytes], version: int | None = None) -> list[bytes]:
        if version is None:
            version = self._current(name, KeyPurpose.PSEUDONYM)
        obj = self._object(name, version, KeyPurpose.PSEUDONYM)
        if len(messages) < self._bulk_mac_min:
            with self._mutex:
                self._session()
                return [bytes(obj.sign(m, mechanism=Mechanism.SHA256_HMAC)) for m in messages]
        base = hmac.HMAC(self._bulk_key(name, version, len(messages)), hashes.SHA256())
        out: list[bytes] = []
        for message in messages:
            h = base.copy()
            h.update(message)
            out.append(h.finalize())
        return out

    def _bulk_key(self, name: str, version: int, count: int) -> bytes:
        """The pseudonym key in process memory, for one bulk batch: read out of the token through a non-sensitive
        session copy (destroyed at once), kept at most ``bulk_key_seconds``, logged every time it is read."""
        with self._mutex:
            held = self._bulk.get((name, version))
            if held is not None:
                return held
            entry = self._entry(name)
            slot = entry["versions"][str(version)]
            obj = self._unwrap_version(
                int(slot["kek"]),
                slot["sealed"],
                entry["purpose"],
                {Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            )
            try:
                value = bytes(obj[Attribute.VALUE])
            finally:
                obj.destroy()
            self._bulk[(name, version)] = value
            self.bulk_reads.append((name, version, count))
        log.warning(
            "pseudonym key in memory: %s version %d read out of the token for a batch of %d HMACs "
            "(pid %d, dropped within %.0f s)",
            name,
            version,
            count,
            os.getpid(),
            self._bulk_key_seconds,
        )
        timer = threading.Timer(self._bulk_key_seconds, self._drop_bulk, args=((name, version), value))
        timer.daemon = True
        timer.start()
        return value

    def _drop_bulk(self, key: tuple[str, int], value: bytes) -> None:
        with self._mutex:
            if self._bulk.get(key) is value:
                del self._bulk[key]

    def destroy(self, name: str, version: int | None = None) -> KeyInfo:
        """Erase a version (or all) from the keystore, then rotate the KEK so that no earlier copy of the keystore
        can unwrap it: the token object able to open those copies is destroyed."""
        with self._locked():
            entry = self._entry(name)
            targets = list(entry["versions"]) if version is None else [str(version)]
            for v in targets:
                if v not in entry["versions"]:
                    raise KeyNotFound(f"key {name!r} has no version {v}")
            for v in targets:
                entry["versions"][v] = {"destroyed_at": _now()}
                self._forget(name, int(v))
            live = [int(v) for v, slot in entry["versions"].items() if "sealed" in slot]
            entry["current"] = max(live) if live else None
            self._doc["kek"]["shred_pending"] = True
            self._save()
        faults.point("keys.pkcs11.destroy.before_rotation")
        self.rotate_kek()
        return self._info(name)

    # -- KEK rotation ----------------------------------------------------------------------------------

    def rotate_kek(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int, int]:
        """Re-wrap every live key version under a new KEK generated in the token, then destroy the old KEK(s).

        Resumable: the new generation is recorded before any key moves, each batch of re-wrapped keys is saved,
        and both KEKs stay in the token until the last key moved. Returns (old generation, new generation, keys
        re-wrapped by this call)."""
        moved = 0
        with self._locked():
            kek = self._doc["kek"]
            old = int(kek["current"])
            if kek.get("pending") is None:
                new = max([old, *self._kek_labels()]) + 1
                self._generate_kek(new)
                kek["pending"] = new
                self._save()
            new = int(kek["pending"])
            todo = [
                (name, v, slot)
                for name, entry in sorted(self._doc["keys"].items())
                for v, slot in sorted(entry["versions"].items())
                if "sealed" in slot and int(slot["kek"]) != new
            ]
            target = self._kek(new)
            for start in range(0, len(todo), self.rotation_batch):
                with self._mutex:
                    for name, _v, slot in todo[start : start + self.rotation_batch]:
                        purpose = self._doc["keys"][name]["purpose"]
                        obj = self._unwrap_version(
                            int(slot["kek"]),
                            slot["sealed"],
                            purpose,
                            {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True},
                        )
                        try:
                            rewrapped = target.wrap_key(obj, mechanism=Mechanism.AES_KEY_WRAP_PAD)
                        finally:
                            obj.destroy()
                        slot["sealed"] = _b64(rewrapped)
                        slot["kek"] = new
                        moved += 1
                self._save()
                faults.point("keys.pkcs11.rotation.batch")
                if progress is not None:
                    progress(start + len(todo[start : start + self.rotation_batch]), len(todo))
            kek["current"] = new
            kek["pending"] = None
            kek["shred_pending"] = False
            kek["rotated_at"] = _now()
            self._save()
            faults.point("keys.pkcs11.rotation.before_destroy")
            with self._mutex:
                for generation, obj in self._kek_labels().items():
                    if generation != new:
                        obj.destroy()
                        self._keks.pop(generation, None)
        return old, new, moved

    def close(self) -> None:
        """Erase this keystore's session objects (the logged-in session is shared by the process and stays)."""
        with self._mutex:
            if self._pid == os.getpid():
                for name, version in list(self._objects):
                    self._forget(name, version)
            self._sess = None
            self._objects.clear()
            self._keks.clear()
            self._bulk.clear()
