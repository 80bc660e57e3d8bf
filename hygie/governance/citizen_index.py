# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Citizens' reads by person: an encrypted extract of each person's care rows, and an index of the projects whose
views included them, so "my reimbursements" and "who used my data" are one indexed query each, not a scan of the
warehouse or of every membership file.

Both are keyed by a *person key*: HMAC under the custody PSEUDONYM key ``citizen-index`` of the hub pseudonym,
so the metadata database holds no hub pseudonym that could be joined to the warehouse or to a membership file;
without the key, a person key says nothing about anyone.

- ``citizen_extract``: per (bucket, accepted batch), the care rows of the batch (care date, act, quantity,
  amounts; nothing else) of the people whose person keys begin with the bucket (their first
  :func:`bucket_chars` characters, about ``BUCKET_PEOPLE`` people), each under their person key, in a binary
  layout padded to a multiple of ``PAD_BYTES`` and encrypted with AES-GCM under the batch's data key; the bucket
  and batch are the authenticated data, so a row moved to another bucket or batch does not open. One seal and one
  row per bucket, not per person: sealed per person, a national batch's millions of extracts were the largest cost
  of its ingestion (docs/benchmarks.md). Batches indexed before hold one row per person (its whole person key,
  JSON; see :func:`_open_person`), still read. The data key is wrapped under the custody WRAP key ``citizen-extract`` in
  ``citizen_extract_batch``, written in the batch's own catalog transaction (the ingestion commit point): a
  batch is in the warehouse and in the extracts, or in neither.
- ``citizen_use``: per (bucket, project, generation), the person keys of the bucket's people a view generation
  included (sorted, end to end; in clear: a person key says nothing without the key), written in the transaction
  that publishes the generation. Generations indexed before buckets hold one row per person (no member list),
  still read.

Both are written in two steps. A batch or a generation is first written to its ``_recent`` table, keyed by batch
or generation first, where its rows append at one place; :func:`merge` later moves everything waiting, in
person-key order, to the person-first table, where a citizen's rows sit together. Written person first directly,
each batch's or generation's keys (random) landed in nearly every page of the index, so each one rewrote the whole
index: its cost grew with everything ever indexed (docs/benchmarks.md). A read looks in both tables in one
statement. The warehouse and the membership files stay the durable record; the index is rebuilt from them by
:func:`rebuild` (``hygie citizen-index rebuild``).

Completeness is checked, never assumed: every indexed batch and generation has a marker row carrying the
index key version it was keyed with. Batches or generations without one (data older than the index, or a
from-scratch rebuild in progress) are read the slow way, so an answer is never silently short.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Boolean,
    CompoundSelect,
    DateTime,
    Executable,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.audit import record
from hygie.db import Base, bulk
from hygie.governance.accounts import Actor
from hygie.governance.acts import act
from hygie.governance.models import Account, ProjectView
from hygie.hub import Hub
from hygie.identity.pseudonym import (
    FIRST_VERSION,
    HubPseudonymState,
    PseudonymVersionChanged,
    active_version,
    hold_version,
)
from hygie.ingest.contract import CARE_TABLE, PSEUDONYM_COLUMN
from hygie.keys import KeyPurpose
from hygie.warehouse.catalog import BatchRow, FileRow
from hygie.warehouse.encryption import ParquetCrypto

INDEX_KEY = "citizen-index"
"""Custody PSEUDONYM key of the person keys."""
EXTRACT_KEY = "citizen-extract"
"""Custody WRAP key of the extracts' per-batch data keys."""
INDEX_LABEL = b"hygie/citizen-index/v1|"
PERSON_KEY_LENGTH = 22
"""Base64url of the first 128 bits of the HMAC: collisions are out of reach at any national population."""
EXTRACT_COLUMNS = ("EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_MNT")
"""What a citizen is shown of a care row: the extract holds these and nothing else."""
PAD_BYTES = 256
"""Extracts are padded to a multiple of this, so their length only roughly tells how much care their people had."""
NONCE_BYTES = 12
BUCKET_PEOPLE = 32
"""A batch's extracts, and a generation's people, are grouped by bucket of people: as many characters of the person
keys as bring the buckets' average nearest this many people (64 buckets per character, so between an eighth of it
and eight times it). A citizen's read opens one bucket per batch and per generation: larger ones cost reads more,
smaller ones cost ingestion and view builds more seals and rows."""
MAX_BUCKET_CHARS = 4
"""At most 64**4 buckets per batch or generation; always fewer characters than a person key, so a row's key length
tells a bucket from a person key."""

_ENTRY = np.dtype([("key", f"S{PERSON_KEY_LENGTH}"), ("rows", "<u4")])
"""A person in a bucket: their person key and how many of the bucket's records are theirs."""
_RECORD = np.dtype(
    [("valid", "u1"), ("date", "<i4"), ("act", "<i8"), ("quantity", "<f8"), ("paid", "<f8"), ("reimbursed", "<f8")]
)
"""A care row in a bucket: ``EXTRACT_COLUMNS`` in order (the date as days since 1970-01-01), and a bit per column in
``valid`` (0: null)."""
_COUNT = struct.Struct("<I")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

