# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The portal under load: capacity of the citizen endpoints that list their data, beside a bare FastAPI endpoint,
then ten times that load; every answer checked.

    uv run python benchmarks/portal.py [--people 2000] [--step-seconds 4] [--overload-seconds 60] [--work DIR]
                                       [--postgres [--workers N]]

Loopback only (127.0.0.1). Setup, in this process: a hub with the synthetic population (``--people`` x 1 year,
ingested), staff accounts, an enrolled citizen and an active project whose view includes them (so "who used my
data" is not trivially empty); the correct answer of each endpoint is taken here, before the server starts.

Then the real app runs under uvicorn in a subprocess (``--serve``), and a bare FastAPI app returning the same JSON
in another (``--serve-bare``), one worker each, access log off; with ``--postgres`` the hub's database is a
throwaway PostgreSQL cluster (fsync on), and ``--workers N`` serves the real app as `hygie serve --workers N`
does. The load generator is a small asyncio HTTP/1.1 client with keep-alive (no third-party client: httpx costs
more CPU than the servers on two cores); it runs on the same cores as the servers.

- capacity: closed loops of 1, 2, 4, ... clients for ``--step-seconds`` each; capacity is the best throughput whose
  p99 stays under 300 ms with only 200s;
- overload: an open loop at 10x that capacity for ``--overload-seconds`` (latency counted from each request's
  scheduled time, so client-side waiting is not hidden): shares of 200 and 503, any other status, p99 of the
  admitted (200) requests, and wrong answers: a 200 whose body differs from the correct answer, or a 503 without
  Retry-After and an explicit detail; and the same run apart from the generator's own queue (it runs on the
  server's cores, at most 1,000 connections, and requests it could not write on schedule wait in it): the p99 of
  that wait, the requests still unwritten when the overload stopped, and the p99 of admitted requests from the
  moment they were written (the figures above are unchanged, comparable with earlier runs);
- recovery: from the end of the overload, the time until 5 requests in a row answer 200, correct, under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hygie.config import Settings

PASSPHRASE = "hygie portal benchmark"
PASSWORD = "a long enough benchmark password"
P99_TARGET = 0.300
KEEP_ALIVE_SECONDS = 5.0
"""How long uvicorn keeps an idle connection open (its default ``timeout_keep_alive``)."""
STEPS = (1, 2, 4, 8, 16, 32)
MAX_CONNECTIONS = 1000
"""Connections the overload may open (each carries one request at a time, as a browser's would)."""


SETTINGS = {"key_passphrase": PASSPHRASE, "kdf_memory_kib": 8192, "kdf_iterations": 1, "kdf_lanes": 1}


def settings_for(data_dir: Path) -> Settings:
    """The hub's settings; PostgreSQL when ``HYGIE_DATABASE_URL`` is set (``--postgres`` sets it)."""
    return Settings(data_dir=data_dir, **SETTINGS)  # type: ignore[arg-type]


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with its durability left as in production (fsync and synchronous_commit on,
    unlike the test suite's); yields the database URL."""
    from tests import postgres

    initdb, pg_ctl = postgres._binary("initdb"), postgres._binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise SystemExit("--postgres: PostgreSQL binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="hygie-bench-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses='' -c max_connections=200"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield postgres.create_database(f"postgresql+psycopg://postgres@/?host={root}&port={port}", "hygie_bench")
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# -- setup (in this process) ---------------------------------------------------------------------------------------


def prepare(work: Path, people: int) -> dict[str, Any]:
    """The hub, its accounts and project, and the correct answers; returns what the load generator needs."""
    from fastapi.testclient import TestClient

    from hygie.governance import credentials
    from hygie.governance.accounts import CONSOLE, Accounts
    from hygie.governance.acts import act
    from hygie.governance.citizens import Citizens
    from hygie.governance.policy import Role
    from hygie.hub import Hub
    from hygie.ingest.pipeline import expand_batches, ingest_batches
    from hygie.portal.app import create_app
    from hygie.synth import generate

    delivery = work / "delivery"
    generate(delivery, people=people, years=1, seed=11, start_year=2024)
    hub = Hub.init(settings_for(work / "hub"))
    for result in ingest_batches(hub, expand_batches([delivery])):
        if result.status != "accepted":
            raise SystemExit(f"batch {result.batch_dir.name} was {result.status}")
    import csv

    with (delivery / "000-beneficiaries" / "IR_BEN_R.csv").open(encoding="utf-8", newline="") as f:
        person = next(csv.DictReader(f))
    secrets: dict[str, bytes] = {}
    with act(hub, CONSOLE, "benchmark.setup") as session:
        accounts = Accounts(session, hub.custody, hub.settings)
        for name, role in (("researcher", Role.RESEARCHER), ("reviewer1", Role.REVIEWER), ("reviewer2", Role.REVIEWER)):
            created = accounts.create(CONSOLE, username=name, role=role, password=PASSWORD, organisation="Benchmark")
            secrets[name] = accounts.totp_secret(created.account)
        Citizens(hub, session).enrol(
            nir=person["BEN_NIR"], last_name=person["NOM"], birth_date=person["DATE_NAISSANCE"],
            username="citizen", password=PASSWORD,
        )  # fmt: skip
    client = TestClient(create_app(hub))

    def token(name: str) -> dict[str, str]:
        totp = credentials.totp_code(secrets[name]) if name in secrets else None
        r = client.post("/auth/login", json={"username": name, "password": PASSWORD, "totp": totp})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    researcher = token("researcher")
    body = {
        "title": "Care use by age",
        "organisation": "Benchmark",
        "purpose": "research",
        "justification": "Measure the portal under load with a project that includes the citizen.",
        "public_summary": "A benchmark project.",
        "scope": {
            "tables": {"IR_BEN_R": ["BEN_SEX_COD", "BEN_NAI_ANN"], "ER_PRS_F": ["EXE_SOI_DTD", "PRS_PAI_MNT"]},
            "population": {"period_start": "2024-01-01", "period_end": "2024-12-31"},
        },
        "duration_days": 180,
    }
    pid = client.post("/projects", json=body, headers=researcher).raise_for_status().json()["id"]
    client.post(f"/projects/{pid}/submit", headers=researcher).raise_for_status()
    for reviewer in ("reviewer1", "reviewer2"):
        decision = {"decision": "approve", "reason": "lawful purpose, minimal scope"}
        client.post(f"/projects/{pid}/decisions", json=decision, headers=token(reviewer)).raise_for_status()
    citizen = token("citizen")
    paths = ["/me/data-uses"] + (
        ["/me/reimbursements"] if "/me/reimbursements" in client.get("/openapi.json").json()["paths"] else []
    )
    correct = {path: client.get(path, headers=citizen).raise_for_status().json() for path in paths}
    if correct["/me/data-uses"]["total"] != 1:
        raise SystemExit("the citizen should be in the project's view; the benchmark would compare empty answers")
    hub.close()
    return {"paths": paths, "correct": correct}


# -- servers (subprocesses) ----------------------------------------------------------------------------------------


def serve(data_dir: Path, port: int, workers: int) -> None:
    if workers > 1:  # as `hygie serve --workers N` does: each process opens the hub from the environment
        os.environ["HYGIE_DATA_DIR"] = str(data_dir)
        os.environ.update({f"HYGIE_{k.upper()}": str(v) for k, v in SETTINGS.items()})
        from hygie.cli import serve as hygie_serve

        hygie_serve(host="127.0.0.1", port=port, workers=workers)
        return
    import uvicorn

    from hygie.hub import Hub
    from hygie.portal.app import create_app
    from hygie.portal.resilience import uvicorn_options

    hub = Hub.open(settings_for(data_dir))
    try:
        uvicorn.run(create_app(hub), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                    **uvicorn_options(hub.settings))  # fmt: skip
    finally:
        hub.close()


def serve_bare(body_file: Path, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    body = json.loads(body_file.read_text())
    app = FastAPI()

    @app.get("/me/data-uses")
    def bare() -> Any:
        return body

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, __file__, *args, "--port", str(port)])
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server {args[0]} exited with {process.returncode}") from None
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server {args[0]} did not start within 60 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


# -- load generator --------------------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.answered = 0
        """Answers read on this connection so far."""
        self.idle_since = time.perf_counter()

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: application/json"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        got: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            got[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(got.get("content-length", "0")))
        self.answered += 1
        self.idle_since = time.perf_counter()
        return status, got, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    """Of 200 answers."""
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    sent_latencies: list[float] = field(default_factory=list)
    """Of 200 answers, from the moment the request was written (open loop): without the generator's own queue."""
    unsent_at_stop: int = 0
    """Open loop: requests issued on schedule but not yet written when the overload stopped (the generator's queue,
    which it still sends after the stop: recovery is timed while they are answered)."""
    waits: list[float] = field(default_factory=list)
    """Open loop: how long each request waited in the generator (for a connection, or for the generator's CPU)
    after its scheduled time, before it was written."""

    def add(
        self, status: int, headers: dict[str, str], body: bytes, correct: Any, latency: float, sent: float = 0.0
    ) -> None:
        self.statuses[status] += 1
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status == 200:
            self.latencies.append(latency)
            if sent:
                self.sent_latencies.append(time.perf_counter() - sent)
            self.wrong += answer != correct
        elif status == 503:
            explicit = isinstance(answer, dict) and answer.get("detail") and "retry_after" in answer
            self.wrong += not (explicit and "retry-after" in headers)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def p99(self, values: list[float] | None = None) -> float:
        values = self.latencies if values is None else values
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def closed_loop(
    port: int, path: str, headers: dict[str, str], correct: Any, clients: int, seconds: float
) -> Tally:
    tally = Tally()
    end = time.perf_counter() + seconds

    async def client() -> None:
        connection = await Connection.open(port)
        try:
            while (started := time.perf_counter()) < end:
                status, got, body = await connection.get(path, headers)
                tally.add(status, got, body, correct, time.perf_counter() - started)
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return tally


async def capacity(
    port: int, path: str, headers: dict[str, str], correct: Any, step_seconds: float
) -> tuple[float, list[str]]:
    best, lines = 0.0, []
    for clients in STEPS:
        tally = await closed_loop(port, path, headers, correct, clients, step_seconds)
        rate = tally.total / step_seconds
        ok = tally.p99() < P99_TARGET and set(tally.statuses) == {200} and tally.wrong == 0
        lines.append(f"| {clients} | {rate:,.0f} | {tally.p99() * 1000:.0f} | {dict(tally.statuses)} | {tally.wrong} |")
        if ok:
            best = max(best, rate)
        elif tally.p99() >= 2 * P99_TARGET:
            break  # past the knee: more clients only queue
    return best, lines


async def open_loop(
    port: int, path: str, headers: dict[str, str], correct: Any, rate: float, seconds: float
) -> tuple[Tally, float, float]:
    """Requests issued on a fixed schedule whatever the answers; returns the tally, the achieved issue rate and the
    recovery time."""
    tally = Tally()
    idle: list[Connection] = []
    opened = unsent = 0
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    tasks: set[asyncio.Task[None]] = set()

    async def one(scheduled: float) -> None:
        nonlocal opened, unsent
        async with slots:
            if idle:
                connection = idle.pop()
            else:
                connection = await Connection.open(port)
                opened += 1
            sent = time.perf_counter()
            unsent -= 1
            tally.waits.append(sent - scheduled)
            try:
                status, got, body = await connection.get(path, headers)
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                # Said apart: a kept-alive connection left idle longer than the server keeps one (uvicorn closes
                # them after 5 s), which a client reusing it sees closed, from any other failure.
                stale = connection.answered and sent - connection.idle_since >= KEEP_ALIVE_SECONDS
                tally.errors[type(exc).__name__ + (" (reused after 5 s idle)" if stale else "")] += 1
                connection.close()
                return
            tally.add(status, got, body, correct, time.perf_counter() - scheduled, sent)
            idle.append(connection)

    start = time.perf_counter()
    issued = 0
    for i in itertools.count():
        scheduled = start + i / rate
        if scheduled >= start + seconds:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        issued += 1
        unsent += 1
    stopped = time.perf_counter()
    achieved = issued / (stopped - start)
    tally.unsent_at_stop = unsent
    # Recovery is timed from the moment the overload stops, while the requests still out are answered.
    recovered, _ = await asyncio.gather(recovery(port, path, headers, correct, stopped), asyncio.gather(*tasks))
    for connection in idle:
        connection.close()
    return tally, achieved, recovered


async def recovery(port: int, path: str, headers: dict[str, str], correct: Any, since: float) -> float:
    """Seconds from ``since`` until 5 requests in a row answer 200, correct, under 300 ms."""
    connection = await Connection.open(port)
    good = 0
    try:
        while good < 5:
            started = time.perf_counter()
            status, _, body = await connection.get(path, headers)
            fine = status == 200 and json.loads(body) == correct and time.perf_counter() - started < P99_TARGET
            good = good + 1 if fine else 0
            if not fine:
                await asyncio.sleep(0.05)
            if time.perf_counter() - since > 120:
                return float("inf")
    finally:
        connection.close()
    return time.perf_counter() - since


async def login(port: int) -> dict[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"username": "citizen", "password": PASSWORD}).encode()
    head = (
        "POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    connection = Connection(reader, writer)
    status_line = await reader.readline()
    got: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        got[name.strip().lower()] = value.strip()
    payload = json.loads(await reader.readexactly(int(got["content-length"])))
    connection.close()
    if int(status_line.split()[1]) != 200:
        raise SystemExit(f"sign-in refused: {payload}")
    return {"Authorization": f"Bearer {payload['token']}"}


# -- main ----------------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average "
            f"{load[0]:.1f} at start (shared with other sessions)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--step-seconds", type=float, default=4.0)
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--paths", nargs="*", help="Only these endpoints (default: all the citizen list endpoints).")
    parser.add_argument("--work", type=Path, default=None, help="Work folder (a temporary one by default).")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (above 1: needs --postgres).")
    parser.add_argument(
        "--postgres", action="store_true", help="The hub's database in a throwaway PostgreSQL cluster (fsync on)."
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers)
        return
    if args.serve_bare:
        serve_bare(args.serve_bare, args.port)
        return
    if args.workers > 1 and not args.postgres:
        raise SystemExit("--workers above 1 needs --postgres: SQLite serves one process")
    with postgres_cluster() if args.postgres else nullcontext(None) as url:
        if url is not None:
            os.environ["HYGIE_DATABASE_URL"] = url  # this process and the servers it starts
        run(args)


def run(args: argparse.Namespace) -> None:
    if args.work is not None:
        measure(args, args.work)
        return
    work = Path(tempfile.mkdtemp(prefix="hygie-portal-bench-"))
    try:
        measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # its hub, keys and synthetic deliveries: nothing to keep


def measure(args: argparse.Namespace, work: Path) -> None:
    print(f"# portal benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()}", flush=True)
    database = "PostgreSQL (fsync on)" if args.postgres else "SQLite (WAL, synchronous=FULL)"
    print(f"# servers: {args.workers} process(es) over {database}; the load generator runs on the same cores")
    started = time.perf_counter()
    known = prepare(work, args.people)
    print(
        f"setup ({args.people:,} people, ingest, accounts, project): {time.perf_counter() - started:.0f} s", flush=True
    )
    (work / "bare.json").write_text(json.dumps(known["correct"]["/me/data-uses"]))

    bare_port = free_port()
    bare = start(["--serve-bare", str(work / "bare.json")], bare_port)
    try:
        base, lines = asyncio.run(
            capacity(bare_port, "/me/data-uses", {}, known["correct"]["/me/data-uses"], args.step_seconds)
        )
    finally:
        stop(bare)
    print("\nbare FastAPI endpoint (same JSON, no auth, no database):")
    print("| clients | requests/s | p99 ms | statuses | wrong |\n|---|---|---|---|---|\n" + "\n".join(lines))
    print(f"baseline capacity (p99 < 300 ms): {base:,.0f} requests/s", flush=True)

    port = free_port()
    server = start(["--serve", str(work / "hub"), "--workers", str(args.workers)], port)
    try:
        for path in args.paths or known["paths"]:
            correct = known["correct"][path]
            headers = asyncio.run(login(port))
            first = asyncio.run(closed_loop(port, path, headers, correct, 1, 0.01))
            if first.wrong:
                # Several sessions edit this working tree: the server may run newer code than the setup did.
                raise SystemExit(f"GET {path}: the server's answer differs from the one taken at setup; run again")
            cap, lines = asyncio.run(capacity(port, path, headers, correct, args.step_seconds))
            print(f"\nGET {path} (sign-in token, audit event per read):")
            print("| clients | requests/s | p99 ms | statuses | wrong |\n|---|---|---|---|---|\n" + "\n".join(lines))
            print(f"capacity (p99 < 300 ms): {cap:,.0f} requests/s ({cap / base:.2f} of the bare endpoint)", flush=True)

            if cap == 0:  # the target is missed at one client already: overload at 10x what one client got
                cap = float(lines[0].split("|")[2].replace(",", ""))
                print(f"p99 target missed even with one client; overloading from {cap:,.0f} requests/s", flush=True)
            rate = 10 * max(cap, 1.0)
            tally, achieved, recovered = asyncio.run(
                open_loop(port, path, headers, correct, rate, args.overload_seconds)
            )
            share = {s: f"{100 * n / max(1, tally.total):.1f} %" for s, n in sorted(tally.statuses.items())}
            others = {s: n for s, n in tally.statuses.items() if s not in (200, 503)}
            print(f"overload {args.overload_seconds:.0f} s at {rate:,.0f} requests/s asked ({achieved:,.0f} issued): "
                  f"{tally.total:,} answers {share}; other statuses {others or 'none'}; connection errors "
                  f"{dict(tally.errors) or 'none'}; p99 of admitted {tally.p99() * 1000:.0f} ms; wrong answers "
                  f"{tally.wrong}; recovered {recovered:.2f} s after the overload stopped", flush=True)  # fmt: skip
            # The same run seen apart from the generator's own queue (it shares the cores with the server): how
            # long requests waited in it before being written, how many were still unsent when the overload
            # stopped, and the p99 of admitted requests from the moment they were written.
            print(f"  generator: p99 wait before writing {tally.p99(tally.waits) * 1000:.0f} ms, "
                  f"{tally.unsent_at_stop:,} unsent at the stop; p99 of admitted from writing "
                  f"{tally.p99(tally.sent_latencies) * 1000:.0f} ms", flush=True)  # fmt: skip
    finally:
        stop(server)


if __name__ == "__main__":
    main()
