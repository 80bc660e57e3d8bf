# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The identity vault: direct identifiers, sealed record by record, found by a keyed blind index.

Each record (NIR, names, birth date, address, contacts) is sealed with
AES-256-GCM under a vault record key; that key is stored only wrapped by key custody. A record is found from
a NIR through ``person_index`` = HMAC(vault-index key, NIR), so looking up one person decrypts one record,
never the whole vault. Re-deliveries add a new version; the newest is current, older ones are kept.

A person's hub pseudonym is not sealed with them (records of format v1 carried it; it is ignored on reading): it
is computed from the NIR under the version of the hub pseudonym key the caller names, so rotating that key
re-keys no vault record.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.db import Base, bulk
from hygie.identity import pivot
from hygie.identity.pseudonym import Pseudonymiser
from hygie.keys import VAULT_KEY, KeyCustody, KeyPurpose

NONCE_BYTES = 12
"""Blind indexes per IN list: both drivers cap bound parameters (SQLite at 32,766, psycopg at 65,535)."""
PIVOTS = "_pivots"
"""Key of the identity pivot rows a batch of sealed rows carries from seal() to store() (on its first row)."""


class VaultKeyRow(Base):
    __tablename__ = "vault_key"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RawBytes(LargeBinary):
    """Binary passed to the driver as is: sqlite3 and psycopg both take ``bytes``, and skipping SQLAlchemy's
    per-value bind processing makes bulk vault inserts several times faster."""

    cache_ok = True

    def bind_processor(self, dialect: Any) -> None:
        return None


class IdentityRow(Base):
    """One sealed identity. When it arrived is its batch's ``accepted_at``."""

    __tablename__ = "identity_record"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_index: Mapped[bytes] = mapped_column(RawBytes(32), nullable=False, index=True)
    batch_id: Mapped[str] = mapped_column(String(200), nullable=False)
    key_id: Mapped[int] = mapped_column(ForeignKey("vault_key.id"), nullable=False)
    nonce: Mapped[bytes] = mapped_column(RawBytes(NONCE_BYTES), nullable=False)
    sealed: Mapped[bytes] = mapped_column(RawBytes, nullable=False)


_RECORD_COLUMNS = ("person_index", "batch_id", "key_id", "nonce", "sealed")
_SELECT_BY_PERSON = (
    f"SELECT id, person_index, key_id, nonce, sealed FROM {IdentityRow.__tablename__} WHERE person_index"
)


@dataclass(frozen=True)
class Identity:
    nir: str
    rng_gem: str
    last_name: str
    first_name: str
    birth_date: str
    address: str | None
    postcode: str | None
    commune: str | None
    phone: str | None
    email: str | None


RECORD_FIELDS = tuple(f.name for f in fields(Identity))
RECORD_VERSION = b"v2\x1f"
"""v2: the fields of :class:`Identity`. v1 had one more, the hub pseudonym, dropped on reading."""
_V1 = b"v1\x1f"
SEPARATOR = "\x1f"


def _decode(plaintext: bytes) -> Identity:
    if plaintext.startswith(RECORD_VERSION):
        values = [v or None for v in plaintext[len(RECORD_VERSION) :].decode().split(SEPARATOR)]
    elif plaintext.startswith(_V1):
        values = [v or None for v in plaintext[len(_V1) :].decode().split(SEPARATOR)][:-1]
    else:
        raise ValueError("unknown identity record format")
    if len(values) != len(RECORD_FIELDS):
        raise ValueError("identity record has the wrong number of fields")
    return Identity(*values)  # type: ignore[arg-type]


