# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Admission control: per class of route, a bounded number of requests in progress and a short queue with a deadline.

Beyond the queue, or past the deadline, a request is refused at once (a 503 with Retry-After) rather than left to
pile up: a refused client knows where it stands; a client waiting minutes does not. Citizens' capacity is their
own, and research work is refused while citizens wait, so heavy analyses are the first thing the portal sheds.

All of this runs on the event loop thread (no locks): the middleware admits before the route runs in its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from hygie.config import AdmissionLimits, Settings
from hygie.portal.resilience.classes import RouteClass, limits


class Shed(Exception):
    """A request refused at the door; nothing of it ran."""

    def __init__(self, route_class: RouteClass, reason: str, retry_after: int) -> None:
        super().__init__(f"{route_class} requests at capacity ({reason})")
        self.route_class = route_class
        self.reason = reason
        """"queue full", "queue deadline" or "citizens first" (a metrics label)."""
        self.retry_after = retry_after


class Gate:
    """One class's slots and queue. A released slot goes straight to the oldest waiter (first come, first served)."""

    def __init__(self, route_class: RouteClass, limits: AdmissionLimits) -> None:
        self.route_class = route_class
        self.limits = limits
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _shed(self, reason: str) -> Shed:
        return Shed(self.route_class, reason, self.limits.retry_after_seconds)

    async def enter(self, *, may_wait: bool = True) -> None:
        if self.active < self.limits.concurrency and not self._waiters:
            self.active += 1
            return
        if not may_wait:
            raise self._shed("citizens first")
        if len(self._waiters) >= self.limits.queue:
            raise self._shed("queue full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.limits.wait_seconds):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot arrived as the deadline passed: it is ours
            self._forget(waiter)
            raise self._shed("queue deadline") from None
        except asyncio.CancelledError:
            # The client went away while waiting: hand back a slot we may have just been given.
            if waiter.done() and not waiter.cancelled():
                self.leave()
            else:
                self._forget(waiter)
            raise

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):  # already handed a slot and removed
            self._waiters.remove(waiter)

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on; ``active`` is unchanged
                return
        self.active -= 1


class Admission:
    def __init__(self, settings: Settings) -> None:
        self.gates = {c: Gate(c, limits(settings, c)) for c in RouteClass}
        self.research_yields = settings.research_yields_to_citizens

    async def enter(self, route_class: RouteClass) -> Gate:
        """Wait for a slot of the class (or raise :class:`Shed`); the caller must ``leave()`` the returned gate."""
        gate = self.gates[route_class]
        citizens_waiting = self.gates[RouteClass.CITIZEN].queued > 0
        yields = route_class is RouteClass.RESEARCH and self.research_yields and citizens_waiting
        await gate.enter(may_wait=not yields)
        return gate
