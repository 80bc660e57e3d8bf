# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rotation of the master key: every live key re-wrapped, no data touched.

The keys in custody (warehouse, vault, project and pseudonym keys) keep their material, so every Parquet file,
vault record and pseudonym stays valid; only what protects them at rest changes:

* local keystore: a new passphrase (Argon2id, new salt) or a new key file; every version re-sealed, the keystore
  replaced atomically once (a crash leaves the old one; running again does it all);
* PKCS#11: a new KEK generated in the token, every version re-wrapped by the token batch by batch (each batch
  saved; a crash resumes where it stopped, and opening the keystore finishes it), then the old KEK destroyed.

Recording the rotation in the audit log is the caller's part (the CLI records before and after): this layer sits
below the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hygie.keys.custody import CustodyLocked, KeyCustody
from hygie.keys.local import LocalKeystore


@dataclass(frozen=True)
class MasterRotation:
    backend: str
    keys_rewrapped: int
    """Live key versions re-sealed or re-wrapped by this run (a resumed run counts only what it moved)."""
    seconds: float
    old_generation: int | None = None
    """PKCS#11: the KEK generation replaced (and destroyed in the token)."""
    new_generation: int | None = None


def rotate_master(
    custody: KeyCustody,
    *,
    new_passphrase: str | None = None,
    new_key_file: Path | None = None,
    data_dir: Path | None = None,
    kdf: tuple[int, int, int] = (65_536, 3, 4),
    progress: Callable[[int, int], None] | None = None,
) -> MasterRotation:
    """Rotate the master key of ``custody``; for the local keystore, to ``new_passphrase`` or ``new_key_file``."""
    from hygie.keys.pkcs11 import Pkcs11Keystore  # loads python-pkcs11 only when the HSM backend is in use

    start = time.perf_counter()
    if isinstance(custody, Pkcs11Keystore):
        if new_passphrase or new_key_file:
            raise CustodyLocked("the PKCS#11 master key is the token's KEK: no passphrase or key file to give")
        old, new, moved = custody.rotate_kek(progress)
        return MasterRotation("pkcs11", moved, time.perf_counter() - start, old, new)
    if isinstance(custody, LocalKeystore):
        if bool(new_passphrase) == (new_key_file is not None):
            raise CustodyLocked("give the new master key: a new passphrase or a new key file (one of them)")
        count = custody.rekey(passphrase=new_passphrase, key_file=new_key_file, data_dir=data_dir, kdf=kdf)
        if progress is not None:
            progress(count, count)
        return MasterRotation("local", count, time.perf_counter() - start)
    raise CustodyLocked(f"master key rotation is not available for {type(custody).__name__}")
