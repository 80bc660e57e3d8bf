# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Audit log benchmarks: events/s with 8 concurrent writers, checkpoint latency, proofs at 10 million entries.

Each figure is printed next to a baseline measured in the same process: writers against the same group commit
inserting the events only (no leaves, no subtrees, no checkpoints), runs alternated; checkpoints against computing
the root alone; proofs against reading one leaf by its key on the same kind of connection, and against the
previous read path (SQLAlchemy, one query per piece). The 10-million-entry tree is built through the storage
layer's own append path (:func:`hygie.audit.storage.appending`), the one the recorder and the sequencer use.
Run: ``uv run python benchmarks/audit.py [--leaves 10000000] [--seconds 8]`` (SQLite in a temporary data dir).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from sqlalchemy import insert, text

from hygie.audit import merkle
from hygie.audit.checkpointer import start_checkpointer
from hygie.audit.log import TransparencyLog
from hygie.audit.recorder import BatchRecorder
from hygie.audit.storage import (
    AuditLeaf,
    AuditLogState,
    AuditNode,
    Frontier,
    StoredTree,
    appending,
    reading,
    shared,
    state_table,
)
from hygie.db import make_engine
from hygie.hub import Hub
from tests.conftest import make_settings

WRITERS = 8
WINDOW = 256
"""Events a writer keeps in flight (as a server thread serving many requests would), waiting on the oldest."""


def _writers(recorder: BatchRecorder, seconds: float) -> int:
    stop = time.monotonic() + seconds
    counts = [0] * WRITERS

    def run(t: int) -> None:
        inflight: list[Future[None]] = []
        while time.monotonic() < stop:
            inflight.append(
                recorder.submit(
                    actor=f"account:{t}",
                    role="analyst",
                    action="query.run",
                    object=f"view:{t}",
                    project_id=t,
                    purpose="research",
                    detail={"rows": counts[t]},
                )
            )
            if len(inflight) >= WINDOW:
                inflight.pop(0).result()
                counts[t] += 1
        for f in inflight:
            f.result()
            counts[t] += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts)


def bench_writers(hub: Hub, seconds: float, rounds: int) -> None:
    log = TransparencyLog.for_hub(hub)
    plain_recorder = BatchRecorder(hub.engine, sequence=False)
    recorder = BatchRecorder(hub.engine)
    rates: list[float] = []
    base_rates: list[float] = []
    cpu: list[float] = []
    base_cpu: list[float] = []
    for r in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        n = _writers(plain_recorder, seconds)
        base_rates.append(n / (time.perf_counter() - t0))
        base_cpu.append((time.process_time() - c0) / n)
        log.sequence()  # the baseline's events get their leaves outside the measured run
        before = log.size()
        checkpointer = start_checkpointer(log, interval=1.0)
        t0, c0 = time.perf_counter(), time.process_time()
        n = _writers(recorder, seconds)
        checkpointer.stop()  # its last checkpoint covers every event written: the rate includes it
        elapsed = time.perf_counter() - t0
        rates.append(n / elapsed)
        cpu.append((time.process_time() - c0) / n)
        latest = log.latest_checkpoint()
        assert latest is not None and latest.size == log.size() == before + n
        print(
            f"  round {r + 1}: {rates[-1]:,.0f} events/s recorded, sequenced and checkpointed ({n:,} events in "
            f"{elapsed:.1f} s, {log.size():,} in the log, {cpu[-1] * 1e6:.0f} µs CPU each); baseline inserts only "
            f"{base_rates[-1]:,.0f} events/s ({base_cpu[-1] * 1e6:.0f} µs CPU each); "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    plain_recorder.close()
    recorder.close()
    rate, base_rate = statistics.median(rates), statistics.median(base_rates)
    print(
        f"writers: {WRITERS} threads, group commit, sequencing in the commit, checkpoints every 1 s: {rate:,.0f} "
        f"events/s (median of {rounds}); baseline same inserts without the log {base_rate:,.0f} events/s "
        f"(ratio {rate / base_rate:.2f}); process CPU per event {statistics.median(cpu) * 1e6:.0f} µs vs "
        f"{statistics.median(base_cpu) * 1e6:.0f} µs (ratio {statistics.median(cpu) / statistics.median(base_cpu):.2f})"
    )

    def plain(t: int, stop: float, counts: list[int]) -> None:
        from hygie.audit import record

        while time.monotonic() < stop:
            with hub.session() as session:
                record(session, actor=f"account:{t}", action="query.run", detail={"i": counts[t]})
                session.commit()
            counts[t] += 1

    counts = [0] * WRITERS
    stop = time.monotonic() + min(seconds, 3)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=plain, args=(t, stop, counts)) for t in range(WRITERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(
        f"writers: {WRITERS} threads, record() + commit each (one fsync per event): "
        f"{sum(counts) / (time.perf_counter() - t0):,.0f} events/s"
    )


def bench_checkpoint(hub: Hub) -> None:
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine)
    times, roots = [], []
    for _ in range(20):
        for _ in range(100):
            recorder.submit(actor="system", action="bench")
        recorder.record(actor="system", action="bench")
        log.sequence()
        t0 = time.perf_counter()
        log.root()
        roots.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        log.checkpoint()
        times.append(time.perf_counter() - t0)
    recorder.close()
    cp, rt = statistics.median(times), statistics.median(roots)
    print(
        f"checkpoint: {cp * 1e3:.2f} ms median (sign + store, log of {log.size():,}); "
        f"baseline root alone {rt * 1e3:.3f} ms (ratio {cp / rt:.1f})"
    )


