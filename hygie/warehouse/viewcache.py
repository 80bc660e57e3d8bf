# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Decrypted project views kept in this process's memory between runs: never on disk, bounded, short-lived.

Every analysis run used to decrypt and decode the view's Parquet files again (on 55 million care rows, most of a
query's time beyond plain DuckDB's). A view generation never changes once built, so its tables can be read once and
scanned from memory by later runs' sandboxed connections (each run still gets a fresh, locked connection; the
tables are registered read-only, as Arrow).

Bounds, because these are decrypted health data:

- memory only: Arrow buffers of this process, never a file (no spill, no temp directory);
- a budget (``analysis_view_cache_mb``): a view whose decoded size, read from its files' footers before anything
  is decrypted, exceeds the budget is not cached (its runs stream from the encrypted files, as before); older views
  are evicted first to make room;
- idle expiry (``analysis_view_cache_idle_seconds``): a view nobody read for that long is dropped, by a sweeper
  thread, not only at the next access;
- dropped when its project's view is destroyed (:func:`hygie.governance.views.destroy_view`) and when the hub is
  closed. Keys name the files by path, inode, size and modification time: a file replaced or rewritten (key
  rotation, a restore) is a different entry, never the old contents.

Who may read a view is decided before any lookup (the same gates as without the cache): the cache only saves the
decryption.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


def machine_memory_bytes() -> int:
    """Physical memory of this machine (the default budget is a share of it)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass
class _Entry:
    project_id: int
    tables: dict[str, pa.Table]
    size: int
    used: float


class ViewCache:
    """Least-recently-used decrypted views within a byte budget; thread-safe."""

    def __init__(self, budget_bytes: int, idle_seconds: float) -> None:
        self.budget = max(0, budget_bytes)
        self.idle_seconds = idle_seconds
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._sweeper: threading.Thread | None = None
        self._drops: dict[int, int] = {}
        """Per project, how many times its views were dropped: a load that began before a drop is not kept."""
        self._closed = threading.Event()
        self._attached: dict[tuple[int, str], list[Any]] = {}
        """Per (project, name): [object, last use] (:meth:`attached`)."""

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    @property
    def size(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values())

    def tables(
        self,
        key: Hashable,
        project_id: int,
        estimate: Callable[[], int],
        load: Callable[[], dict[str, pa.Table]],
    ) -> dict[str, pa.Table] | None:
        """The view's tables from memory, loading them once (``load``) if ``estimate`` (bytes, decoded) fits the
        budget; None when the view is not to be cached (the caller streams from the files)."""
        if not self.enabled or self._closed.is_set():
            return None
        found = self._get(key)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per view at a time: a second run waits for the first's tables
            with self._lock:
                drops = self._drops.get(project_id, 0)
            try:
                found = self._get(key)
                if found is not None:
                    return found
                expected = estimate()
                if expected > self.budget:
                    return None
                self._make_room(expected)
                tables = load()
                size = sum(t.nbytes for t in tables.values())
                with self._lock:
                    # A view destroyed (or the hub closed) while it was being read is not kept.
                    keep = size <= self.budget and self._drops.get(project_id, 0) == drops and not self._closed.is_set()
                    if keep:
                        self._entries[key] = _Entry(project_id, tables, size, time.monotonic())
                if keep:
                    self._make_room(0)
                    self._start_sweeper()
                    log.info("view.cache.load", project=project_id, bytes=size)
                return tables
            finally:
                with self._lock:
                    self._loading.pop(key, None)

    def attached(self, project_id: int, name: str, make: Callable[[], T]) -> T | None:
        """A per-project object derived from the project's decrypted data (the release ledger's unsealed entries,
        record keys), with the views' drop points: memory only, dropped when the project's views are dropped
        (destroyed), after the same idle expiry and at close; None when the cache is off (the caller works without
        it). Not counted in the budget, and not evicted with a view that makes room for another: small beside the
        views (the ledger's signatures: 16 bytes per person)."""
        if not self.enabled or self._closed.is_set():
            return None
        with self._lock:
            if self._closed.is_set():  # closed since the check above: nothing may be kept any more
                return None
            slot = self._attached.get((project_id, name))
            if slot is None:
                slot = self._attached[(project_id, name)] = [make(), time.monotonic()]
            slot[1] = time.monotonic()
            found: T = slot[0]
        self._start_sweeper()
        return found

    def _get(self, key: Hashable) -> dict[str, pa.Table] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.used = time.monotonic()
            self._entries.move_to_end(key)
            return entry.tables

    def _make_room(self, incoming: int) -> None:
        with self._lock:
            while self._entries and sum(e.size for e in self._entries.values()) + incoming > self.budget:
                self._entries.popitem(last=False)

    def drop_project(self, project_id: int) -> None:
        """Forget every view of a project (its view was destroyed)."""
        with self._lock:
            self._drops[project_id] = self._drops.get(project_id, 0) + 1
            for key in [k for k, e in self._entries.items() if e.project_id == project_id]:
                del self._entries[key]
            for slot in [k for k in self._attached if k[0] == project_id]:
                del self._attached[slot]

    def sweep(self, now: float | None = None) -> None:
        """Drop views idle for longer than the expiry."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.used > self.idle_seconds]:
                del self._entries[key]
            for slot in [k for k, (_, used) in self._attached.items() if now - used > self.idle_seconds]:
                del self._attached[slot]

    def clear(self) -> None:
        self._closed.set()
        with self._lock:
            self._entries.clear()
            self._attached.clear()

    def _start_sweeper(self) -> None:
        with self._lock:
            if self._sweeper is not None:  # it clears this under the lock before it stops
                return
            self._sweeper = threading.Thread(target=self._sweep_while_held, name="hygie-view-cache", daemon=True)
            self._sweeper.start()

    def _sweep_while_held(self) -> None:
        period = max(1.0, self.idle_seconds / 4)
        while not self._closed.wait(period):
            self.sweep()
            with self._lock:
                if not self._entries and not self._attached:
                    self._sweeper = None
                    return
