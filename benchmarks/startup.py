# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Start-up of the command line as a new user meets it: ``hygie --help`` and the time until ``hygie serve`` answers,
beside ``python -c pass`` (the interpreter's own start-up, the floor), several runs each, medians side by side.

    uv run python benchmarks/startup.py [--runs 7] [--work DIR]

Every run is a fresh process started the way a user starts it: the ``hygie`` entry point of this environment (the
one ``uv run hygie`` and an installed package run), so the figures include the interpreter, the imports and, for
``serve``, opening the hub (the keystore's key derivation with the default settings, the database) and uvicorn's
start. ``serve`` runs on a throwaway hub made once by ``hygie init`` in a temporary directory; its time is from
process start to the first ``200`` of ``GET /healthz`` (polled every 10 ms on loopback), then the server is stopped
(SIGINT, as Ctrl-C) and the next run starts. ``import hygie.cli`` is shown too: the part of ``--help`` the CLI's own
imports cost.

Never a test: timings depend on the machine and its load (say which in the report, with ``benchmarks/machine.py``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HELP_TARGET = 0.5
SERVE_TARGET = 3.0
PASSPHRASE = "hygie start-up benchmark passphrase"


def entry_point() -> Path:
    """The ``hygie`` script installed beside this interpreter (what ``uv run hygie`` starts)."""
    script = Path(sys.executable).parent / "hygie"
    if not script.exists():
        raise SystemExit(f"no hygie entry point beside {sys.executable}: run `uv sync` first")
    return script


Timing = tuple[float, float]
"""Wall-clock seconds, and CPU seconds (user + system) the process used: on a shared machine the wall clock
includes waiting for a core, the CPU time much less so."""


def timed_run(argv: list[str], env: dict[str, str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) of a running process so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def serve_once(hygie: Path, env: dict[str, str], timeout: float = 120.0) -> Timing:
    """Seconds from starting ``hygie serve`` to its first answer on /healthz, and the CPU it used until then."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(hygie), "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        while True:
            if answers(port):
                return time.perf_counter() - start, cpu_seconds(proc.pid)
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise SystemExit(f"hygie serve exited ({proc.returncode}) before answering: {stderr}")
            if time.perf_counter() - start > timeout:
                raise SystemExit(f"hygie serve did not answer within {timeout:.0f} s")
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def series(runs: int, once: Callable[[], Timing]) -> list[Timing]:
    once()  # one warm-up run: the page cache holds the files a user's second start would find there too
    return [once() for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="Timed runs of each command (after one warm-up).")
    parser.add_argument("--work", type=Path, help="Where to make the throwaway hub (default: a temporary dir).")
    args = parser.parse_args()

    hygie = entry_point()
    with tempfile.TemporaryDirectory(prefix="hygie-startup-", dir=args.work) as tmp:
        env = {
            **os.environ,
            "HYGIE_DATA_DIR": str(Path(tmp) / "hub"),
            "HYGIE_KEY_PASSPHRASE": PASSPHRASE,
            "HYGIE_LOG_LEVEL": "WARNING",
        }
        env.pop("HYGIE_KEY_FILE", None)
        env.pop("HYGIE_DATABASE_URL", None)
        init_seconds, _ = timed_run([str(hygie), "init"], env)

        rows: list[tuple[str, list[Timing], float | None]] = [
            ("python -c pass", series(args.runs, lambda: timed_run([sys.executable, "-c", "pass"], env)), None),
            (
                "python -c 'import hygie.cli'",
                series(args.runs, lambda: timed_run([sys.executable, "-c", "import hygie.cli"], env)),
                None,
            ),
            ("hygie --help", series(args.runs, lambda: timed_run([str(hygie), "--help"], env)), HELP_TARGET),
            ("hygie serve -> first answer", series(args.runs, lambda: serve_once(hygie, env)), SERVE_TARGET),
        ]

    print(f"# hygie start-up, {args.runs} runs each after one warm-up; {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"(hygie init on the throwaway hub: {init_seconds:.2f} s, once)")
    print(f"{'command':32} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7} {'target s':>9}  verdict")
    for name, timings, target in rows:
        walls = [wall for wall, _ in timings]
        median = statistics.median(walls)
        cpu = statistics.median(cpu for _, cpu in timings)
        verdict = "" if target is None else ("met" if median < target else "NOT met")
        shown = "" if target is None else f"{target:.2f}"
        print(f"{name:32} {median:9.3f} {min(walls):7.3f} {max(walls):7.3f} {cpu:7.3f} {shown:>9}  {verdict}")
    print("(median s, min s, max s: wall clock; CPU s: median CPU time, user + system, of the measured process)")


if __name__ == "__main__":
    main()
