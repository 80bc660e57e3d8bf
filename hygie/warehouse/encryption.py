# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Parquet modular encryption with keys held by key custody.

pyarrow's CryptoFactory generates a fresh data key per file and per column set, wraps it (double wrapping:
data keys under key-encryption keys, those under the master key) and stores the wrapped keys in the file's
key metadata. The master-key operations go through :class:`CustodyKmsClient`, so any spec-following Parquet
reader given access to the same custody can read the files, and nothing can without it.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pyarrow.dataset as ds
import pyarrow.parquet.encryption as pe

from hygie.keys import WAREHOUSE_KEY, KeyCustody, KeyPurpose

_CACHE = timedelta(minutes=10)


class CustodyKmsClient(pe.KmsClient):  # type: ignore[misc]
    """A pyarrow KmsClient whose master keys live in Hygie's key custody."""

    def __init__(self, custody: KeyCustody) -> None:
        super().__init__()
        self._custody = custody

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        wrapped = self._custody.wrap(master_key_identifier, key_bytes, b"parquet-kek")
        return base64.b64encode(wrapped).decode("ascii")

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return self._custody.unwrap(master_key_identifier, base64.b64decode(wrapped_key), b"parquet-kek")


class ParquetCrypto:
    """Encryption and decryption properties for the warehouse's Parquet files."""

    def __init__(self, custody: KeyCustody, master_key: str = WAREHOUSE_KEY) -> None:
        custody.ensure(master_key, KeyPurpose.WRAP)
        self._master_key = master_key
        self._factory = pe.CryptoFactory(lambda _config: CustodyKmsClient(custody))
        self._kms = pe.KmsConnectionConfig()

    def encryption_properties(self) -> Any:
        """New properties (hence a new data key) for one file: every column and the footer encrypted."""
        config = pe.EncryptionConfiguration(
            footer_key=self._master_key,
            uniform_encryption=True,
            plaintext_footer=False,
            double_wrapping=True,
            cache_lifetime=_CACHE,
        )
        return self._factory.file_encryption_properties(self._kms, config)

    def decryption_properties(self) -> Any:
        return self._factory.file_decryption_properties(self._kms, pe.DecryptionConfiguration(cache_lifetime=_CACHE))

    def file_format(self) -> ds.ParquetFileFormat:
        """A dataset format that decrypts on scan (projection and filters still push down)."""
        config = ds.ParquetDecryptionConfig(self._factory, self._kms, pe.DecryptionConfiguration(cache_lifetime=_CACHE))
        return ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(decryption_config=config)
        )
