"""Audit log benchmarks: events/s with 8 concurrent writers, checkpoint latency, proofs at 10 million entries.

Each figure is printed next to a baseline measured in the same process: writers against the same group commit
without the transparency log running; checkpoints against computing the root alone; proofs against reading one
leaf by its key. Run: ``uv run python benchmarks/audit.py [--leaves 10000000] [--seconds 10]`` (SQLite in a
temporary data dir).
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

from sqlalchemy import create_engine, insert

from hygie.audit.checkpointer import start_checkpointer
from hygie.audit.log import TransparencyLog
from hygie.audit.recorder import BatchRecorder
from hygie.audit.storage import (
    AuditLeaf,
    AuditLogState,
    AuditNode,
    append_leaves,
    leaf_hashes,
    state_table,
)
from hygie.db import _sqlite_pragmas
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


def bench_writers(hub: Hub, seconds: float) -> None:
    log = TransparencyLog.for_hub(hub)
    recorder = BatchRecorder(hub.engine)
    t0 = time.perf_counter()
    base = _writers(recorder, seconds)
    base_rate = base / (time.perf_counter() - t0)
    log.sequence()
    checkpointer = start_checkpointer(log, interval=1.0)
    t0 = time.perf_counter()
    n = _writers(recorder, seconds)
    checkpointer.stop()  # its last checkpoint covers every event written: the rate includes sequencing
    elapsed = time.perf_counter() - t0
    recorder.close()
    rate = n / elapsed
    latest = log.latest_checkpoint()
    assert latest is not None and latest.size == log.size() == base + n
    print(
        f"writers: {WRITERS} threads, group commit: {rate:,.0f} events/s recorded, sequenced and checkpointed "
        f"({n:,} events in {elapsed:.1f} s); baseline same inserts without the log {base_rate:,.0f} events/s "
        f"(ratio {rate / base_rate:.2f})"
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
    engine = create_engine(f"sqlite:///{directory / 'big.db'}")
    from sqlalchemy import event

    event.listen(engine, "connect", _sqlite_pragmas)
    for model in (AuditLeaf, AuditNode, AuditLogState):
        model.__table__.create(engine)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    size, chunk, counter = 0, 250_000, 0
    with engine.begin() as conn:
        conn.execute(insert(state_table).values(id=1, size=0, last_event_id=0))
    while size < leaves:
        n = min(chunk, leaves - size)
        rows = [(size + i + 1, hashlib.sha256(b"\x00" + (size + i).to_bytes(8, "big")).digest()) for i in range(n)]
        counter += n
        with engine.begin() as conn:
            size = append_leaves(conn, size, rows)
            conn.execute(state_table.update().values(size=size, last_event_id=size))
    build = time.perf_counter() - t0
    print(
        f"proofs: built {size:,} leaves and their stored subtrees through append_leaves in {build:.0f} s "
        f"({size / build:,.0f} leaves/s); database {os.path.getsize(directory / 'big.db') / 2**20:,.0f} MiB"
    )
    log = TransparencyLog(engine, custody=None)  # type: ignore[arg-type]  (proofs never sign)
    rng = random.Random(1)
    idx = [rng.randrange(size) for _ in range(2000)]
    olds = [rng.randrange(1, size) for _ in range(2000)]
    log.inclusion_proof(0)
    t_inc = _timed(lambda i: log.inclusion_proof(i, size), idx)
    t_con = _timed(lambda m: log.consistency_proof(m, size), olds)

    def lookup(i: int) -> None:
        with engine.connect() as conn:
            leaf_hashes(conn, i, i + 1)

    t_base = _timed(lookup, idx)
    inc_len = len(log.inclusion_proof(idx[0], size).proof)
    con_len = max(len(log.consistency_proof(m, size).proof) for m in olds[:200])
    print(
        f"proofs at {size:,} entries: inclusion {t_inc * 1e6:.0f} µs ({inc_len} hashes, {inc_len * 32} bytes), "
        f"consistency {t_con * 1e6:.0f} µs (up to {con_len} hashes); baseline one leaf read {t_base * 1e6:.0f} µs "
        f"(ratios {t_inc / t_base:.1f} and {t_con / t_base:.1f})"
    )
    t0 = time.perf_counter()
    log.root(size)
    print(f"root at {size:,}: {(time.perf_counter() - t0) * 1e6:.0f} µs")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, SQLite WAL")
    with tempfile.TemporaryDirectory(prefix="hygie-audit-bench-") as tmp:
        directory = Path(tmp)
        hub = Hub.init(make_settings(directory / "hub"))
        bench_writers(hub, args.seconds)
        bench_checkpoint(hub)
        report = TransparencyLog.for_hub(hub).verify()
        print(f"verify: {report.summary()}")
        hub.close()
        bench_proofs(directory, args.leaves)


if __name__ == "__main__":
    main()