class IdentityVault:
    def __init__(self, session: Session, custody: KeyCustody, pseudonymiser: Pseudonymiser) -> None:
        self._session = session
        self._custody = custody
        self._pseudonymiser = pseudonymiser
        custody.ensure(VAULT_KEY, KeyPurpose.WRAP)
        self._keys: dict[int, AESGCM] = {}
        self._current: int | None = None

    def _aad(self, person_index: bytes, key_id: int) -> bytes:
        return b"hygie/identity/v1|" + person_index + key_id.to_bytes(8, "big")

    def _record_key(self) -> tuple[int, AESGCM]:
        if self._current is None:
            row = self._session.scalars(select(VaultKeyRow).order_by(VaultKeyRow.id.desc()).limit(1)).first()
            if row is None:
                row = VaultKeyRow(
                    wrapped=self._custody.wrap(VAULT_KEY, secrets.token_bytes(32), b"vault-record-key"),
                    created_at=datetime.now(UTC),
                )
                self._session.add(row)
                self._session.flush()
            self._current = row.id
        return self._current, self._key(self._current)

    def _key(self, key_id: int) -> AESGCM:
        if key_id not in self._keys:
            row = self._session.get(VaultKeyRow, key_id)
            if row is None:
                raise LookupError(f"vault record key {key_id} is missing")
            self._keys[key_id] = AESGCM(self._custody.unwrap(VAULT_KEY, row.wrapped, b"vault-record-key"))
        return self._keys[key_id]

    def seal(self, people: dict[str, pa.Array], batch_id: str) -> list[dict[str, object]]:
        """Seal identities given as Arrow string columns named like :class:`Identity`'s fields.

        A record is the fields joined by the unit separator (0x1F), which ingestion refuses inside identity
        values; joining is vectorised, so sealing costs one AES-GCM call per person and little else.
        """
        key_id, aead = self._record_key()
        nirs: list[str] = people["nir"].to_pylist()
        indexes = self._pseudonymiser.indexes(nirs)
        columns = [pc.fill_null(people[name], "") for name in RECORD_FIELDS]
        records = pc.binary_join_element_wise(*columns, SEPARATOR).to_pylist()
        rows: list[dict[str, object]] = []
        for record, person_index in zip(records, indexes, strict=True):
            nonce = secrets.token_bytes(NONCE_BYTES)
            rows.append(
                {
                    "person_index": person_index,
                    "batch_id": batch_id,
                    "key_id": key_id,
                    "nonce": nonce,
                    "sealed": aead.encrypt(nonce, RECORD_VERSION + record.encode(), self._aad(person_index, key_id)),
                }
            )
        if rows:
            # The keyed identity pivots of these people (hygie.identity.pivot), written by store() with them.
            names = (people[n].to_pylist() for n in ("last_name", "first_name", "birth_date"))
            clear = (
                (i, n, ln or "", fn or "", bd or "") for i, n, ln, fn, bd in zip(indexes, nirs, *names, strict=True)
            )
            rows[0][PIVOTS] = pivot.pivot_rows(self._custody, clear)
        return rows

    def store(self, rows: list[dict[str, object]]) -> None:
        """Bulk insert sealed rows in the session's transaction (Core insert: no ORM bookkeeping per row)."""
        if rows:
            pivots: list[dict[str, bytes]] = []
            for row in rows:
                pivots.extend(cast(list[dict[str, bytes]], row.pop(PIVOTS, [])))
            before = pivot.newest_record_id(self._session)
            rows.sort(key=lambda r: r["person_index"])  # type: ignore[arg-type,return-value]  # B-tree friendly
            # Through the driver (COPY on PostgreSQL): SQLAlchemy's per-row work cost more than the database's.
            bulk.insert(
                self._session,
                IdentityRow.__tablename__,
                _RECORD_COLUMNS,
                (tuple(r[c] for c in _RECORD_COLUMNS) for r in rows),
            )
            pivot.store_rows(self._session, pivots, before)

    def new_indexes_since(self, after_id: int) -> tuple[list[bytes], int]:
        """Blind indexes of records added after row ``after_id``, and the newest row id."""
        result = self._session.execute(
            select(IdentityRow.id, IdentityRow.person_index).where(IdentityRow.id > after_id).order_by(IdentityRow.id)
        ).all()
        return [r.person_index for r in result], (result[-1].id if result else after_id)

    def find(self, nir: str) -> Identity | None:
        """The current identity of the person with this NIR, or None (decrypts that one record)."""
        person_index = self._pseudonymiser.index(nir)
        return self.identities_of([person_index]).get(person_index)

    def _open(self, row_id: int, person_index: bytes, key_id: int, nonce: bytes, sealed: bytes) -> Identity:
        try:
            plaintext = self._key(key_id).decrypt(nonce, sealed, self._aad(person_index, key_id))
        except InvalidTag:
            raise ValueError(
                f"identity record {row_id} fails its integrity check (altered, or sealed under another key): "
                "restore the vault from a backup"
            ) from None
        return _decode(plaintext)

    def records(self, after_id: int, limit: int) -> list[tuple[int, bytes, Identity]]:
        """Up to ``limit`` records added after row ``after_id``, oldest first, as (row id, blind index,
        identity): for building a derived index incrementally (pass the last row id back to continue).

        Every version of a re-delivered person is returned, in arrival order; one decryption per record.
        """
        rows = self._session.execute(
            select(IdentityRow.id, IdentityRow.person_index, IdentityRow.key_id, IdentityRow.nonce, IdentityRow.sealed)
            .where(IdentityRow.id > after_id)
            .order_by(IdentityRow.id)
            .limit(limit)
        ).all()
        return [(r[0], r[1], self._open(*r)) for r in rows]

    def identities_of(self, person_indexes: Iterable[bytes]) -> dict[bytes, Identity]:
        """Each given person's current identity (their newest record), by blind index; people not in the vault
        are left out. One decryption per person found, never a scan of the vault.

        The lookup goes through the driver (:func:`hygie.db.bulk.select_in`): a breach import asks for hundreds
        of thousands of people, and SQLAlchemy's expansion of IN lists and its result rows cost more than the
        decryption itself."""
        wanted = list(dict.fromkeys(person_indexes))
        rows = bulk.select_in(self._session, _SELECT_BY_PERSON, wanted) if wanted else []
        # Newest per person in Python: every version of a person is fetched (re-deliveries are rare), which costs
        # less than a grouped sub-query on both databases.
        newest: dict[bytes, Any] = {}
        for r in rows:
            person_index = bytes(r[1])
            if person_index not in newest or r[0] > newest[person_index][0]:
                newest[person_index] = r
        return {i: self._open(r[0], i, r[2], bytes(r[3]), bytes(r[4])) for i, r in newest.items()}

    def pseudonyms_of(self, person_indexes: list[bytes], version: int) -> dict[bytes, str]:
        """Each given person's hub pseudonym under ``version`` of the hub pseudonym key, from their newest record;
        people not in the vault are left out. Decrypts one record per person (for a citizen, or the few who
        opted out; not in bulk) and keeps no NIR in memory."""
        found = self.identities_of(person_indexes)
        pseudonyms = self._pseudonymiser.at(version).pseudonyms([i.nir for i in found.values()], cache=False)
        return dict(zip(found, pseudonyms, strict=True))

    def count(self) -> int:
        return int(self._session.scalar(select(func.count(func.distinct(IdentityRow.person_index)))) or 0)


