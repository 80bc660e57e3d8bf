# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The ASGI middleware that puts admission, breakers, deadlines, draining and metrics in front of every route.

Order for one request: draining? → breakers of what the route needs → a slot of its class (or a queue place) →
the route, within its class's deadline → failures of a dependency become 503 and count against its breaker.
Every refusal is a 503 with Retry-After, a French page for browsers and JSON for API clients.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hygie.portal.resilience.admission import Admission, Gate, Shed
from hygie.portal.resilience.answers import Answer, Refusal, refusal, wants_html
from hygie.portal.resilience.breaker import Breaker
from hygie.portal.resilience.classes import Dependency, RouteClass, classify, dependencies, limits
from hygie.portal.resilience.drain import Drain
from hygie.portal.resilience.faults import dependency_of
from hygie.portal.resilience.metrics import Metrics

log = structlog.get_logger("hygie.portal.resilience")


class ResilienceMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        admission: Admission,
        breakers: dict[Dependency, Breaker],
        drain: Drain,
        metrics: Metrics,
        settings: Any,
    ) -> None:
        self.app = app
        self.admission = admission
        self.breakers = breakers
        self.drain = drain
        self.metrics = metrics
        self.settings = settings
        self._running: set[asyncio.Task[None]] = set()
        self._request_counts: dict[tuple[RouteClass, int], Any] = {}
        self._latencies: dict[RouteClass, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        route_class = classify(path)
        status = await self._handle(scope, receive, send, path, route_class)
        self._counted(route_class, status).inc()
        self._timed(route_class).observe(time.perf_counter() - started)

    def _counted(self, route_class: RouteClass, status: int) -> Any:
        """The metric's child for this class and status, looked up once (``labels()`` takes a lock and builds a key
        on every call: a share of a refusal's cost)."""
        child = self._request_counts.get((route_class, status))
        if child is None:
            child = self._request_counts[(route_class, status)] = self.metrics.requests.labels(
                route_class.value, str(status)
            )
        return child

    def _timed(self, route_class: RouteClass) -> Any:
        child = self._latencies.get(route_class)
        if child is None:
            child = self._latencies[route_class] = self.metrics.latency.labels(route_class.value)
        return child

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str, route_class: RouteClass) -> int:
        method: str = scope["method"]
        html = wants_html(scope["headers"])
        retry = limits(self.settings, route_class).retry_after_seconds

        if self.drain.draining and route_class is not RouteClass.HEALTH:
            self.metrics.shed.labels(route_class.value, "draining").inc()
            return await _answer(send, refusal(Refusal.DRAINING, method=method, retry_after=retry, html=html))
        for dependency in dependencies(path, route_class):
            if not await self.breakers[dependency].allow():
                self.metrics.shed.labels(route_class.value, f"{dependency} breaker open").inc()
                wait = max(retry, round(self.breakers[dependency].open_seconds))
                answer = refusal(Refusal.UNAVAILABLE, method=method, retry_after=wait, html=html, what=str(dependency))
                return await _answer(send, answer)
        try:
            gate = await self.admission.enter(route_class)
        except Shed as shed:
            self.metrics.shed.labels(route_class.value, shed.reason).inc()
            answer = refusal(Refusal.BUSY, method=method, retry_after=shed.retry_after, html=html, what=str(shed))
            return await _answer(send, answer)
        return await self._run(scope, receive, send, route_class, gate, html, retry)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, route_class: RouteClass, gate: Gate, html: bool, retry: int
    ) -> int:
        method: str = scope["method"]
        response = _Response(send)
        used = dependencies(scope["path"], route_class)
        self.drain.in_flight += 1
        task = asyncio.get_running_loop().create_task(_call(self.app, scope, receive, response.send))
        self._running.add(task)
        task.add_done_callback(lambda t: self._finished(t, gate, used))
        deadline = limits(self.settings, route_class).deadline_seconds
        try:
            await asyncio.wait_for(asyncio.shield(task), deadline)
        except TimeoutError:
            # The route's worker cannot be stopped; it keeps its slot until it ends, the client hears now.
            self.metrics.timeouts.labels(route_class.value).inc()
            if response.started:
                raise
            response.closed = True
            log.warning("deadline missed", route_class=route_class.value, seconds=deadline)
            return await _answer(send, refusal(Refusal.TIMEOUT, method=method, retry_after=retry, html=html, ran=True))
        except Exception as error:
            dependency = dependency_of(error)
            if dependency is None or response.started:
                raise
            self.metrics.failed.labels(dependency.value).inc()
            log.warning("dependency failed", dependency=str(dependency), error=type(error).__name__)
            wait = max(retry, round(self.breakers[dependency].open_seconds))
            answer = refusal(Refusal.UNAVAILABLE, method=method, retry_after=wait, html=html, ran=True, what=dependency)
            return await _answer(send, answer)
        return response.status

    def _finished(self, task: asyncio.Task[None], gate: Gate, used: tuple[Dependency, ...]) -> None:
        """When the route's work ends (possibly after its 503): free the slot, tell the breakers how it went."""
        self._running.discard(task)
        gate.leave()
        self.drain.in_flight -= 1
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            # Finished without a failure of what it needs: a success for those breakers (a run of them resets).
            for dependency in used:
                self.breakers[dependency].success()
            return
        failed = dependency_of(error)
        if failed is not None:
            self.breakers[failed].failure()


class _Response:
    """Passes the route's messages on, noting the status; drops them once a 503 was sent in their place."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.closed = False
        self.status = 500

    async def send(self, message: Message) -> None:
        if self.closed:
            return
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
        await self._send(message)


async def _call(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


async def _answer(send: Send, answer: Answer) -> int:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})
    return answer.status
