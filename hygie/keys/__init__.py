# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Key custody: the controller's keys, behind one interface (see :mod:`hygie.keys.custody`)."""

from __future__ import annotations

from hygie.config import Settings
from hygie.keys.custody import (
    CustodyLocked,
    KeyAlreadyExists,
    KeyCustody,
    KeyDestroyed,
    KeyInfo,
    KeyNotFound,
    KeyPurpose,
    UnwrapFailed,
    WrongPurpose,
)
from hygie.keys.local import LocalKeystore

__all__ = [
    "CustodyLocked",
    "KeyAlreadyExists",
    "KeyCustody",
    "KeyDestroyed",
    "KeyInfo",
    "KeyNotFound",
    "KeyPurpose",
    "LocalKeystore",
    "UnwrapFailed",
    "WrongPurpose",
    "open_custody",
]

# Names of the hub's own keys.
WAREHOUSE_KEY = "warehouse"
"""Wraps the Parquet files' key-encryption keys (through pyarrow's KMS client)."""
VAULT_KEY = "identity-vault"
"""Wraps the identity vault's record key."""
HUB_PSEUDONYM_KEY = "hub-pseudonym"
"""Keys the hub pseudonym that replaces the NIR in every analytic table."""
VAULT_INDEX_KEY = "vault-index"
"""Keys the blind index by which one person is found in the vault from a NIR."""


def open_custody(settings: Settings, *, create: bool = False) -> KeyCustody:
    """Open the configured key custody backend (the only place a backend is chosen)."""
    if settings.key_backend == "pkcs11":
        from hygie.keys.pkcs11 import Pkcs11Keystore, read_pin

        return Pkcs11Keystore.connect(
            settings.data_dir / "keys",
            module=settings.pkcs11_module,
            token_label=settings.pkcs11_token_label,
            pin=read_pin(
                settings.pkcs11_pin.get_secret_value() if settings.pkcs11_pin else None, settings.pkcs11_pin_file
            ),
            create=create,
            bulk_mac_min=settings.pkcs11_bulk_mac_min,
            bulk_key_seconds=settings.pkcs11_bulk_key_seconds,
            rotation_batch=settings.pkcs11_rotation_batch,
        )
    if settings.key_backend != "local":
        raise CustodyLocked(f"key backend {settings.key_backend!r} is not available; use 'local' or 'pkcs11'")
    return LocalKeystore.open(
        settings.data_dir / "keys",
        passphrase=settings.key_passphrase.get_secret_value() if settings.key_passphrase else None,
        key_file=settings.key_file,
        data_dir=settings.data_dir,
        kdf_memory_kib=settings.kdf_memory_kib,
        kdf_iterations=settings.kdf_iterations,
        kdf_lanes=settings.kdf_lanes,
        create=create,
    )