READ_ATTEMPTS = 3
"""Reads of a person's data started again when a pseudonym rotation's switch or an index rebuild lands in the
middle of one."""

T = TypeVar("T")
S = TypeVar("S")

CareRow = tuple[date | None, int | None, float | None, float | None, float | None]
"""One care row as the warehouse holds it, in ``EXTRACT_COLUMNS`` order."""


class CitizenIndexError(Exception):
    """The index cannot give a complete answer; the message says where and what to do."""


class CitizenExtractBatch(Base):
    """One accepted batch whose care rows are in ``citizen_extract`` (possibly none: it had no care rows)."""

    __tablename__ = "citizen_extract_batch"
    batch_id: Mapped[str] = mapped_column(ForeignKey("delivery_batch.batch_id"), primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    key_version: Mapped[int] = mapped_column(Integer, nullable=False)
    """Version of ``citizen-index`` the batch's person keys were computed with."""
    people: Mapped[int] = mapped_column(Integer, nullable=False)
    bucket_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """How many characters of the person keys name its buckets (None: indexed before this was kept, per person or
    by buckets of any length: a read then looks for every length)."""
    indexed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    merged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    """Its extracts are in ``citizen_extract`` (else in ``citizen_extract_recent``)."""


class CitizenExtract(Base):
    """A batch's extract of a bucket of people. ``person_key`` names the bucket (the first characters of its
    people's person keys), or, in batches indexed before buckets, one person (their whole person key)."""

    __tablename__ = "citizen_extract"
    person_key: Mapped[str] = mapped_column(String(PERSON_KEY_LENGTH), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("citizen_extract_batch.batch_id"), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class CitizenExtractRecent(Base):
    """Batches not merged into ``citizen_extract`` yet, batch first: a new one appends at one place. Rows as in
    ``citizen_extract``."""

    __tablename__ = "citizen_extract_recent"
    batch_id: Mapped[str] = mapped_column(ForeignKey("citizen_extract_batch.batch_id"), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(PERSON_KEY_LENGTH), primary_key=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class CitizenUseGeneration(Base):
    """One view generation whose people are in ``citizen_use``."""

    __tablename__ = "citizen_use_generation"
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_version: Mapped[int] = mapped_column(Integer, nullable=False)
    people: Mapped[int] = mapped_column(Integer, nullable=False)
    bucket_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """As :attr:`CitizenExtractBatch.bucket_chars`."""
    merged: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default="0")
    """Its rows are in ``citizen_use`` (else in ``citizen_use_recent``)."""


class CitizenUse(Base):
    """A generation's people of a bucket: ``person_key`` names the bucket (the first characters of their person
    keys) and ``members`` holds their person keys, sorted, end to end; in generations indexed before buckets, one
    person (their whole person key, no ``members``)."""

    __tablename__ = "citizen_use"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "generation"],
            ["citizen_use_generation.project_id", "citizen_use_generation.generation"],
        ),
    )
    person_key: Mapped[str] = mapped_column(String(PERSON_KEY_LENGTH), primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class CitizenUseRecent(Base):
    """Generations not merged into ``citizen_use`` yet, generation first: a new one appends at one place. Rows as
    in ``citizen_use``."""

    __tablename__ = "citizen_use_recent"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "generation"],
            ["citizen_use_generation.project_id", "citizen_use_generation.generation"],
        ),
        # On SQLite the rows live in the primary key's tree itself: one tree to append to, not two.
        {"sqlite_with_rowid": False},
    )
    project_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_key: Mapped[str] = mapped_column(String(PERSON_KEY_LENGTH), primary_key=True)
    members: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


def for_person(hub: Hub, session: Session, person_index: bytes, read: Callable[[str], T]) -> T | None:
    """``read`` the person's data by their hub pseudonym under the active key version (None: not in the vault).

    The pseudonym and what ``read`` finds with it must be of one version: if a rotation's switch commits while
    ``read`` runs (on PostgreSQL each statement sees the newest commit), the read is started again, never
    answered half in one version and half in the other ("no care" would be a lie).
    """

    def read_under(version: int) -> T | None:
        pseudonym = hub_pseudonym(hub, session, person_index, version)
        return None if pseudonym is None else read(pseudonym)

    return _consistent(
        lambda: _active_version(session), read_under, "the hub's pseudonyms are being switched to a new key"
    )


