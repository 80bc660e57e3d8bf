# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The controller's key custody interface.

Callers name keys and ask for operations; they never hold a master key. Key material stays inside the
custody backend, as it would inside an HSM (PKCS#11) or a cloud KMS: callers get wrapped data keys back,
or MACs computed for them. A new backend implements :class:`KeyCustody` and is picked in
:func:`hygie.keys.open_custody`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class KeyPurpose(StrEnum):
    WRAP = "wrap"
    """Wraps (encrypts) data keys: Parquet file keys, the identity vault's record key."""
    PSEUDONYM = "pseudonym"
    """Keyed pseudonymisation (HMAC-SHA-256): hub pseudonyms, blind indexes, per-project pseudonyms."""


class KeyError_(Exception):
    """Base class; messages say what went wrong and what to do, and never include key material."""


class KeyNotFound(KeyError_):
    pass


class KeyDestroyed(KeyError_):
    pass


class KeyAlreadyExists(KeyError_):
    pass


class WrongPurpose(KeyError_):
    pass


class UnwrapFailed(KeyError_):
    pass


class CustodyLocked(KeyError_):
    """The custody backend cannot be opened (no passphrase, wrong passphrase, bad key file)."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    purpose: KeyPurpose
    current_version: int | None
    """None once every version is destroyed."""
    versions: tuple[int, ...]
    destroyed_versions: tuple[int, ...]


@runtime_checkable
class KeyCustody(Protocol):
    """Everything Hygie asks of whoever holds the controller's keys."""

    def create(self, name: str, purpose: KeyPurpose) -> KeyInfo:
        """Create a new named key (version 1). Fails if the name is taken, even by a destroyed key."""
        ...

    def ensure(self, name: str, purpose: KeyPurpose) -> KeyInfo:
        """Return the named key, creating it if it does not exist yet."""
        ...

    def info(self, name: str) -> KeyInfo: ...

    def all_keys(self) -> Sequence[KeyInfo]: ...

    def wrap(self, name: str, data_key: bytes, context: bytes = b"") -> bytes:
        """Encrypt a data key under the current version of a WRAP key; ``context`` is authenticated."""
        ...

    def unwrap(self, name: str, wrapped: bytes, context: bytes = b"") -> bytes:
        """Decrypt a data key wrapped by :meth:`wrap` under any live version of the key."""
        ...

    def mac(self, name: str, messages: Sequence[bytes], version: int | None = None) -> list[bytes]:
        """HMAC-SHA-256 of each message under a PSEUDONYM key (current version unless named)."""
        ...

    def rotate(self, name: str) -> KeyInfo:
        """Add a new version and make it current; older versions stay usable for unwrap until destroyed."""
        ...

    def destroy(self, name: str, version: int | None = None) -> KeyInfo:
        """Erase one version, or every version when ``version`` is None. Irreversible (crypto-shredding)."""
        ...
