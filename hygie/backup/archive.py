# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The encrypted backup container: a header, then a stream of AES-256-GCM chunks.

The key is derived from the backup passphrase with Argon2id and a fresh salt, so each archive has its own key and
a counter nonce never repeats under it. Every chunk authenticates the header, its index and whether it is the
last one: a flipped byte, a reordered, dropped or appended chunk, or a file cut short is refused, never read as
a smaller backup.

Layout: ``MAGIC``, one JSON header line, then chunks of ``4-byte length || ciphertext``; the nonce is the 11-byte
chunk index and a final flag byte. A check value (a fixed text sealed with nonce ``ff..ff``) tells a wrong
passphrase apart from an altered archive.
"""

from __future__ import annotations

import base64
import io
import json
import os
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

MAGIC = b"HYGIE-BACKUP/1\n"
CHUNK_BYTES = 1 << 20
_CHECK_NONCE = b"\xff" * 12
_CHECK_TEXT = b"hygie backup check"


class BackupError(Exception):
    """A backup cannot be written or read; the message names what is wrong, never data."""


def _derive(passphrase: str, salt: bytes, memory_kib: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(salt=salt, length=32, iterations=iterations, lanes=lanes, memory_cost=memory_kib)
    return kdf.derive(passphrase.encode("utf-8"))


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


class EncryptingWriter(io.RawIOBase):
    """A write-only file object: what is written is sealed chunk by chunk into ``out``."""

    def __init__(self, out: BinaryIO, passphrase: str, *, memory_kib: int, iterations: int, lanes: int) -> None:
        salt = os.urandom(16)
        key = AESGCM(_derive(passphrase, salt, memory_kib, iterations, lanes))
        header = {
            "kdf": "argon2id",
            "salt": base64.b64encode(salt).decode(),
            "memory_kib": memory_kib,
            "iterations": iterations,
            "lanes": lanes,
        }
        self._aad = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
        header["check"] = base64.b64encode(key.encrypt(_CHECK_NONCE, _CHECK_TEXT, self._aad)).decode()
        out.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
        self._out, self._key, self._buffer, self._index = out, key, bytearray(), 0
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            self._emit(bytes(self._buffer[:CHUNK_BYTES]), final=False)
            del self._buffer[:CHUNK_BYTES]
        return len(data)

    def _emit(self, plain: bytes, *, final: bool) -> None:
        sealed = self._key.encrypt(_nonce(self._index, final), plain, self._aad)
        self._out.write(len(sealed).to_bytes(4, "big") + sealed)
        self._index += 1
        self.bytes_written += 4 + len(sealed)

    def finish(self) -> None:
        """Seal what is left as the final chunk: only now does the archive read as complete."""
        self._emit(bytes(self._buffer), final=True)
        self._buffer.clear()


class DecryptingReader(io.RawIOBase):
    """A read-only file object over a sealed archive; raises :class:`BackupError` naming the bad chunk."""

    def __init__(self, source: BinaryIO, passphrase: str) -> None:
        magic = source.read(len(MAGIC))
        if len(magic) < len(MAGIC) and MAGIC.startswith(magic):
            raise BackupError("the backup is truncated: it ends inside its header")
        if magic != MAGIC:
            raise BackupError("not a Hygie backup (its first bytes are not a Hygie backup header)")
        line = source.readline(4096)
        if not line.endswith(b"\n"):
            raise BackupError("the backup is truncated: it ends inside its header")
        try:
            header = json.loads(line)
            check = base64.b64decode(header.pop("check"))
            salt = base64.b64decode(header["salt"])
            key_bytes = _derive(
                passphrase, salt, int(header["memory_kib"]), int(header["iterations"]), int(header["lanes"])
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError("the backup header is damaged: this file was altered or is not a Hygie backup") from exc
        self._aad = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
        self._key = AESGCM(key_bytes)
        try:
            self._key.decrypt(_CHECK_NONCE, check, self._aad)
        except InvalidTag:
            raise BackupError(
                "the backup passphrase does not open this backup (wrong HYGIE_BACKUP_PASSPHRASE, or its header was "
                "altered)"
            ) from None
        self._source, self._index, self._pending, self._done = source, 0, b"", False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bytes:
        size_bytes = self._source.read(4)
        if len(size_bytes) < 4:
            raise BackupError(f"the backup is truncated: it ends after chunk {self._index} without its final chunk")
        size = int.from_bytes(size_bytes, "big")
        sealed = self._source.read(size)
        if len(sealed) < size:
            raise BackupError(f"the backup is truncated: chunk {self._index} is cut short")
        for final in (False, True):
            try:
                plain = self._key.decrypt(_nonce(self._index, final), sealed, self._aad)
            except InvalidTag:
                continue
            self._index += 1
            if final:
                self._done = True
                if self._source.read(1):
                    raise BackupError("the backup has bytes after its final chunk: it was altered")
            return plain
        raise BackupError(f"chunk {self._index} of the backup fails authentication: the file was altered or damaged")

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._done:
            self._pending = self._next_chunk()
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
