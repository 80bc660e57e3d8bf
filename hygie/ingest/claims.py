# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Which care rows (by their nine DCIR keys) the warehouse already holds, across batches.

The nine keys include the flow dates, so a claim legitimately sent again in a later flow has other keys; the
same nine keys in two batches mean the same row delivered twice (for example one batch re-exported with other
line ends under a new batch id). Keys are kept as 64-bit DuckDB hashes grouped by FLX_DIS_DTD, so a new batch is
compared only with the claims of its own flow dates. Two different claims of one flow date sharing a hash
(about n^2 / 2^65 for n claims that day) would refuse a row wrongly, with an error naming it; never accept one.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from sqlalchemy import select

from hygie.hub import Hub
from hygie.ingest.contract import CARE_TABLE, DCIR_KEYS
from hygie.warehouse.catalog import FileRow

_HASH = f"SELECT FLX_DIS_DTD AS day, hash({', '.join(DCIR_KEYS)}) AS h FROM claims"


def hashes(keys: pa.Table, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The flow day and the 64-bit hash of the nine DCIR keys of each row of ``keys`` (other columns ignored)."""
    con.register("claims", keys.select(list(DCIR_KEYS)))
    try:
        table: pa.Table = con.sql(_HASH).to_arrow_table()
        return table
    finally:
        con.unregister("claims")


def _columns(hashed: pa.Table) -> tuple[Any, Any]:
    days = hashed.column("day").to_numpy(zero_copy_only=False)
    return days, hashed.column("h").to_numpy(zero_copy_only=False).astype(np.uint64)


class KnownClaims:
    def __init__(self) -> None:
        self._by_day: dict[Any, np.ndarray[Any, np.dtype[np.uint64]]] = {}
        self._loaded: set[int] = set()

    def refresh(self, hub: Hub, con: duckdb.DuckDBPyConnection, skip: Collection[str] = ()) -> None:
        """Read the keys of care files published since the last call (all of them the first time), except the
        files of the batches in ``skip``, whose keys the caller has and will give to :meth:`learn`."""
        query = select(FileRow.id, FileRow.path).where(FileRow.table_name == CARE_TABLE)
        if skip:
            query = query.where(FileRow.batch_id.not_in(list(skip)))
        with hub.session() as session:
            files = session.execute(query).all()
        new = [f for f in files if f.id not in self._loaded]
        if not new:
            return
        dataset = hub.warehouse.dataset_of([hub.warehouse.directory / f.path for f in new])
        self.add(hashes(dataset.to_table(columns=list(DCIR_KEYS)), con))
        self._loaded.update(f.id for f in new)

    def learn(self, hashed: pa.Table, file_ids: Collection[int]) -> None:
        """Remember the claims of a committed batch, from its own check, instead of reading its files back."""
        if file_ids and not self._loaded.intersection(file_ids):
            self.add(hashed)
            self._loaded.update(file_ids)

    def add(self, hashed: pa.Table) -> None:
        """Remember claims given as :func:`hashes` returns them."""
        days, values = _columns(hashed)
        for day in np.unique(days):
            part = values[days == day]
            old = self._by_day.get(day)
            self._by_day[day] = np.sort(part if old is None else np.concatenate([old, part]))

    def _found(self, days: Any, values: Any) -> Any:
        found = np.zeros(len(values), dtype=bool)
        for day in np.unique(days):
            known = self._by_day.get(day)
            if known is None:
                continue
            rows = days == day
            candidates = values[rows]
            positions = np.searchsorted(known, candidates).clip(max=len(known) - 1)
            found[rows] = known[positions] == candidates
        return found

    def already_stored(self, hashed: pa.Table, pending: Sequence[KnownClaims] = ()) -> tuple[pa.Array, pa.Array]:
        """For claims given as :func:`hashes` returns them: a boolean per row true where the warehouse (or
        ``pending``: batches accepted but perhaps not yet committed) has the same keys; and a boolean per row true
        where another row has the same hash (a superset of the rows whose keys repeat: equal keys hash alike)."""
        days, values = _columns(hashed)
        found = self._found(days, values)
        for claims in pending:
            found |= claims._found(days, values)
        distinct, counts = np.unique(values, return_counts=True)
        repeated = np.isin(values, distinct[counts > 1])
        return pa.array(found), pa.array(repeated)
