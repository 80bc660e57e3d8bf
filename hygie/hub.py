# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A hub: one data dir with its keys, metadata database and warehouse, opened together."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import TimeoutError as DatabaseTimeout
from sqlalchemy.orm import Session, sessionmaker

from hygie import logging as _logging  # noqa: F401  (JSON logs to stderr)
from hygie.config import Settings
from hygie.db import make_engine, make_sessionmaker, migrate
from hygie.db.sealed import MetadataSealer, attach
from hygie.identity.pseudonym import Pseudonymiser
from hygie.identity.vault import IdentityVault, KnownPeople
from hygie.keys import KeyCustody, KeyPurpose, open_custody
from hygie.locks import exclusive
from hygie.memo import BoundedMemo
from hygie.warehouse.encryption import ParquetCrypto
from hygie.warehouse.store import Warehouse
from hygie.warehouse.viewcache import ViewCache, machine_memory_bytes

if TYPE_CHECKING:
    from hygie.audit.recorder import BatchRecorder


class HubNotInitialised(Exception):
    pass


def _private_database(settings: Settings) -> None:
    """An embedded SQLite database is created 0600 before SQLite opens it (its -wal and -shm files take the same
    mode), and tightened when an older hub made it wider: whatever the process umask, only the hub's user reads it."""
    url = make_url(settings.database)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    path = Path(url.database)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        file = path.parent / name
        try:
            if file.stat().st_mode & 0o077 and file.stat().st_uid == os.geteuid():
                os.chmod(file, 0o600)
        except FileNotFoundError:
            continue


METADATA_SEAL_KEY = "metadata-seal"


def _view_cache_budget(settings: Settings) -> int:
    if settings.analysis_view_cache_mb is None:
        return machine_memory_bytes() // 4
    return settings.analysis_view_cache_mb * 1024 * 1024


def _metadata_key(custody: KeyCustody) -> bytes:
    """The key that seals free-text metadata (hygie.db.sealed): an HMAC under a custody key, so it is never stored,
    travels with the keystore in backups, and goes wherever custody goes (the token, with PKCS#11)."""
    custody.ensure(METADATA_SEAL_KEY, KeyPurpose.PSEUDONYM)
    return custody.mac(METADATA_SEAL_KEY, [b"hygie/metadata-seal/v1"], version=1)[0]


