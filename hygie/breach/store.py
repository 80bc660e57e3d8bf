# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The leaked file at rest: AES-256-GCM under a per-file key wrapped by custody, under a random name.

Destroying it erases the file and the wrapped key (crypto-shredding: a backup copy of the file is then
unreadable too).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hygie.keys import KeyCustody, KeyPurpose

FILE_KEY = "breach-files"
"""Wraps the data key of each leaked file kept for an incident."""
_NONCE = 12


def directory(data_dir: Path) -> Path:
    path = data_dir / "breach"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _context(file_name: str) -> bytes:
    return b"hygie/breach-file/v1|" + file_name.encode()


def seal(custody: KeyCustody, data_dir: Path, blob: bytes) -> tuple[str, bytes]:
    """Write the file encrypted; returns its stored name and wrapped key."""
    custody.ensure(FILE_KEY, KeyPurpose.WRAP)
    name = secrets.token_hex(16) + ".bin"
    key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE)
    sealed = nonce + AESGCM(key).encrypt(nonce, blob, _context(name))
    path = directory(data_dir) / name
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(sealed)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)
    return name, custody.wrap(FILE_KEY, key, _context(name))


def open_sealed(custody: KeyCustody, data_dir: Path, name: str, wrapped: bytes) -> bytes:
    sealed = (directory(data_dir) / name).read_bytes()
    custody.ensure(FILE_KEY, KeyPurpose.WRAP)  # another process (the CLI) may have created it: reload
    key = custody.unwrap(FILE_KEY, wrapped, _context(name))
    return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _context(name))


def erase(data_dir: Path, name: str) -> None:
    path = directory(data_dir) / name
    if path.exists():
        # Overwrite before unlinking: cheap, and it helps on file systems that do not reuse blocks at once.
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
