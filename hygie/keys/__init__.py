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
    if settings.key_backend != "local":
        raise CustodyLocked(f"key backend {settings.key_backend!r} is not available in this build; use 'local'")
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