# The statements of a citizen read, built once: building a statement and running it through the ORM cost more
# than the database's work for these indexed reads. They run on the session's connection, in its transaction.
_PERSON_INDEX = select(Account.person_index).where(Account.id == bindparam("account_id"))
_ACTIVE_VERSION = select(HubPseudonymState.active_version).where(HubPseudonymState.id == 1)
_EXTRACT_MARKERS = select(
    CitizenExtractBatch.batch_id,
    CitizenExtractBatch.key_version,
    CitizenExtractBatch.wrapped_key,
    CitizenExtractBatch.merged,
    CitizenExtractBatch.bucket_chars,
)
# Only what the index does not hold (normally nothing), chosen by the database: a read must not list every care
# file and generation of the hub, which grow with every delivery and approval. A batch or generation indexed after
# the markers were read is caught by the markers read again after (:func:`_consistent`).
_UNINDEXED_CARE_FILES = (
    select(FileRow.batch_id, FileRow.path)
    .where(
        FileRow.table_name == CARE_TABLE,
        ~exists().where(CitizenExtractBatch.batch_id == FileRow.batch_id),
    )
    .order_by(FileRow.id)
)
_USE_MARKERS = select(
    CitizenUseGeneration.project_id,
    CitizenUseGeneration.generation,
    CitizenUseGeneration.key_version,
    CitizenUseGeneration.merged,
    CitizenUseGeneration.bucket_chars,
)


def _both(
    main: type[CitizenExtract] | type[CitizenUse],
    recent: type[CitizenExtractRecent] | type[CitizenUseRecent],
    columns: tuple[str, ...],
    waiting: dict[str, str],
) -> CompoundSelect[Any]:
    """A person's rows (their ``keys``) in the person-first table and, in the same statement, in the waiting
    batches or generations of the recent table (``waiting``: column -> parameter of its values).

    One statement, so one snapshot of both tables: a merge committing between two statements would move a row
    from the second's table to the first's after the first was read. The recent table is searched by each
    column's list of values (SQLite scans the table for a row-value IN list): a few point lookups per waiting
    batch or generation; combinations that name none find nothing."""
    return union_all(
        select(*(getattr(main, c) for c in columns)).where(main.person_key.in_(bindparam("keys", expanding=True))),
        select(*(getattr(recent, c) for c in columns)).where(
            *(getattr(recent, c).in_(bindparam(parameter, expanding=True)) for c, parameter in waiting.items()),
            recent.person_key.in_(bindparam("recent_keys", expanding=True)),
        ),
    )


_EXTRACTS = _both(
    CitizenExtract, CitizenExtractRecent, ("person_key", "batch_id", "payload"), {"batch_id": "recent_batches"}
)
_USES = _both(
    CitizenUse,
    CitizenUseRecent,
    ("project_id", "generation", "person_key", "members"),
    {"project_id": "recent_projects", "generation": "recent_generations"},
)
_UNINDEXED_VIEWS = (
    select(ProjectView.project_id, ProjectView.generation, ProjectView.membership_file)
    .where(
        ~exists().where(
            CitizenUseGeneration.project_id == ProjectView.project_id,
            CitizenUseGeneration.generation == ProjectView.generation,
        )
    )
    .order_by(ProjectView.project_id, ProjectView.generation)
)


def _run(session: Session, statement: Executable, **params: object) -> Any:
    """The statement's result (rows of its columns)."""
    return session.connection().execute(statement, params)


def person_index_of(session: Session, account_id: int) -> bytes | None:
    """The blind index of the insured person a citizen account is tied to (None: no such account, or not tied), as
    one column read: the account row itself is not needed by a citizen read."""
    found = _run(session, _PERSON_INDEX, account_id=account_id).scalar()
    return None if found is None else bytes(found)


def hub_pseudonym(hub: Hub, session: Session, person_index: bytes, version: int) -> str | None:
    """The person's hub pseudonym under ``version`` (None: not in the vault), memoised per process: it is an HMAC
    of the NIR the blind index stands for, so it never changes for a version (and vault records are never
    removed); a hit saves the vault's decryption of the record and a custody call."""

    def from_vault() -> str | None:
        return hub.vault(session).pseudonyms_of([person_index], version).get(person_index)

    return hub.memo().get(("hub-pseudonym", version, person_index), from_vault)


def _active_version(session: Session) -> int:
    """:func:`~hygie.identity.pseudonym.active_version` as one column read, without loading the row into the
    session (read twice per citizen read; always from the database, never from a cache)."""
    found = _run(session, _ACTIVE_VERSION).scalar()
    return FIRST_VERSION if found is None else int(found)


def _consistent(snapshot: Callable[[], S], read: Callable[[S], T], busy: str) -> T:
    """``read(snapshot())``, provided ``snapshot()`` gives the same before and after; started again otherwise (a
    switch or an index rebuild committed in between), and refused with ``busy`` if that keeps happening."""
    for _ in range(READ_ATTEMPTS):
        before = snapshot()
        result = read(before)
        if snapshot() == before:
            return result
    raise CitizenIndexError(f"{busy}; try again in a minute")


def clear(session: Session) -> None:
    """Empty the index (the caller commits): readers take the slow path until :func:`rebuild` fills it again."""
    for model in (
        CitizenExtract,
        CitizenExtractRecent,
        CitizenExtractBatch,
        CitizenUse,
        CitizenUseRecent,
        CitizenUseGeneration,
    ):
        session.execute(delete(model))


# -- person keys --------------------------------------------------------------------------------------------


def _index_version(hub: Hub) -> int:
    version = hub.custody.ensure(INDEX_KEY, KeyPurpose.PSEUDONYM).current_version
    if version is None:
        raise CitizenIndexError(
            f"custody key {INDEX_KEY!r} was destroyed; rotate it (`hygie keys rotate`) and run "
            "`hygie citizen-index rebuild --from-scratch`"
        )
    return version


