# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Keyed pseudonyms derived from the NIR.

A NIR has at most about 2^38 possible values (a few million once birth month and place are known), so any
unkeyed hash of it is reversed by brute force. Every pseudonym here is an HMAC-SHA-256 under a key that
never leaves key custody; without that key the pseudonym says nothing about the NIR.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import DateTime, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from hygie.db import Base
from hygie.keys import HUB_PSEUDONYM_KEY, VAULT_INDEX_KEY, KeyCustody, KeyPurpose

PSEUDONYM_LENGTH = 17
"""As SNDS's BEN_NIR_PSA: 17 base32 characters carry 85 bits of the HMAC. Among 100 million people the
chance that any two share a pseudonym is about n^2 / 2^86 = 1.3e-10."""

_HUB_LABEL = b"hygie/hub-pseudonym/v1|"
_INDEX_LABEL = b"hygie/vault-index/v1|"


FIRST_VERSION = 1
"""The hub pseudonym key's version before any rotation (custody numbers a new key's first version 1)."""


class HubPseudonymState(Base):
    """Which version of the hub pseudonym key the stored data is keyed with (one row).

    Custody's *current* version is not that: a rotation adds the new version first and re-pseudonymises the
    data under it while everything keeps reading and writing the ``active`` one, then switches in one
    transaction (:mod:`hygie.governance.pseudonym_rotation`). Every pseudonym is therefore computed under a
    version read from here, never under custody's default.
    """

    __tablename__ = "hub_pseudonym_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    active_version: Mapped[int] = mapped_column(Integer, nullable=False)
    target_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The version a rotation in progress is re-pseudonymising to; None when none is."""
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PseudonymVersionChanged(Exception):
    """The hub pseudonym key was switched to another version while this work was reading the old one."""


def active_version(session: Session) -> int:
    """The version of the hub pseudonym key that the warehouse, membership files and citizen index use now."""
    state = session.get(HubPseudonymState, 1, populate_existing=True)
    return FIRST_VERSION if state is None else state.active_version


def hold_version(session: Session, version: int) -> None:
    """Check that ``version`` is still active and keep it so until the session's transaction ends.

    It takes a lock on the state row that a rotation's switch (whose first statement updates that row) waits for,
    so the switch sees what the caller commits; if the switch committed first, the version no longer matches and
    this raises. On PostgreSQL a shared row lock (view builds of different projects do not wait for each other);
    on SQLite, which has no row locks, a no-op UPDATE (the database's write lock).
    """
    if session.get_bind().dialect.name == "postgresql":
        held = session.scalar(
            select(HubPseudonymState.active_version).where(HubPseudonymState.id == 1).with_for_update(read=True)
        )
        if held != version:
            raise PseudonymVersionChanged(_CHANGED.format(version=version))
        return
    result = session.execute(
        update(HubPseudonymState)
        .where(HubPseudonymState.id == 1, HubPseudonymState.active_version == version)
        .values(active_version=HubPseudonymState.active_version)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise PseudonymVersionChanged(_CHANGED.format(version=version))


_CHANGED = (
    "the hub pseudonym key was rotated (version {version} is no longer active) while this was being prepared: "
    "nothing was kept; run it again"
)


_BASE32 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", dtype=np.uint8)
_WEIGHTS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)


def encode_pseudonyms(digests: list[bytes]) -> list[str]:
    """The first 17 RFC 4648 base32 characters of each digest (its first 85 bits), vectorised with numpy:
    the standard library's base32 is a Python loop, too slow for millions of people."""
    if not digests:
        return []
    head = np.frombuffer(b"".join(d[:11] for d in digests), dtype=np.uint8).reshape(-1, 11)
    groups = np.unpackbits(head, axis=1)[:, : PSEUDONYM_LENGTH * 5].reshape(-1, PSEUDONYM_LENGTH, 5)
    text = _BASE32[groups @ _WEIGHTS].tobytes().decode("ascii")
    return [text[i : i + PSEUDONYM_LENGTH] for i in range(0, len(text), PSEUDONYM_LENGTH)]


class Pseudonymiser:
    """Turns NIRs into hub pseudonyms (under one version of the hub pseudonym key) and vault indexes, caching
    each NIR's results for one run.

    The cache lives in memory only, for the length of an ingestion run (:meth:`forget` empties it when the run
    ends), so each distinct NIR costs one MAC call to key custody however many care rows carry it. Only the bulk
    calls of ingestion fill it: single lookups (:meth:`index`, :meth:`pseudonym`: what a citizen types on the
    portal) and ``cache=False`` calls leave no NIR behind. :meth:`at` gives the pseudonymiser of another key
    version (see :class:`HubPseudonymState`).
    """

    def __init__(self, custody: KeyCustody, version: int | None = None) -> None:
        self._custody = custody
        custody.ensure(HUB_PSEUDONYM_KEY, KeyPurpose.PSEUDONYM)
        custody.ensure(VAULT_INDEX_KEY, KeyPurpose.PSEUDONYM)
        self.version = version
        self._pseudonyms: dict[str, str] = {}
        self._indexes: dict[str, bytes] = {}
        self._memo = (pa.array([], pa.string()), pa.array([], pa.string()))
        """Seen NIRs and their pseudonyms, in one attribute: replaced whole, never read half old, half new."""
        self._others: dict[int, Pseudonymiser] = {}
        self._others_lock = threading.Lock()

    def at(self, version: int) -> Pseudonymiser:
        """The pseudonymiser of ``version`` of the hub pseudonym key (this one, or one kept for the process)."""
        if version == self.version:
            return self
        with self._others_lock:
            if version not in self._others:
                self._others[version] = Pseudonymiser(self._custody, version)
            return self._others[version]

    def pseudonym_array(self, nirs: pa.Array) -> pa.Array:
        """Pseudonyms of an Arrow array of distinct NIRs, looked up in one vectorised pass.

        NIRs seen before (in this process) cost no Python work: claims name the same people month after
        month, so after the first flows almost every NIR of a batch is found by ``index_in``.
        """
        seen, pseudonyms = self._memo
        positions = pc.index_in(nirs, value_set=seen)
        missing = pc.filter(nirs, pc.is_null(positions))
        if len(missing):
            computed = pa.array(self.pseudonyms(missing.to_pylist()), pa.string())
            seen, pseudonyms = pa.concat_arrays([seen, missing]), pa.concat_arrays([pseudonyms, computed])
            self._memo = (seen, pseudonyms)
            positions = pc.index_in(nirs, value_set=seen)
        return pc.take(pseudonyms, positions)

    def forget(self) -> None:
        """Drop every NIR this pseudonymiser, and those of the other versions it gave, remember: an ingestion run
        calls it when it ends, so that no NIR stays in clear in a long-lived process (a portal, a demo)."""
        self._pseudonyms = {}
        self._indexes = {}
        self._memo = (pa.array([], pa.string()), pa.array([], pa.string()))
        with self._others_lock:
            others = list(self._others.values())
        for other in others:
            other.forget()

    def remembers(self) -> int:
        """How many NIRs this pseudonymiser and the other versions' hold (for the tests of :meth:`forget`)."""
        with self._others_lock:
            others = list(self._others.values())
        held = len(self._pseudonyms) + len(self._indexes) + len(self._memo[0])
        return held + sum(o.remembers() for o in others)

    def _macs(self, nirs: list[str]) -> list[str]:
        if self.version is None:
            # The hub's own pseudonymiser names no version: which one the data uses is a database fact that a
            # rotation changes (:func:`active_version`), so a caller must say which it wants.
            raise TypeError("name the hub pseudonym key version: Pseudonymiser.at(version)")
        macs = self._custody.mac(
            HUB_PSEUDONYM_KEY, [_HUB_LABEL + n.encode("ascii") for n in nirs], version=self.version
        )
        return encode_pseudonyms(macs)

    def pseudonyms(self, nirs: Iterable[str], *, cache: bool = True) -> list[str]:
        """Hub pseudonyms of ``nirs``; ``cache=False`` (lookups, rotations) keeps no NIR in memory after."""
        nirs = list(nirs)
        known = self._pseudonyms  # one dict throughout: :meth:`forget` may replace it meanwhile
        missing = [n for n in dict.fromkeys(nirs) if n not in known]
        if not cache:
            found = dict(zip(missing, self._macs(missing), strict=True)) if missing else {}
            return [found[n] if n in found else known[n] for n in nirs]
        if missing:
            known.update(zip(missing, self._macs(missing), strict=True))
        return [known[n] for n in nirs]

    def indexes(self, nirs: Iterable[str], *, cache: bool = True) -> list[bytes]:
        """Vault indexes of ``nirs``. ``cache=False`` (lookups of what someone typed, a leak's rows) keeps nothing:
        the cache holds NIRs in clear until the ingestion run ends, so only ingestion, which delivers the vault's
        own people again and again, fills it."""
        nirs = list(nirs)
        known = self._indexes  # one dict throughout: :meth:`forget` may replace it meanwhile
        missing = [n for n in dict.fromkeys(nirs) if n not in known]
        if not cache:
            macs = self._custody.mac(VAULT_INDEX_KEY, [_INDEX_LABEL + n.encode("ascii") for n in missing])
            found = dict(zip(missing, macs, strict=True))
            return [found[n] if n in found else known[n] for n in nirs]
        if missing:
            macs = self._custody.mac(VAULT_INDEX_KEY, [_INDEX_LABEL + n.encode("ascii") for n in missing])
            known.update(zip(missing, macs, strict=True))
        return [known[n] for n in nirs]

    def pseudonym(self, nir: str) -> str:
        """One NIR's pseudonym, not cached (a single lookup is someone's typing, not an ingestion)."""
        found = self._pseudonyms.get(nir)
        return found if found is not None else self._macs([nir])[0]

    def index(self, nir: str) -> bytes:
        """One NIR's vault index, not cached: the portal's lookups (enrolment, letters, activation) go through here,
        and every NIR anyone types would otherwise stay in the process's memory in clear."""
        return self.indexes([nir], cache=False)[0]