class KnownPeople:
    """Which blind indexes the vault holds, as a sorted array of their first 8 bytes.

    Checking that a care row's beneficiary exists must not cost a database round trip per person: the set is
    loaded once and then only the records added since are read. Eight bytes per person keep a national vault
    (70 million people) near 560 MB; two people sharing a prefix (about n^2 / 2^65, 1.3e-4 at that size) would
    only let one orphan care row through this check, never expose anything.
    """

    def __init__(self) -> None:
        self._sorted = np.empty(0, dtype=np.uint64)
        self._last_id = 0

    @staticmethod
    def _prefixes(indexes: list[bytes]) -> Any:
        return np.frombuffer(b"".join(i[:8] for i in indexes), dtype=">u8").astype(np.uint64)

    def refresh(self, vault: IdentityVault) -> None:
        indexes, self._last_id = vault.new_indexes_since(self._last_id)
        if indexes:
            self._sorted = np.union1d(self._sorted, self._prefixes(indexes))

    def contains(self, indexes: list[bytes]) -> list[bool]:
        if not indexes:
            return []
        wanted = self._prefixes(indexes)
        if not len(self._sorted):
            return [False] * len(indexes)
        # A binary search in the set kept sorted: np.isin sorted the whole vault's set again at every call.
        at = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        return (self._sorted[at] == wanted).tolist()  # type: ignore[no-any-return]