def person_keys(hub: Hub, hub_pseudonyms: Sequence[str], version: int) -> list[str]:
    """Person keys of hub pseudonyms under one version of ``citizen-index``, in one custody call."""
    macs = hub.custody.mac(INDEX_KEY, [INDEX_LABEL + p.encode("ascii") for p in hub_pseudonyms], version=version)
    return [base64.urlsafe_b64encode(m[:16]).decode("ascii").rstrip("=") for m in macs]


def _keys_of(hub: Hub, hub_pseudonym: str, versions: Iterable[int]) -> dict[int, str]:
    """The person's key under each version of ``citizen-index`` the index uses (one, unless mid-rotation)."""
    return {v: _person_key(hub, hub_pseudonym, v) for v in sorted(set(versions))}


def _person_key(hub: Hub, hub_pseudonym: str, version: int) -> str:
    """One person key, memoised per process (an HMAC: it never changes for a version)."""
    found = hub.memo().get(
        ("person-key", version, hub_pseudonym), lambda: person_keys(hub, [hub_pseudonym], version)[0]
    )
    assert found is not None  # person_keys always gives one
    return found


# -- extracts: written at ingestion -------------------------------------------------------------------------


def _aad(person_key: str, batch_id: str) -> bytes:
    """Authenticated data of a batch's extract of one person (the layout before buckets)."""
    return f"{person_key}|{batch_id}".encode()


def _bucket_aad(bucket: str, batch_id: str) -> bytes:
    # Its own spelling: no bucket's authenticated data is ever a person extract's, whatever the characters.
    return f"bucket|{bucket}|{batch_id}".encode()


def bucket_chars(people: int) -> int:
    """How many characters of the person keys name a bucket in a batch or generation of ``people`` people: the
    number whose average bucket is nearest ``BUCKET_PEOPLE`` people (in ratio). The smallest number keeping every
    average under it left a 400,000-person batch with 262,144 buckets of 1.6 people, each padded, and as many rows."""
    chars = 1
    while chars < MAX_BUCKET_CHARS and people > BUCKET_PEOPLE * 8 * 64**chars:
        chars += 1
    return chars


def _bucket_bounds(keys: np.ndarray[Any, np.dtype[np.bytes_]]) -> list[tuple[str, int, int]]:
    """The buckets of sorted person keys: (bucket, first, end) of each, in key order."""
    if not len(keys):
        return []
    prefixes = keys.astype(f"S{bucket_chars(len(keys))}")
    bounds = [0, *(np.flatnonzero(prefixes[1:] != prefixes[:-1]) + 1).tolist(), len(keys)]
    return [(prefixes[a].decode("ascii"), a, b) for a, b in itertools.pairwise(bounds)]


def _records(table: pa.Table) -> np.ndarray[Any, np.dtype[np.void]]:
    """The table's care rows as ``_RECORD`` values, in the table's order."""
    records = np.zeros(table.num_rows, _RECORD)
    valid = np.zeros(table.num_rows, np.uint8)
    kinds = (pa.int32(), pa.int64(), pa.float64(), pa.float64(), pa.float64())
    fields = ("date", "act", "quantity", "paid", "reimbursed")
    for bit, (field, column, kind) in enumerate(zip(fields, EXTRACT_COLUMNS, kinds, strict=True)):
        values = table.column(column).combine_chunks().cast(kind)  # a date32 is its days since 1970 as int32
        valid |= pc.is_valid(values).to_numpy(zero_copy_only=False).astype(np.uint8) << bit
        records[field] = pc.fill_null(values, 0).to_numpy(zero_copy_only=False)
    records["valid"] = valid
    return records


def extract_buckets(table: pa.Table, keys_of: Callable[[list[str]], list[str]]) -> tuple[int, list[tuple[str, bytes]]]:
    """How many people a batch's care rows (``table``) describe and its buckets in clear: (bucket, padded layout).

    ``keys_of`` gives the person keys of hub pseudonyms, in their order. A bucket holds a count of people
    (``_COUNT``), their ``_ENTRY`` values in person-key order, then their ``_RECORD`` values in the same order (a
    person's in the table's order), then zeros up to a multiple of ``PAD_BYTES``. Built column-wise (numpy,
    Arrow): per person in Python, a national batch cost more than the rest of its ingestion."""
    pseudonyms = pc.dictionary_encode(table.column(PSEUDONYM_COLUMN).combine_chunks())
    if pseudonyms.null_count:
        raise CitizenIndexError("a care row without a hub pseudonym cannot be indexed")
    keys = keys_of(pseudonyms.dictionary.to_pylist())
    if not keys:
        return 0, []
    spelled = np.array(keys, dtype=_ENTRY["key"])
    by_key = np.argsort(spelled)
    rank = np.empty(len(keys), np.int64)
    rank[by_key] = np.arange(len(keys))
    person_of_row = pseudonyms.indices.to_numpy(zero_copy_only=False)
    records = _records(table)[np.argsort(rank[person_of_row], kind="stable")]
    entries = np.empty(len(keys), _ENTRY)
    entries["key"] = spelled[by_key]
    entries["rows"] = np.bincount(person_of_row, minlength=len(keys))[by_key]
    first_record = np.concatenate([[0], np.cumsum(entries["rows"], dtype=np.int64)])
    buckets = []
    for bucket, start, end in _bucket_bounds(entries["key"]):
        layout = b"".join(
            (
                _COUNT.pack(end - start),
                entries[start:end].tobytes(),
                records[first_record[start] : first_record[end]].tobytes(),
            )
        )
        buckets.append((bucket, layout + bytes(-len(layout) % PAD_BYTES)))
    return len(keys), buckets


