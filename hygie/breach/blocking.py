# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The blocking index: how a leaked row without a usable NIR finds its few candidates in a large vault.

For each vault person it stores keyed blocking keys (HMAC with the ``breach-blocking`` key) of:

* the birth date and the *pair* of name initials, sorted (so a row with first and last names swapped lands in
  the same block): one or two people per block at national scale, whatever the vault's size grows to;
* the birth date and each full folded name (family name, first name): a typo in an initial leaves the other
  name exact, and this block still holds the person;
* the birth date and the postcode.

A row computes the same keys from its own values and decrypts only the people in its blocks, never the whole
vault. Without the key in custody the index says nothing: birth dates and names cannot be brute-forced from it.
Scheme 1 (one block per single initial) grew with the vault — some 20 people per block at 7 million, all
decrypted for every row not settled at once; a version-1 index is rebuilt by the next :func:`refresh`.

The index is built in bulk, column by column (:func:`index_people`): folding and postcode repair run once per
distinct value (names, dates and postcodes repeat across millions of people), each distinct blocking message is
MACed once in one custody call per chunk, and the rows go to the database through the driver (``COPY`` on
PostgreSQL, ``executemany`` on SQLite) with the ``block`` index dropped during a large load and rebuilt after
(sorting once beats millions of B-tree insertions).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hygie.breach.models import BreachBlockKey, BreachBlockState
from hygie.breach.normalise import fold, postcode
from hygie.db import bulk
from hygie.identity.vault import IdentityRow, IdentityVault
from hygie.keys import KeyCustody, KeyPurpose

BLOCKING_KEY = "breach-blocking"
"""Keys the blocking index (HMAC-SHA-256, truncated to 128 bits)."""
KEY_BYTES = 16
_BATCH = 100_000
"""Vault records decrypted per step of :func:`refresh` (a few tens of MB of clear identities in memory)."""
BULK_LOAD = 200_000
"""From this many records to index, :func:`refresh` drops the ``block`` index and rebuilds it after the load."""
_INDEX = "ix_breach_block_key_block"
SCHEME = 2
"""The set of keys below; an index built under another scheme is rebuilt from scratch by :func:`refresh`."""
_PREFIX = "hygie/breach-block/v2|"


def block_messages(birth_date: str, names: list[str], post: str | None) -> list[bytes]:
    """The blocking messages of a person or row: each pair of name initials (sorted), each full name, the
    postcode. A row given as one full-name cell has several tokens, hence several pairs."""
    folded = [f for f in (fold(n) for n in names) if f]
    out = {f"{_PREFIX}n|{birth_date}|{f}".encode() for f in folded}
    for i, a in enumerate(folded):
        for b in folded[i + 1 :]:
            out.add(f"{_PREFIX}i|{birth_date}|{''.join(sorted((a[0], b[0])))}".encode())
    if post:
        out.add(f"{_PREFIX}p|{birth_date}|{post}".encode())
    return sorted(out)


def block_keys(custody: KeyCustody, messages: list[bytes]) -> list[bytes]:
    return [m[:KEY_BYTES] for m in custody.mac(BLOCKING_KEY, messages)] if messages else []


