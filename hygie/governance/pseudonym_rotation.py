# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rotation of the hub pseudonym key: every stored hub pseudonym re-keyed under a new version, online.

SNDS renews its pseudonyms about every two years, so that files taken before cannot be joined to data kept after.
Here the hub pseudonym (BEN_NIR_PSA) is stored in the warehouse's Parquet files and in the views' membership
files, and the citizen index's person keys are derived from it; the vault holds no pseudonym (it is computed from
the NIR under a named key version). A rotation:

1. **prepares** (``key.pseudonym.rotate.start``): custody adds a new version of ``hub-pseudonym``; the hub keeps
   reading and writing under the *active* version (:class:`hygie.identity.pseudonym.HubPseudonymState`);
2. **re-writes**, with no lock: from the vault's NIRs, old pseudonym -> new pseudonym in memory (never written);
   each warehouse file holding pseudonyms and each membership file re-written beside the old one under a fresh
   data key, one row group at a time, each recorded in ``pseudonym_rotation_file`` once durable, so a crash
   resumes where it stopped; ingestion, analyses and citizen reads go on meanwhile;
3. **switches** (``key.pseudonym.rotate``), holding the ingestion lock: batches and view generations published
   since are re-written too, then one transaction points the catalog and the views at the new files, makes the
   new version active and empties the citizen index (readers fall back to the slow path, which reads the new
   files);
4. **finishes** (``key.pseudonym.rotate.finish``): the citizen index is rebuilt, and after
   ``pseudonym_rotation_grace_seconds`` (reads that listed the old files just before the switch) the old files
   are removed.

Running it again after a crash continues the rotation that was under way, or finishes one that had switched.
Built views are not re-keyed: they hold project pseudonyms derived through the version they were built with
(``ProjectView.pseudonym_version``), which stays in custody until no ready view uses it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from hygie import faults
from hygie.audit.events import record
from hygie.governance.citizen_index import clear as clear_citizen_index
from hygie.governance.citizen_index import rebuild as rebuild_citizen_index
from hygie.governance.models import ProjectView, PseudonymRotationFile
from hygie.governance.views import MEMBERSHIP_KEY, READY
from hygie.hub import Hub
from hygie.identity.pseudonym import PSEUDONYM_LENGTH, HubPseudonymState
from hygie.ingest.contract import PSEUDONYM_COLUMN, TABLES
from hygie.ingest.rules import stored_schema
from hygie.keys import HUB_PSEUDONYM_KEY, KeyPurpose
from hygie.locks import exclusive
from hygie.warehouse.catalog import FileRow
from hygie.warehouse.encryption import ParquetCrypto
from hygie.warehouse.store import rewrite_file

WAREHOUSE, MEMBERSHIP = "warehouse", "membership"
VAULT_PAGE = 5_000
_VERSION_SUFFIX = re.compile(r"(\.v\d+)?\.parquet$")

Progress = Callable[[str, int, int], None]
"""(stage, done, total): called as files are re-written."""


class RotationError(Exception):
    """The rotation cannot go on; nothing was switched. The message says what to do."""


@dataclass(frozen=True)
class Rotated:
    from_version: int
    to_version: int
    warehouse_files: int
    membership_files: int
    people: int
    seconds: float
    views_on_older_versions: int
    """Ready views still built through an older version (kept in custody for them)."""


_FIXED = f"S{PSEUDONYM_LENGTH}"
"""Pseudonyms as numpy fixed-width bytes: sorted once, then each row group found by binary search (a hash set
rebuilt per row group would cost a national map's size for every group)."""