@dataclass
class Hub:
    settings: Settings
    custody: KeyCustody
    engine: Engine
    sessions: sessionmaker[Any]
    warehouse: Warehouse
    pseudonymiser: Pseudonymiser
    known_people: KnownPeople = field(default_factory=KnownPeople)
    confirmed_nirs: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    """NIRs an ingestion run has found in the vault (memory only, emptied when the run ends), so its later batches
    check them in one pass."""
    ingest_memo: dict[str, Any] = field(default_factory=dict)
    """Indexes the ingestion keeps for this process (e.g. the care rows already stored)."""
    view_cache: ViewCache = field(default_factory=lambda: ViewCache(0, 1.0))
    """Decrypted project views kept in memory between analysis runs (``analysis_view_cache_mb``)."""
    closed: bool = False
    """Set by :meth:`close`: background work over this hub (analysis workers) stops."""
    citizen_memo: BoundedMemo | None = field(default=None, repr=False)
    """Citizens' pseudonyms and person keys (:mod:`hygie.memo`); set by :meth:`_assemble`."""
    _recorder: BatchRecorder | None = field(default=None, repr=False)
    _recorder_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def init(cls, settings: Settings) -> Hub:
        """Create (or complete) a hub in ``settings.data_dir``; safe to run again."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(settings.data_dir, 0o700)
        (settings.data_dir / "locks").mkdir(exist_ok=True)
        custody = open_custody(settings, create=True)
        _private_database(settings)
        engine = make_engine(settings)
        migrate(engine)
        return cls._assemble(settings, custody, engine)

    @classmethod
    def open(cls, settings: Settings) -> Hub:
        keys = settings.data_dir / "keys"
        if not (keys / "keystore.json").exists() and not (keys / "pkcs11-keystore.json").exists():
            raise HubNotInitialised(f"no hub in {settings.data_dir}: run `hygie init` first")
        (settings.data_dir / "locks").mkdir(exist_ok=True)
        custody = open_custody(settings)
        _private_database(settings)
        engine = make_engine(settings)
        migrate(engine)
        hub = cls._assemble(settings, custody, engine)
        hub.recover_if_idle()
        return hub

    @classmethod
    def _assemble(cls, settings: Settings, custody: KeyCustody, engine: Engine) -> Hub:
        attach(engine, MetadataSealer(lambda: _metadata_key(custody)))
        return cls(
            settings=settings,
            custody=custody,
            engine=engine,
            sessions=make_sessionmaker(engine),
            warehouse=Warehouse(settings.data_dir / "warehouse", ParquetCrypto(custody)),
            pseudonymiser=Pseudonymiser(custody),
            view_cache=ViewCache(_view_cache_budget(settings), settings.analysis_view_cache_idle_seconds),
            citizen_memo=BoundedMemo(settings.citizen_memo_entries, settings.citizen_memo_seconds),
        )

    def session(self) -> Session:
        return self.sessions()  # type: ignore[no-any-return]

    def vault(self, session: Session) -> IdentityVault:
        return IdentityVault(session, self.custody, self.pseudonymiser)

    @contextmanager
    def ingest_lock(self) -> Iterator[None]:
        """One ingestion at a time per hub (the warehouse's recovery relies on it)."""
        lock_dir = self.settings.data_dir / "locks"
        lock_dir.mkdir(exist_ok=True)
        with exclusive(lock_dir / "ingest.lock"):
            yield

    def recover_if_idle(self) -> bool:
        """Clear what a killed ingestion left behind, unless an ingestion is running right now."""
        fd = os.open(self.settings.data_dir / "locks" / "ingest.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with self.session() as session:
                self.warehouse.recover(session)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            os.close(fd)

    def memo(self) -> BoundedMemo:
        """The citizens' memo (one of the settings' size if this hub was built without :meth:`_assemble`)."""
        if self.citizen_memo is None:
            self.citizen_memo = BoundedMemo(self.settings.citizen_memo_entries, self.settings.citizen_memo_seconds)
        return self.citizen_memo

    def record_read(self, **fields: Any) -> None:
        """Record the event of a read through group commit, and return once it is committed (durable).

        The events of concurrent reads share one transaction and one fsync (:class:`~hygie.audit.recorder.
        BatchRecorder`); the caller returns its result only after this returns. Their leaves are given by the
        checkpointer's sequencer, within ``audit_checkpoint_seconds``. Past ``audit_read_commit_wait_seconds`` it
        raises SQLAlchemy's ``TimeoutError`` (a database fault: the portal answers 503), and the result is never
        returned without its event.
        """
        with self._recorder_lock:
            if self.closed:
                raise RuntimeError("the hub is closed")
            if self._recorder is None:
                from hygie.audit.recorder import BatchRecorder

                # Inserts only: the checkpointer's sequencer gives the leaves, as it does for events recorded in
                # callers' transactions. Sequencing in the recorder's commit made the recorders of several server
                # processes reload each other's tree frontier at every batch (a quarter of a second per read with
                # two processes on PostgreSQL).
                self._recorder = BatchRecorder(self.engine, sequence=False)
            recorder = self._recorder
        done = recorder.submit(**fields)
        wait = self.settings.audit_read_commit_wait_seconds
        try:
            done.result(timeout=wait)
        except FutureTimeout:
            raise DatabaseTimeout(f"the audit event of this read was not committed within {wait:g} s") from None

    def close(self) -> None:
        with self._recorder_lock:
            self.closed = True
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()  # commits what was submitted before the engine goes
        self.view_cache.clear()
        self.engine.dispose()