def _entry_at(packed: bytes, key: bytes, start: int, size: int, count: int) -> int:
    """Position of ``key`` among ``count`` fixed-size entries that begin with their key, from ``start`` (-1: not
    there). A bytes search, not numpy: a read opens a bucket per batch and is in most of them not at all, and
    numpy's per-call cost was most of a citizen's read."""
    end = start + size * count
    found = packed.find(key, start, end)
    while found != -1 and (found - start) % size:  # inside an entry, not at its start: look further
        found = packed.find(key, found + 1, end)
    return -1 if found == -1 else (found - start) // size


def rows_in_bucket(layout: bytes, person_key: str) -> list[CareRow]:
    """The person's care rows in a bucket's layout (none if they are not in it)."""
    (people,) = _COUNT.unpack_from(layout)
    at = _entry_at(layout, person_key.encode("ascii"), _COUNT.size, _ENTRY.itemsize, people)
    if at == -1:
        return []
    entries = np.frombuffer(layout, _ENTRY, count=people, offset=_COUNT.size)
    skipped = int(entries["rows"][:at].sum(dtype=np.int64))
    offset = _COUNT.size + people * _ENTRY.itemsize + skipped * _RECORD.itemsize
    records = np.frombuffer(layout, _RECORD, count=int(entries["rows"][at]), offset=offset)
    return [
        (
            date.fromordinal(_EPOCH_ORDINAL + day) if valid & 1 else None,
            act if valid & 2 else None,
            quantity if valid & 4 else None,
            paid if valid & 8 else None,
            reimbursed if valid & 16 else None,
        )
        for valid, day, act, quantity, paid, reimbursed in records.tolist()
    ]


def _extract_aead(hub: Hub, batch_id: str, wrapped: bytes) -> AESGCM:
    """The batch's extract cipher, its data key unwrapped once per process and memoised (:meth:`Hub.memo`: bounded,
    expiring, so a destroyed custody key stops opening extracts from memory too): a read opens a bucket of every
    batch, and unwrapping each batch's key at every read was half a citizen's read. Keyed by the wrapped key, so
    a batch indexed again under another key is another entry."""
    found = hub.memo().get(
        ("extract-key", batch_id, wrapped),
        lambda: AESGCM(hub.custody.unwrap(EXTRACT_KEY, wrapped, batch_id.encode())),
    )
    assert found is not None  # unwrap raises or gives a key
    return found


def _decrypt(aead: AESGCM, payload: bytes, aad: bytes, batch_id: str) -> bytes:
    try:
        return aead.decrypt(payload[:NONCE_BYTES], payload[NONCE_BYTES:], aad)
    except InvalidTag:
        # Moved from another person, bucket or batch, or altered: never shown, never replaced by "no care".
        raise CitizenIndexError(
            f"a citizen extract of batch {batch_id} does not open (altered or moved); the answer cannot be given: "
            "run `hygie citizen-index rebuild --from-scratch`"
        ) from None


def _open_person(aead: AESGCM, person_key: str, batch_id: str, payload: bytes) -> list[CareRow]:
    """A person's extract as batches indexed before buckets hold it: JSON of their rows, sealed for them alone."""
    plain = _decrypt(aead, payload, _aad(person_key, batch_id), batch_id)
    # Numbers are typed here, not by their spelling: 2.0 may be written "2".
    return [
        (
            None if d is None else date.fromisoformat(d),
            None if act is None else int(act),
            None if qty is None else float(qty),
            None if paid is None else float(paid),
            None if reimbursed is None else float(reimbursed),
        )
        for d, act, qty, paid, reimbursed in json.loads(plain)
    ]


def _open_bucket(aead: AESGCM, bucket: str, batch_id: str, payload: bytes, person_key: str) -> list[CareRow]:
    return rows_in_bucket(_decrypt(aead, payload, _bucket_aad(bucket, batch_id), batch_id), person_key)


def _care_table(hub: Hub, paths: list[Path], pseudonym: str | None = None) -> pa.Table:
    columns = [PSEUDONYM_COLUMN, *EXTRACT_COLUMNS]
    dataset = hub.warehouse.dataset_of(paths)
    where = None if pseudonym is None else pc.field(PSEUDONYM_COLUMN) == pseudonym
    return dataset.to_table(columns=columns, filter=where)