def _timed(fn: Callable[[int], object], args: list[int]) -> float:
    t0 = time.perf_counter()
    for a in args:
        fn(a)
    return (time.perf_counter() - t0) / len(args)


def bench_proofs(directory: Path, leaves: int) -> None:
    settings = make_settings(directory / "big")
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings)  # the pragmas of the hub: WAL, synchronous=FULL
    for model in (AuditLeaf, AuditNode, AuditLogState):
        model.__table__.create(engine)  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(insert(state_table).values(id=1, size=0, last_event_id=0))
    t0 = time.perf_counter()
    size, chunk = 0, 250_000
    check = Frontier()  # an independent right edge, to check the stored tree's root at the end
    while size < leaves:
        n = min(chunk, leaves - size)
        sha = hashlib.sha256
        rows = [(size + i + 1, sha(b"\x00" + (size + i).to_bytes(8, "big")).digest(), None) for i in range(n)]
        with appending(engine) as log_writer:
            log_writer.lock_state()
            size = log_writer.append(rows)
        check.push_all(h for _, h, _ in rows)
    build = time.perf_counter() - t0
    print(
        f"proofs: built {size:,} leaves and their stored subtrees through the storage append path in {build:.0f} s "
        f"({size / build:,.0f} leaves/s); database {os.path.getsize(settings.data_dir / 'hygie.db') / 2**20:,.0f} MiB"
    )
    with engine.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    log = TransparencyLog(engine, custody=None)  # type: ignore[arg-type]  (proofs never sign)
    assert log.root(size) == check.root()
    rng = random.Random(1)
    idx = [rng.randrange(size) for _ in range(3000)]
    olds = [rng.randrange(1, size) for _ in range(3000)]
    root = log.root(size)
    for i in idx[:50]:
        p = log.inclusion_proof(i, size)
        assert merkle.verify_inclusion(p.leaf_hash, i, size, p.proof, root)
    for m in olds[:50]:
        c = log.consistency_proof(m, size)
        assert merkle.verify_consistency(m, size, c.old_root, root, c.proof)

    def lookup(i: int) -> None:
        with reading(engine) as dbapi:
            cur = dbapi.cursor()
            cur.execute("SELECT leaf_hash FROM audit_leaf WHERE leaf_index = ?", (i,))
            cur.fetchone()

    def uncached(i: int) -> None:
        shared(engine).nodes.clear()
        log.inclusion_proof(i, size)

    def previous(i: int) -> None:  # the read path before this change: SQLAlchemy, one query per piece
        with engine.connect() as conn:
            ranges = merkle.inclusion_ranges(i, size)
            merkle.range_hashes(StoredTree(conn), [*ranges, (0, size), (i, i + 1)])

    # Interleave the measured paths in slices so that load from other work on the machine hits them alike.
    totals = {"inclusion": 0.0, "consistency": 0.0, "lookup": 0.0, "uncached": 0.0, "previous": 0.0}
    for s in range(0, len(idx), 500):
        totals["lookup"] += _timed(lookup, idx[s : s + 500])
        totals["inclusion"] += _timed(lambda i: log.inclusion_proof(i, size), idx[s : s + 500])
        totals["consistency"] += _timed(lambda m: log.consistency_proof(m, size), olds[s : s + 500])
        totals["uncached"] += _timed(uncached, idx[s : s + 500])
        totals["previous"] += _timed(previous, idx[s : s + 500])
    slices = len(range(0, len(idx), 500))
    t_inc, t_con, t_base, t_unc, t_prev = (totals[k] / slices for k in totals)
    inc_len = len(log.inclusion_proof(idx[0], size).proof)
    con_len = max(len(log.consistency_proof(m, size).proof) for m in olds[:200])
    print(
        f"proofs at {size:,} entries ({len(idx):,} random each): inclusion {t_inc * 1e6:.0f} µs ({inc_len} hashes, "
        f"{inc_len * 32} bytes), consistency {t_con * 1e6:.0f} µs (up to {con_len} hashes, {con_len * 32} bytes); "
        f"baseline one leaf read by key {t_base * 1e6:.0f} µs (ratios {t_inc / t_base:.1f} and {t_con / t_base:.1f})"
    )
    print(
        f"proofs at {size:,} entries: inclusion with the subtree cache emptied before each {t_unc * 1e6:.0f} µs "
        f"(ratio {t_unc / t_base:.1f}); previous read path {t_prev * 1e6:.0f} µs (ratio {t_prev / t_base:.1f})"
    )
    t0 = time.perf_counter()
    log.root(size)
    print(f"root at {size:,}: {(time.perf_counter() - t0) * 1e6:.0f} µs")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite WAL")
    with tempfile.TemporaryDirectory(prefix="hygie-audit-bench-") as tmp:
        directory = Path(tmp)
        hub = Hub.init(make_settings(directory / "hub"))
        bench_writers(hub, args.seconds, args.rounds)
        bench_checkpoint(hub)
        report = TransparencyLog.for_hub(hub).verify()
        print(f"verify: {report.summary()}")
        hub.close()
        if args.leaves > 0:  # --leaves 0: writers and checkpoints only
            bench_proofs(directory, args.leaves)


if __name__ == "__main__":
    main()
