# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Graceful shutdown: on SIGTERM the server drains before it stops.

Draining: /readyz answers 503 (a load balancer stops sending traffic), new requests get a 503 with Retry-After, and
the requests in flight finish. When none is left (or after ``drain_seconds``) uvicorn's own shutdown takes over; it
waits ``shutdown_grace_seconds`` (its ``timeout_graceful_shutdown``) for open connections. A second signal stops at
once, as uvicorn does.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog

from hygie.config import Settings

log = structlog.get_logger("hygie.portal.resilience")

Handler = Callable[[int, FrameType | None], Any]


class Drain:
    def __init__(self, drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        self.draining = False
        self.in_flight = 0
        """Requests admitted and not yet finished (including those answered 503 past their deadline but still
        running: they hold their slot until their work ends)."""
        self._restore: dict[int, Handler] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if not self.draining:
            self.draining = True
            log.info("draining", in_flight=self.in_flight)

    async def idle(self, timeout: float) -> bool:
        """Wait until no request is in flight; False if some still are after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self.in_flight > 0:
            if time.monotonic() >= end:
                return False
            await asyncio.sleep(0.05)
        return True

    def hook_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put draining in front of the server's own SIGTERM/SIGINT handlers (uvicorn's, installed before the
        lifespan starts). Does nothing off the main thread (tests) or when no server handler is installed."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue
            self._restore[sig] = previous
            signal.signal(sig, self._handler(loop, previous))

    def unhook_signals(self) -> None:
        for sig, previous in self._restore.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(sig, previous)
        self._restore.clear()

    def _handler(self, loop: asyncio.AbstractEventLoop, previous: Handler) -> Handler:
        def handle(signum: int, frame: FrameType | None) -> None:
            if self.draining:
                previous(signum, frame)  # a second signal: stop now
                return
            self.start()

            async def then_stop() -> None:
                finished = await self.idle(self.drain_seconds)
                if not finished:
                    log.warning("drain incomplete, stopping anyway", in_flight=self.in_flight)
                previous(signum, frame)

            def schedule() -> None:
                task = loop.create_task(then_stop())
                self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
                task.add_done_callback(self._tasks.discard)

            loop.call_soon_threadsafe(schedule)

        return handle


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Options for ``uvicorn.run`` / ``uvicorn.Config``: those that go with draining (see the module docstring), and
    the compiled HTTP parser and event loop (httptools, uvloop; dependencies of the project). uvicorn's pure-Python
    parser (h11) and asyncio's loop cost most of what a refusal costs: at ten times the citizens' capacity the
    process spent its core parsing requests and writing 503s, and admitted reads waited seconds behind them
    (docs/benchmarks.md, "Portal under load")."""
    return {"timeout_graceful_shutdown": settings.shutdown_grace_seconds, "http": "httptools", "loop": "uvloop"}