def index_batch(
    hub: Hub, session: Session, batch_id: str, files: Sequence[FileRow], care: pa.Table | None = None
) -> None:
    """Write the extracts of a batch being accepted, in the caller's transaction (its catalog commit).

    ``files`` are the batch's catalog rows, published (their files in place) but perhaps not flushed. ``care``:
    the batch's care rows (at least ``PSEUDONYM_COLUMN`` and ``EXTRACT_COLUMNS``, any order) when the caller
    has them, as an ingestion does; otherwise they are read from the care files.
    """
    version = _index_version(hub)
    hub.custody.ensure(EXTRACT_KEY, KeyPurpose.WRAP)
    data_key = AESGCM.generate_key(bit_length=256)
    aead = AESGCM(data_key)
    paths = [hub.warehouse.directory / f.path for f in files if f.table_name == CARE_TABLE]
    table = care if care is not None else _care_table(hub, paths) if paths else None
    people, buckets = (0, []) if table is None else extract_buckets(table, lambda p: person_keys(hub, p, version))
    nonces = secrets.token_bytes(NONCE_BYTES * len(buckets))
    # In bucket order, each row lands after the previous one: the batch's rows are one run in the recent table.
    extracts = [
        (batch_id, bucket, nonce + aead.encrypt(nonce, layout, _bucket_aad(bucket, batch_id)))
        for i, (bucket, layout) in enumerate(buckets)
        for nonce in (nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES],)
    ]
    session.add(
        CitizenExtractBatch(
            batch_id=batch_id,
            wrapped_key=hub.custody.wrap(EXTRACT_KEY, data_key, batch_id.encode()),
            key_version=version,
            people=people,
            bucket_chars=bucket_chars(people),
            indexed_at=datetime.now(UTC),
            merged=False,
        )
    )
    session.flush()  # the batch row first: extracts reference it
    # Through the driver (COPY on PostgreSQL): the ORM's bulk insert cost twice the database's own work here.
    bulk.insert(session, CitizenExtractRecent.__tablename__, ("batch_id", "person_key", "payload"), extracts)


# -- extracts: read by a citizen ----------------------------------------------------------------------------


def care_rows(hub: Hub, session: Session, hub_pseudonym: str) -> list[CareRow]:
    """Every care row of this person, in no particular order: from the extracts of the batches the index holds,
    plus a filtered scan of the care files of the others (normally none).

    Which batches the index holds is read first and checked again after: a rebuild or a rotation's switch that
    commits in between (each statement sees the newest commit) starts the read again, so a batch is never counted
    as indexed by one statement and as scanned by none."""
    return _consistent(
        lambda: _extract_markers(session),
        lambda markers: _care_rows(hub, session, hub_pseudonym, markers),
        "the citizen index is being rebuilt",
    )


def _extract_markers(session: Session) -> dict[str, tuple[int, bytes, bool, int | None]]:
    """(key version, wrapped data key, merged, bucket characters) of each indexed batch."""
    found = _run(session, _EXTRACT_MARKERS)
    return {
        batch_id: (version, bytes(wrapped), bool(merged), chars) for batch_id, version, wrapped, merged, chars in found
    }


def _lookup_keys(mine: dict[int, str], indexed: Iterable[tuple[int, int | None]]) -> list[str]:
    """The keys to look up for a person whose key under each version is ``mine``, given the (key version, bucket
    characters) of what is indexed: their bucket of each length in use; for what was indexed before lengths were
    kept, every length and their whole key (rows of one person)."""
    keys: set[str] = set()
    for version, chars in set(indexed):
        key = mine[version]
        if chars is None:
            keys.update([key[:n] for n in range(1, MAX_BUCKET_CHARS + 1)] + [key])
        else:
            keys.add(key[:chars])
    return sorted(keys)


def _is_mine(key: str, mine: str, chars: int | None) -> bool:
    """Whether a row found under ``key`` can hold the person whose key is ``mine``, in a unit indexed with buckets
    of ``chars`` characters."""
    return mine.startswith(key) if chars is None else key == mine[:chars]


def _care_rows(
    hub: Hub, session: Session, hub_pseudonym: str, markers: dict[str, tuple[int, bytes, bool, int | None]]
) -> list[CareRow]:
    rows: list[CareRow] = []
    if markers:
        mine = _keys_of(hub, hub_pseudonym, {version for version, _, _, _ in markers.values()})
        keys = _lookup_keys(mine, ((version, chars) for version, _, _, chars in markers.values()))
        recent = sorted(batch_id for batch_id, (_, _, merged, _) in markers.items() if not merged)
        found = _run(session, _EXTRACTS, keys=keys, recent_batches=recent, recent_keys=keys).all()
        for key, batch_id, payload in found:
            marker = markers.get(batch_id)
            if marker is None or not _is_mine(key, mine[marker[0]], marker[3]):
                continue  # indexed since the markers were read (checked again by the caller), or another version
            aead = _extract_aead(hub, batch_id, marker[1])
            if len(key) == PERSON_KEY_LENGTH:
                rows += _open_person(aead, key, batch_id, payload)
            else:
                rows += _open_bucket(aead, key, batch_id, payload, mine[marker[0]])
    care = _run(session, _UNINDEXED_CARE_FILES).all()
    pending = [path for batch_id, path in care if batch_id not in markers]
    if pending:
        table = _care_table(hub, [hub.warehouse.directory / p for p in pending], hub_pseudonym)
        columns = [table.column(c).to_pylist() for c in EXTRACT_COLUMNS]
        rows += list(zip(*columns, strict=True))
    return rows


