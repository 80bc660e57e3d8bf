# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The checkpoint signing key: an Ed25519 key generated at first use, kept only wrapped by key custody.

The private key is stored in ``audit_signing_key`` wrapped under the custody key ``audit-signing`` (purpose WRAP),
with the key name as authenticated context, so the database alone (a backup, a stolen disk) cannot sign.
It is unwrapped in memory when a checkpoint is signed. The key name is also the log's origin line.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from hygie.audit.note import Checkpoint, sign, verifier_key
from hygie.audit.storage import AuditSigningKey, signing_key_table
from hygie.keys import KeyCustody
from hygie.keys.custody import KeyPurpose

CUSTODY_KEY = "audit-signing"
_CONTEXT = b"hygie/audit-signing/v1|"


@dataclass(frozen=True)
class Signer:
    name: str
    public_key: bytes
    _private: Ed25519PrivateKey

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.name, self.public_key)

    def sign(self, checkpoint: Checkpoint) -> str:
        return sign(checkpoint, self.name, self._private)


def stored_verifier_key(engine: Engine) -> str | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(AuditSigningKey.name, AuditSigningKey.public_key).where(AuditSigningKey.id == 1)
        ).first()
    return None if row is None else verifier_key(row.name, bytes(row.public_key))


def load_signer(engine: Engine, custody: KeyCustody) -> Signer:
    """The log's signer, generating and storing its key the first time (one key even if processes race)."""
    custody.ensure(CUSTODY_KEY, KeyPurpose.WRAP)
    with engine.connect() as conn:
        row = conn.execute(select(signing_key_table).where(AuditSigningKey.id == 1)).first()
    if row is None:
        private = Ed25519PrivateKey.generate()
        name = f"hygie.audit/{secrets.token_hex(8)}"  # unique per log, so witnesses never mix two logs
        wrapped = custody.wrap(CUSTODY_KEY, private.private_bytes_raw(), _CONTEXT + name.encode())
        try:
            with engine.begin() as conn:
                conn.execute(
                    signing_key_table.insert().values(
                        id=1,
                        name=name,
                        public_key=private.public_key().public_bytes_raw(),
                        wrapped_private_key=wrapped,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            pass  # another process stored its key first: use that one
        return load_signer(engine, custody)
    raw = custody.unwrap(CUSTODY_KEY, bytes(row.wrapped_private_key), _CONTEXT + row.name.encode())
    private = Ed25519PrivateKey.from_private_bytes(raw)
    if private.public_key().public_bytes_raw() != bytes(row.public_key):
        raise RuntimeError("the stored audit signing key does not match its public key")
    return Signer(row.name, bytes(row.public_key), private)