def _fixed(values: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """The pseudonyms of ``values`` as numpy ``S17`` (a null gives zero bytes: callers check validity apart)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    fixed = pc.cast(pc.cast(values, pa.binary()), pa.binary(PSEUDONYM_LENGTH))
    data = np.frombuffer(fixed.buffers()[1], dtype=_FIXED, count=fixed.offset + len(fixed))
    return data[fixed.offset :]


class _Map:
    """Old pseudonym -> new pseudonym of everyone in the vault, as two aligned numpy arrays sorted by the old one
    (memory only: 34 bytes a record)."""

    def __init__(self) -> None:
        self.old = np.empty(0, dtype=_FIXED)
        self.new = np.empty(0, dtype=_FIXED)
        self.last_record = 0

    def extend(self, hub: Hub, session: Session, old: int, new: int) -> None:
        """Add the people of vault records newer than those already read, one page of records at a time (a
        re-delivered person appears twice, with the same pair: duplicates are dropped)."""
        vault = hub.vault(session)
        before, after = [self.old], [self.new]
        while page := vault.records(self.last_record, VAULT_PAGE):
            nirs = [identity.nir for _, _, identity in page]
            before.append(_fixed(pa.array(hub.pseudonymiser.at(old).pseudonyms(nirs, cache=False), pa.string())))
            after.append(_fixed(pa.array(hub.pseudonymiser.at(new).pseudonyms(nirs, cache=False), pa.string())))
            self.last_record = page[-1][0]
        olds, news = np.concatenate(before), np.concatenate(after)
        self.old, first = np.unique(olds, return_index=True)
        self.new = news[first]

    def people(self) -> int:
        return len(self.old)

    def apply(self, where: str) -> Callable[[pa.Table], pa.Table]:
        def transform(table: pa.Table) -> pa.Table:
            i = table.schema.get_field_index(PSEUDONYM_COLUMN)
            column = table.column(i).combine_chunks()
            valid = np.asarray(pc.is_valid(column))
            wanted = _fixed(column)
            at = np.minimum(np.searchsorted(self.old, wanted), max(len(self.old) - 1, 0))
            found = (self.old[at] == wanted) if len(self.old) else np.zeros(len(wanted), dtype=bool)
            unmapped = int(np.count_nonzero(valid & ~found))
            if unmapped:
                # A count, never a value: pseudonyms do not go into messages.
                raise RotationError(
                    f"{where}: {unmapped} pseudonyms name nobody in the identity vault (the vault and warehouse "
                    "disagree: restore both from one backup); nothing was switched"
                )
            renamed = self.new[at] if len(self.old) else np.zeros(len(wanted), dtype=_FIXED)
            fixed = pa.FixedSizeBinaryArray.from_buffers(
                pa.binary(PSEUDONYM_LENGTH), len(renamed), [None, pa.py_buffer(renamed.tobytes())]
            )
            mapped = pc.if_else(pa.array(valid), pc.cast(pc.cast(fixed, pa.binary()), pa.string()), None)
            return table.set_column(i, table.schema.field(i), mapped)

        return transform


def _root(hub: Hub, kind: str) -> Path:
    """The folder a rotation file's paths are relative to (as in the catalog and in ``project_view``)."""
    return hub.warehouse.directory if kind == WAREHOUSE else hub.settings.data_dir


def _target_path(relative: str, version: int) -> str:
    return _VERSION_SUFFIX.sub(f".v{version}.parquet", relative)


def _state(session: Session) -> HubPseudonymState:
    state = session.get(HubPseudonymState, 1, populate_existing=True)
    if state is None:
        raise RotationError("the hub pseudonym state row is missing: run `hygie db upgrade` (or restore a backup)")
    return state


class _Rotation:
    def __init__(self, hub: Hub, actor: str, progress: Progress | None, old: int, new: int) -> None:
        self.hub, self.actor, self.progress = hub, actor, progress
        self.old, self.new = old, new
        self.map = _Map()
        self.warehouse_crypto = hub.warehouse.crypto
        self.membership_crypto = ParquetCrypto(hub.custody, master_key=MEMBERSHIP_KEY)
        self.tables = [t for t in TABLES if PSEUDONYM_COLUMN in stored_schema(t).names]

    def _done(self, session: Session, kind: str) -> set[int]:
        return set(
            session.scalars(
                select(PseudonymRotationFile.ref_id).where(
                    PseudonymRotationFile.target_version == self.new, PseudonymRotationFile.kind == kind
                )
            )
        )

    def _rewrite(self, session: Session, kind: str, ref_id: int, relative: str) -> None:
        """Re-write one file and record it (the caller commits)."""
        root = _root(self.hub, kind)
        crypto = self.warehouse_crypto if kind == WAREHOUSE else self.membership_crypto
        source = root / relative
        if not source.exists():
            raise RotationError(f"{relative} is missing: restore it from a backup, then run the rotation again")
        target = _target_path(relative, self.new)
        written = rewrite_file(crypto, source, root / target, self.map.apply(relative))
        session.add(
            PseudonymRotationFile(
                target_version=self.new, kind=kind, ref_id=ref_id, old_path=relative, new_path=target,
                rows=written.rows, bytes=written.bytes, sha256=written.sha256,
            )
        )  # fmt: skip

    def _forget_lost(self, session: Session) -> None:
        """Drop the record of re-written files that are no longer there as written (a backup restored mid-rotation
        holds the records but not the files: it never takes uncatalogued files), so they are written again."""
        items = session.scalars(
            select(PseudonymRotationFile).where(PseudonymRotationFile.target_version == self.new)
        ).all()
        for item in items:
            path = _root(self.hub, item.kind) / item.new_path
            if not path.is_file() or path.stat().st_size != item.bytes:
                session.delete(item)
        session.commit()

    def _pending(self, session: Session) -> list[tuple[str, int, str]]:
        files = session.execute(
            select(FileRow.id, FileRow.path).where(FileRow.table_name.in_(self.tables)).order_by(FileRow.id)
        ).all()
        views = session.execute(select(ProjectView.id, ProjectView.membership_file).order_by(ProjectView.id)).all()
        done_files, done_views = self._done(session, WAREHOUSE), self._done(session, MEMBERSHIP)
        return [(WAREHOUSE, i, p) for i, p in files if i not in done_files] + [
            (MEMBERSHIP, i, p) for i, p in views if i not in done_views
        ]

    def rewrite_pending(self, stage: str) -> int:
        """Re-write every file not re-written yet, committing each; returns how many."""
        with self.hub.session() as session:
            self._forget_lost(session)
            # The file list first, then the vault: a batch's people commit with its files, so every pseudonym of a
            # listed file is in the vault read after it.
            pending = self._pending(session)
            self.map.extend(self.hub, session, self.old, self.new)
            for n, (kind, ref_id, relative) in enumerate(pending, 1):
                self._rewrite(session, kind, ref_id, relative)
                session.commit()
                faults.point("pseudonym-rotation.rewritten")
                if self.progress:
                    self.progress(stage, n, len(pending))
        return len(pending)

    def switch(self) -> Rotated:
        started = time.perf_counter()
        with self.hub.ingest_lock():  # no batch lands while the catalog changes version
            self.rewrite_pending("catch-up")  # batches and generations published since the first pass
            people = self.map.people()
            with self.hub.session() as session:
                # First statement of its transaction: the state row's lock. A view build holding the old version
                # (hold_version) commits first and is seen below, or finds the version changed and stops.
                switched = session.execute(
                    update(HubPseudonymState)
                    .where(
                        HubPseudonymState.id == 1,
                        HubPseudonymState.active_version == self.old,
                        HubPseudonymState.target_version == self.new,
                    )
                    .values(active_version=self.new, target_version=None, changed_at=datetime.now(UTC))
                    .execution_options(synchronize_session=False)
                )
                if switched.rowcount != 1:  # type: ignore[attr-defined]
                    raise RotationError("the hub pseudonym state changed under this rotation; run it again")
                if session.get_bind().dialect.name == "postgresql":
                    # Emptying a national citizen index takes longer than a request may: not this transaction.
                    session.execute(text("SET LOCAL statement_timeout = 0"))
                for kind, ref_id, relative in self._pending(session):  # generations committed a moment ago
                    self._rewrite(session, kind, ref_id, relative)
                session.flush()
                rotated = session.scalars(
                    select(PseudonymRotationFile).where(PseudonymRotationFile.target_version == self.new)
                ).all()
                for item in rotated:
                    if item.kind == WAREHOUSE:
                        session.execute(
                            update(FileRow)
                            .where(FileRow.id == item.ref_id)
                            .values(path=item.new_path, bytes=item.bytes, sha256=item.sha256, rows=item.rows)
                        )
                    else:
                        session.execute(
                            update(ProjectView)
                            .where(ProjectView.id == item.ref_id)
                            .values(membership_file=item.new_path)
                        )
                clear_citizen_index(session)
                warehouse = sum(1 for r in rotated if r.kind == WAREHOUSE)
                membership = len(rotated) - warehouse
                record(
                    session,
                    actor=self.actor,
                    action="key.pseudonym.rotate",
                    object=f"key:{HUB_PSEUDONYM_KEY}",
                    detail={"from": self.old, "to": self.new, "warehouse_files": warehouse,
                            "membership_files": membership, "people": people},
                )  # fmt: skip
                session.commit()
        return Rotated(self.old, self.new, warehouse, membership, people, time.perf_counter() - started, 0)


def _finish(hub: Hub, actor: str, version: int, switched_at: datetime | None) -> tuple[int, int]:
    """After the switch to ``version``: rebuild the citizen index, remove the old files once the grace period is
    over, forget the rotation's file list. Idempotent (run again after a crash). Returns the files removed and the
    ready views on older versions."""
    with hub.session() as session:
        rebuild_citizen_index(hub, session)
        session.commit()
    if switched_at is not None:
        at = switched_at if switched_at.tzinfo else switched_at.replace(tzinfo=UTC)
        since = (datetime.now(UTC) - at).total_seconds()
        time.sleep(max(0.0, hub.settings.pseudonym_rotation_grace_seconds - since))
    removed = 0
    with hub.session() as session:
        items = session.scalars(
            select(PseudonymRotationFile).where(PseudonymRotationFile.target_version == version)
        ).all()
        for item in items:
            root = _root(hub, item.kind)
            if item.kind == WAREHOUSE:
                current = session.scalar(select(FileRow.path).where(FileRow.id == item.ref_id))
            else:
                current = session.scalar(select(ProjectView.membership_file).where(ProjectView.id == item.ref_id))
            if current != item.new_path or not (root / item.new_path).is_file():
                raise RotationError(
                    f"{item.new_path} is not what the catalog names, or is missing: the old file {item.old_path} is "
                    "kept; run `hygie warehouse verify` and restore from a backup if it reports a problem"
                )
            old = root / item.old_path
            if old.exists():
                old.unlink()
                removed += 1
            session.delete(item)
        older = len(
            session.scalars(
                select(ProjectView.id).where(ProjectView.status == READY, ProjectView.pseudonym_version != version)
            ).all()
        )
        record(session, actor=actor, action="key.pseudonym.rotate.finish", object=f"key:{HUB_PSEUDONYM_KEY}",
               detail={"version": version, "old_files_removed": removed, "views_on_older_versions": older})  # fmt: skip
        session.commit()
    return removed, older


@contextmanager
def rotation_lock(hub: Hub) -> Iterator[None]:
    """One rotation at a time per hub; ``hygie keys destroy hub-pseudonym`` takes it too (a version being added)."""
    lock_dir = hub.settings.data_dir / "locks"
    lock_dir.mkdir(exist_ok=True)
    with exclusive(lock_dir / "pseudonym-rotation.lock"):
        yield


def rotate(hub: Hub, *, actor: str, progress: Progress | None = None) -> Rotated:
    """Rotate the hub pseudonym key, or go on with (or finish) a rotation a crash interrupted."""
    started = time.perf_counter()
    with rotation_lock(hub):
        with hub.session() as session:
            state = _state(session)
            old, target, changed_at = state.active_version, state.target_version, state.changed_at
            unfinished = session.scalars(
                select(PseudonymRotationFile.id).where(PseudonymRotationFile.target_version == old).limit(1)
            ).first()
        if target is None and unfinished is not None:
            # A rotation switched to the active version, then stopped before its clean-up: finish that one.
            _, older = _finish(hub, actor, old, changed_at)
            return Rotated(old, old, 0, 0, 0, time.perf_counter() - started, older)
        if target is None:
            target = _prepare(hub, actor, old)
        rotation = _Rotation(hub, actor, progress, old, target)
        rotation.rewrite_pending("re-write")
        done = rotation.switch()
        with hub.session() as session:
            switched_at = _state(session).changed_at
        _, older = _finish(hub, actor, target, switched_at)
        return Rotated(
            done.from_version, done.to_version, done.warehouse_files, done.membership_files, done.people,
            time.perf_counter() - started, older,
        )  # fmt: skip


def _prepare(hub: Hub, actor: str, active: int) -> int:
    """Add the new key version and record it as the rotation's target; returns it."""
    info = hub.custody.ensure(HUB_PSEUDONYM_KEY, KeyPurpose.PSEUDONYM)
    if info.current_version is None:
        raise RotationError(f"{HUB_PSEUDONYM_KEY} has no live version; restore the keys from a backup")
    # A version newer than the active one was added by a rotation that stopped before recording it: reuse it.
    target: int | None = info.current_version
    if info.current_version <= active:
        target = hub.custody.rotate(HUB_PSEUDONYM_KEY).current_version
    assert target is not None
    with hub.session() as session:
        changed = session.execute(
            update(HubPseudonymState)
            .where(HubPseudonymState.id == 1, HubPseudonymState.active_version == active,
                   HubPseudonymState.target_version.is_(None))
            .values(target_version=target)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise RotationError("another rotation changed the hub pseudonym state; run it again")
        record(session, actor=actor, action="key.pseudonym.rotate.start", object=f"key:{HUB_PSEUDONYM_KEY}",
               detail={"from": active, "to": target})  # fmt: skip
        session.commit()
    return target


def versions_in_use(session: Session) -> set[int]:
    """Versions of the hub pseudonym key the hub still needs: the active one, a rotation's target, and those
    ready views were built through (their objectors are re-keyed through them)."""
    state = _state(session)
    used = {state.active_version} | ({state.target_version} if state.target_version is not None else set())
    used.update(session.scalars(select(ProjectView.pseudonym_version).where(ProjectView.status == READY)))
    return used