# -- uses: written at view build, read by a citizen ---------------------------------------------------------


def index_generation(hub: Hub, session: Session, project_id: int, generation: int, people: Sequence[str]) -> None:
    """Index who a view generation includes, in the transaction that publishes it (the caller commits): to
    ``citizen_use_recent``, until :func:`merge` moves it."""
    version = _index_version(hub)
    session.add(
        CitizenUseGeneration(
            project_id=project_id,
            generation=generation,
            key_version=version,
            people=len(people),
            bucket_chars=bucket_chars(len(people)),
            merged=False,
        )
    )
    session.flush()
    # In bucket order, each row lands after the previous one: the generation's rows are one run at the end of its
    # (project, generation) range. One row per bucket, not per person: a national generation's rows were most of
    # a view build's index time and of the merges after it.
    keys = np.sort(np.array(person_keys(hub, people, version) if people else [], f"S{PERSON_KEY_LENGTH}"))
    bulk.insert(
        session, CitizenUseRecent.__tablename__, ("project_id", "generation", "person_key", "members"),
        ((project_id, generation, bucket, keys[a:b].tobytes()) for bucket, a, b in _bucket_bounds(keys)),
    )  # fmt: skip


def in_members(members: bytes, person_key: str) -> bool:
    """Whether a bucket's ``members`` (sorted person keys end to end) holds this person key."""
    count = len(members) // PERSON_KEY_LENGTH
    return _entry_at(members, person_key.encode("ascii"), 0, PERSON_KEY_LENGTH, count) != -1


@dataclass(frozen=True)
class Uses:
    projects: set[int]
    """Projects the index says included the person."""
    unindexed: list[tuple[int, str]]
    """(project id, membership file) of generations not indexed yet: the caller reads those files."""


def uses_of(hub: Hub, session: Session, hub_pseudonym: str) -> Uses:
    """The projects the index says included the person, and the generations it does not hold (read from their
    membership files by the caller); the held generations are read first and checked again after, as in
    :func:`care_rows`."""
    return _consistent(
        lambda: _use_markers(session),
        lambda markers: _uses_of(hub, session, hub_pseudonym, markers),
        "the citizen index is being rebuilt",
    )


def _use_markers(session: Session) -> dict[tuple[int, int], tuple[int, bool, int | None]]:
    """(key version, merged, bucket characters) of each indexed generation: a merge changes the second, so a read
    it overlaps starts again (:func:`_consistent`)."""
    found = _run(session, _USE_MARKERS)
    return {
        (project, generation): (version, bool(merged), chars) for project, generation, version, merged, chars in found
    }


def _uses_of(
    hub: Hub, session: Session, hub_pseudonym: str, markers: dict[tuple[int, int], tuple[int, bool, int | None]]
) -> Uses:
    projects: set[int] = set()
    if markers:
        mine = _keys_of(hub, hub_pseudonym, {version for version, _, _ in markers.values()})
        keys = _lookup_keys(mine, ((version, chars) for version, _, chars in markers.values()))
        recent = [(p, g) for (p, g), (_, merged, _) in markers.items() if not merged]
        found = _run(
            session,
            _USES,
            keys=keys,
            recent_projects=sorted({p for p, _ in recent}),
            recent_generations=sorted({g for _, g in recent}),
            recent_keys=keys,
        ).all()
        for project, generation, key, members in found:
            marker = markers.get((project, generation))
            if marker is None or not _is_mine(key, mine[marker[0]], marker[2]):
                continue  # indexed since the markers were read (checked again by the caller), or another version
            person_key = mine[marker[0]]
            # A row without members is one person's (indexed before buckets); else the bucket lists its people.
            if key == person_key if members is None else in_members(bytes(members), person_key):
                projects.add(project)
    views = _run(session, _UNINDEXED_VIEWS).all()
    return Uses(projects, [(p, f) for p, g, f in views if (p, g) not in markers])


# -- maintenance --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """Batches and view generations in the recent tables (moved, for :func:`merge`'s answer)."""

    batches: int
    generations: int

    def __bool__(self) -> bool:
        return bool(self.batches or self.generations)


def unmerged(session: Session) -> Waiting:
    """What waits in the recent tables."""

    def count(marker: type[CitizenExtractBatch] | type[CitizenUseGeneration]) -> int:
        return int(session.scalar(select(func.count()).where(marker.merged.is_(False))) or 0)

    return Waiting(batches=count(CitizenExtractBatch), generations=count(CitizenUseGeneration))