def _per_distinct(values: pa.Array, fn: Callable[[str], str | None]) -> pa.Array:
    """``fn`` applied to each distinct value only, then spread back: the row-side functions themselves, so the
    vault's keys and a leak row's keys are computed by the same code."""
    encoded = pc.dictionary_encode(pc.fill_null(values, ""))
    mapped = pa.array([fn(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return mapped.take(encoded.indices)


def _messages(kind: str, birth_date: pa.Array, value: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(f"{_PREFIX}{kind}|", birth_date, "|", value, "")


def people_keys(custody: KeyCustody, people: dict[str, pa.Array], person_indexes: pa.Array) -> pa.Table:
    """The (block, person_index) rows of people given as Arrow string columns named like ``Identity``'s fields
    (``last_name``, ``first_name``, ``birth_date``, ``postcode``): the same keys :func:`block_messages` gives."""
    born = pc.fill_null(people["birth_date"], "")
    last = _per_distinct(people["last_name"], fold)
    first = _per_distinct(people["first_name"], fold)
    post = _per_distinct(people["postcode"], lambda v: postcode(v))
    empty = pa.scalar("", pa.string())
    none = pa.scalar(None, pa.string())
    by_last = pc.if_else(pc.equal(last, empty), none, _messages("n", born, last))
    # One key when both names are the same: block_messages keeps a set.
    by_first = pc.if_else(pc.or_(pc.equal(first, empty), pc.equal(first, last)), none, _messages("n", born, first))
    a, b = pc.utf8_slice_codeunits(last, 0, 1), pc.utf8_slice_codeunits(first, 0, 1)
    pair = pc.if_else(pc.less_equal(a, b), pc.binary_join_element_wise(a, b, ""), pc.binary_join_element_wise(b, a, ""))
    by_pair = pc.if_else(pc.or_(pc.equal(a, empty), pc.equal(b, empty)), none, _messages("i", born, pair))
    by_post = _messages("p", born, post)  # null where the postcode is unusable
    messages = pa.concat_arrays([by_last, by_first, by_pair, by_post])
    owners = pa.concat_arrays([person_indexes] * 4)
    present = pc.is_valid(messages)
    messages, owners = messages.filter(present), owners.filter(present)
    distinct = pc.unique(messages)
    macs = block_keys(custody, pc.cast(distinct, pa.binary()).to_pylist())
    blocks = pa.array(macs, pa.binary(KEY_BYTES)).take(pc.index_in(messages, value_set=distinct))
    table = pa.table({"block": blocks, "person_index": owners})
    return table.take(pc.sort_indices(table, sort_keys=[("block", "ascending")]))  # B-tree friendly


def insert_keys(session: Session, keys: pa.Table) -> None:
    """Bulk insert through the driver (COPY on PostgreSQL, executemany on SQLite): no ORM, no per-row binds."""
    if keys.num_rows:
        rows = zip(keys.column("block").to_pylist(), keys.column("person_index").to_pylist(), strict=True)
        bulk.insert(session, "breach_block_key", ("block", "person_index"), rows)


def index_people(session: Session, custody: KeyCustody, people: dict[str, pa.Array],
                 person_indexes: list[bytes]) -> int:  # fmt: skip
    """Add the blocking keys of people whose clear columns are at hand (a bulk vault load seals them anyway, so
    it need not decrypt them again). The caller then calls :func:`advance` past their records; returns rows."""
    custody.ensure(BLOCKING_KEY, KeyPurpose.PSEUDONYM)
    keys = people_keys(custody, people, pa.array(person_indexes, pa.binary()))
    insert_keys(session, keys)
    return int(keys.num_rows)


def _state(session: Session) -> BreachBlockState:
    state = session.scalars(select(BreachBlockState).with_for_update()).first()
    if state is None:
        state = BreachBlockState(id=1, last_identity_id=0, scheme=SCHEME)
        session.add(state)
        session.flush()
    elif state.scheme != SCHEME:
        # Keys of another scheme find nobody under this one: start again from the first vault record.
        session.execute(delete(BreachBlockKey))
        state.last_identity_id, state.scheme = 0, SCHEME
        session.flush()
    return state


def advance(session: Session, last_identity_id: int) -> None:
    """Record that vault records up to ``last_identity_id`` are in the index (after :func:`index_people`)."""
    _state(session).last_identity_id = last_identity_id
    session.flush()


def last_identity_id(session: Session) -> int:
    found: int | None = session.scalar(select(func.max(IdentityRow.id)))
    return found or 0


def drop_index(session: Session) -> None:
    """Drop the ``block`` index before a large load (:func:`create_index` rebuilds it): one sort at the end costs
    far less than millions of B-tree insertions. Lookups in between scan the table, so only loads do this."""
    session.connection().exec_driver_sql(f"DROP INDEX IF EXISTS {_INDEX}")


def create_index(session: Session) -> None:
    session.connection().exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {_INDEX} ON breach_block_key (block)")


@contextmanager
def bulk_load(session: Session) -> Iterator[None]:
    """The ``block`` index dropped during a large load and rebuilt once at the end, inside the caller's
    transaction (on PostgreSQL, readers of the table wait for the commit, which a rebuild is expected to cost).
    Only the table's owner may drop its index: under a least-privileged PostgreSQL role (deploy/postgresql, which
    owns no table) the load goes through the index as it stands, slower but the same."""
    if not _owns_table(session):
        yield
        return
    drop_index(session)
    try:
        yield
    finally:
        create_index(session)


def _owns_table(session: Session) -> bool:
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return True
    owner = "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = 'breach_block_key'::regclass"
    return bool(connection.exec_driver_sql(owner).scalar())


def refresh(session: Session, custody: KeyCustody, vault: IdentityVault) -> int:
    """Add the blocking keys of vault records added since the last refresh; returns how many records were read.

    The caller commits. Re-delivered people get the keys of their new record as well (a superset is harmless:
    candidates are decrypted from their newest record anyway).
    """
    custody.ensure(BLOCKING_KEY, KeyPurpose.PSEUDONYM)
    state = _state(session)
    pending = int(
        session.scalar(select(func.count(IdentityRow.id)).where(IdentityRow.id > state.last_identity_id)) or 0
    )
    if pending == 0:
        return 0
    read = 0
    with bulk_load(session) if pending >= BULK_LOAD else _nothing():
        while True:
            records = vault.records(state.last_identity_id, _BATCH)
            if not records:
                break
            identities = [r[2] for r in records]
            people = {name: pa.array([getattr(i, name) for i in identities], pa.string())
                      for name in ("last_name", "first_name", "birth_date", "postcode")}  # fmt: skip
            index_people(session, custody, people, [r[1] for r in records])
            state.last_identity_id = records[-1][0]
            read += len(records)
    session.flush()
    return read


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def candidates(session: Session, keys: list[bytes]) -> dict[bytes, set[bytes]]:
    """For each blocking key, the blind indexes of the people in that block."""
    out: dict[bytes, set[bytes]] = defaultdict(set)
    found = bulk.select_in(session, "SELECT block, person_index FROM breach_block_key WHERE block",
                           list(dict.fromkeys(keys)))  # fmt: skip
    for block, person_index in found:
        out[bytes(block)].add(bytes(person_index))
    return out
