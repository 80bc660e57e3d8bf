# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Circuit breakers, one per dependency: after a run of failures, answer 503 at once instead of piling requests onto a
dependency that is down; after a pause, probe it (half-open) and close again if it answers.

Failures and successes are reported from worker threads (database events) and from the event loop (the middleware),
hence the lock. The probe is a real call (``SELECT 1``, a DuckDB query over the warehouse directory) with a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

import structlog

from hygie.portal.resilience.classes import Dependency

log = structlog.get_logger("hygie.portal.resilience")

# Probes run on their own threads so that a hung dependency never takes the request workers.
_probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hygie-probe")


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half-open"
    OPEN = "open"


STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


async def probe(check: Callable[[], None], seconds: float) -> str | None:
    """Run a blocking check with a deadline; None when it passed, else what went wrong (for logs and /readyz)."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(_probes, check), seconds)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except Exception as exc:
        # Any failure of the dependency makes it not ready; its type is the news (messages may quote data).
        return type(exc).__name__
    return None


class Breaker:
    def __init__(
        self,
        dependency: Dependency,
        check: Callable[[], None],
        *,
        failures: int,
        open_seconds: float,
        probe_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dependency = dependency
        self.check = check
        self.threshold = failures
        self.open_seconds = open_seconds
        self.probe_seconds = probe_seconds
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened = 0
        """How many times this breaker opened (a metric)."""
        self._opened_at = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.state is BreakerState.CLOSED and self.failures >= self.threshold:
                self._open()

    def success(self) -> None:
        with self._lock:
            if self.state is BreakerState.CLOSED:
                self.failures = 0

    def _open(self) -> None:
        self.state = BreakerState.OPEN
        self._opened_at = self.clock()
        self.opened += 1
        log.warning("breaker open", dependency=str(self.dependency), failures=self.failures)

    async def allow(self) -> bool:
        """Whether a request may use the dependency now. When an open breaker's pause is over, the first request to
        ask probes the dependency (half-open) and goes ahead if the probe passes; the others are refused meanwhile."""
        with self._lock:
            if self.state is BreakerState.CLOSED:
                return True
            if self._probing or self.clock() < self._opened_at + self.open_seconds:
                return False
            self._probing = True
            self.state = BreakerState.HALF_OPEN
        problem = await probe(self.check, self.probe_seconds)
        with self._lock:
            self._probing = False
            if problem is None:
                self.state = BreakerState.CLOSED
                self.failures = 0
                log.info("breaker closed", dependency=str(self.dependency))
                return True
            self._open()
            log.warning("breaker probe failed", dependency=str(self.dependency), problem=problem)
            return False
