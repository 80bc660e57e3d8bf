# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Matching a large leak on several cores: rows split into contiguous slices, one forked process per slice.

Matching a row only reads the vault and the blocking index, and rows are independent, so slices need no
coordination. Workers are forked (not spawned): they inherit key custody already unlocked — spawning would
run the passphrase's Argon2 derivation again in each — and the leak's rows, which thus never travel through a
pipe or a file. Each worker opens its own database connections (the parent's pool is discarded in the child
without being closed, so the parent's connections stay usable) and hands back only the outcomes: statuses,
confidences, blind indexes, never a value of the leak.

Workers read what is committed: the caller uses them only when its own transaction has not changed the
blocking index (see ``Incidents._match``).
"""

from __future__ import annotations

import multiprocessing
import time
from collections import defaultdict
from dataclasses import dataclass

from hygie.breach.mapping import Column
from hygie.breach.matcher import Matcher, Outcome, RowParser
from hygie.hub import Hub
from hygie.identity.pseudonym import Pseudonymiser
from hygie.identity.vault import IdentityVault


@dataclass
class _Job:
    hub: Hub
    columns: list[Column]
    rows: list[list[str]]
    threshold: float
    chunk: int


_JOB: _Job | None = None
"""Set in the parent just before forking: children read it from their copy of memory."""


def available() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _start_worker() -> None:
    assert _JOB is not None
    _JOB.hub.engine.dispose(close=False)  # the parent's connections belong to the parent


def _match_slice(bounds: tuple[int, int]) -> tuple[list[Outcome], dict[str, float]]:
    assert _JOB is not None
    job = _JOB
    first, last = bounds
    with job.hub.session() as session:
        pseudonymiser = Pseudonymiser(job.hub.custody)
        vault = IdentityVault(session, job.hub.custody, pseudonymiser)
        matcher = Matcher(session, job.hub.custody, vault, pseudonymiser, job.threshold)
        parse = RowParser(job.columns)
        outcomes: list[Outcome] = []
        parsing = 0.0
        for start in range(first, last, job.chunk):
            clock = time.perf_counter()
            parsed = parse.parse(start + 1, job.rows[start : min(start + job.chunk, last)])
            parsing += time.perf_counter() - clock
            outcomes += matcher.match(parsed)
        session.rollback()
    return outcomes, {"map": parsing, **matcher.timings}


def match(hub: Hub, columns: list[Column], rows: list[list[str]], threshold: float, workers: int,
          chunk: int) -> tuple[list[Outcome], dict[str, float]]:  # fmt: skip
    """Outcomes of every row in order, and the phases' seconds summed over workers (so, more than wall time)."""
    global _JOB
    size = -(-len(rows) // workers)
    bounds = [(start, min(start + size, len(rows))) for start in range(0, len(rows), size)]
    _JOB = _Job(hub, columns, rows, threshold, chunk)
    try:
        with multiprocessing.get_context("fork").Pool(len(bounds), initializer=_start_worker) as pool:
            results = pool.map(_match_slice, bounds)
    finally:
        _JOB = None
    outcomes: list[Outcome] = []
    timings: dict[str, float] = defaultdict(float)
    for part, spent in results:
        outcomes += part
        for phase, seconds in spent.items():
            timings[phase] += seconds
    return outcomes, dict(timings)