def merge_recorded(hub: Hub, actor: Actor, *, due_only: bool = False) -> Waiting:
    """:func:`merge` in a transaction of its own, recorded with what moved; with ``due_only``, only once
    ``citizen_index_merge_waiting`` batches or generations wait (else nothing is done or recorded)."""
    with act(hub, actor, "citizen_index.merge") as session:
        if due_only:
            waiting = unmerged(session)
            if max(waiting.batches, waiting.generations) < hub.settings.citizen_index_merge_waiting:
                return Waiting(0, 0)
        moved = merge(session)
        detail = {"batches": moved.batches, "generations": moved.generations}
        record(session, actor=actor.ref, role=actor.role_name, action="citizen_index.merge", detail=detail)
    return moved


def merge(session: Session) -> Waiting:
    """Move every committed batch and generation of the recent tables to the person-first ones, in person-key
    order, so that each page of a person-first index is rewritten once for all of them (the caller commits).

    Their markers are locked first (on PostgreSQL; SQLite has one writer): a second merge waits, then finds
    nothing left. Readers see a row in one table or the other, never neither (one statement reads both)."""
    if session.get_bind().dialect.name == "postgresql":
        # A national merge moves tens of millions of rows in one statement: longer than a request may take.
        session.execute(text("SET LOCAL statement_timeout = 0"))
    batches = _move(session, CitizenExtractBatch, ("batch_id",), CitizenExtractRecent, CitizenExtract)
    generations = _move(session, CitizenUseGeneration, ("project_id", "generation"), CitizenUseRecent, CitizenUse)
    return Waiting(batches=batches, generations=generations)


def _move(
    session: Session,
    marker: type[CitizenExtractBatch] | type[CitizenUseGeneration],
    unit: tuple[str, ...],
    recent: type[CitizenExtractRecent] | type[CitizenUseRecent],
    main: type[CitizenExtract] | type[CitizenUse],
) -> int:
    """Move the rows of ``recent`` whose ``unit`` (batch, or project and generation) is marked unmerged."""
    ordered = [getattr(marker, c) for c in unit]
    locked = select(*ordered).where(marker.merged.is_(False)).order_by(*ordered).with_for_update()
    pending = [tuple(row) for row in session.execute(locked)]
    if not pending:
        return 0

    def chosen(model: type[Base]) -> Any:
        columns = [getattr(model, c) for c in unit]
        if len(columns) == 1:
            return columns[0].in_([p[0] for p in pending])
        return tuple_(*columns).in_(pending)

    names = [c.name for c in main.__table__.columns]
    rows = select(*(getattr(recent, c) for c in names)).where(chosen(recent)).order_by(recent.person_key)
    session.execute(insert(main).from_select(names, rows))
    session.execute(delete(recent).where(chosen(recent)))
    session.execute(update(marker).where(chosen(marker)).values(merged=True))
    return len(pending)


@dataclass(frozen=True)
class Rebuilt:
    batches: int
    generations: int


def rebuild(hub: Hub, session: Session, *, from_scratch: bool = False) -> Rebuilt:
    """Index every accepted batch and view generation the index lacks (all of them with ``from_scratch``, e.g.
    after rotating ``citizen-index``), from the warehouse and the membership files; the caller commits.

    Safe at any time: readers fall back to the slow path for whatever is not indexed when they read.
    """
    # Imported here: views imports this module to index the generations it builds.
    from hygie.governance.views import MEMBERSHIP_KEY

    version = active_version(session)
    if from_scratch:
        clear(session)
    batches = session.scalars(
        select(BatchRow.batch_id)
        .where(~BatchRow.batch_id.in_(select(CitizenExtractBatch.batch_id)))
        .order_by(BatchRow.accepted_at)
    ).all()
    for batch_id in batches:
        index_batch(hub, session, batch_id, session.scalars(select(FileRow).where(FileRow.batch_id == batch_id)).all())
    crypto = ParquetCrypto(hub.custody, master_key=MEMBERSHIP_KEY)
    views = session.scalars(
        select(ProjectView)
        .outerjoin(
            CitizenUseGeneration,
            (CitizenUseGeneration.project_id == ProjectView.project_id)
            & (CitizenUseGeneration.generation == ProjectView.generation),
        )
        .where(CitizenUseGeneration.project_id.is_(None))
        .order_by(ProjectView.project_id, ProjectView.generation)
    ).all()
    for view in views:
        path = hub.settings.data_dir / view.membership_file
        if not path.exists():
            raise CitizenIndexError(
                f"membership file {view.membership_file} of project {view.project_id} is missing; restore it from "
                "backup, then run the rebuild again"
            )
        members = ds.dataset(str(path), format=crypto.file_format()).to_table(columns=[PSEUDONYM_COLUMN])
        index_generation(hub, session, view.project_id, view.generation, members.column(0).to_pylist())
    merge(session)
    try:
        # Everything above was keyed from pseudonyms of this version: a rotation's switch in between voids it.
        hold_version(session, version)
    except PseudonymVersionChanged:
        raise CitizenIndexError(
            "the hub pseudonym key was rotated while the index was being rebuilt: nothing was kept; run it again"
        ) from None
    return Rebuilt(batches=len(batches), generations=len(views))
