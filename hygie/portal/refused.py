# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Refused input on the record: validation errors (422) and bodies too large (413), rate-limited per source.

A refusal a service already recorded (a governance act's :class:`~hygie.governance.errors.Invalid`) is not
recorded twice. Every other 422 or 413 answer — a request the schema refuses, a page form sent back with its
errors, a body past its limit, a page form refused for a bad or missing CSRF token (403, marked by the page with
:func:`mark_refused`) — leaves one ``request.refused`` event: the route's template (``/projects/{id}``,
never the path with its values), the status and the kind of fault, never what was submitted. The caller is not
identified yet when such a request is refused, so the event's actor is ``anonymous``.

At most ``refused_records_per_minute`` such events per client address and minute: a flood of bad requests
cannot fill the record. The ones beyond are counted, and the count is recorded with the next event from that
address (``suppressed``). The answer itself never changes.

The budget is kept in each portal process's memory, on purpose: it bounds how many refusals are written to the
record (at most ``refused_records_per_minute`` per address and process), and keeping its count in the database would
itself cost one write per refused request, which is what it is there to prevent. It is not a security throttle (the
answer never depends on it); sign-in, enrolment and breach-check limits live in the database
(:mod:`hygie.governance.limits`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hygie.audit import Outcome, record_now
from hygie.governance.throttle import client_address
from hygie.hub import Hub

log = structlog.get_logger("hygie.portal.refused")

RECORDED_STATUSES = frozenset({413, 422})
WINDOW_SECONDS = 60.0
REFUSED_MARK = "hygie_refused_input"
"""Request state key: set on a refusal of input answered with another status (a form's CSRF token, 403)."""


def mark_refused(state: Any, reason: str) -> None:
    """Have this request's answer recorded as refused input whatever its status (``state`` is ``request.state``);
    ``reason`` names the fault, never a submitted value."""
    setattr(state, REFUSED_MARK, True)
    state.hygie_refusal = reason


def refusal_reason(errors: Sequence[Any]) -> str:
    """The kinds of fault of a validation error (``missing``, ``string_too_long``…), never values or keys."""
    kinds = sorted({str(e.get("type", "invalid")) for e in errors if isinstance(e, dict)})
    return "invalid " + ", ".join(kinds[:5]) if kinds else "invalid request"


class RefusalBudget:
    """How many refused requests of one source may still be recorded in the current minute."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_sources: int = 10_000):
        self.per_minute = per_minute
        self.clock = clock
        self.max_sources = max_sources
        self._windows: dict[str, tuple[float, int, int]] = {}
        """source → (window start, recorded in it, suppressed since the last recorded one)"""
        self._lock = threading.Lock()

    def take(self, source: str) -> int | None:
        """None: do not record (over budget, counted); else record now, with this many suppressed before it."""
        now = self.clock()
        with self._lock:
            start, used, suppressed = self._windows.get(source, (now, 0, 0))
            if now - start >= WINDOW_SECONDS:
                start, used = now, 0
            if used >= self.per_minute:
                self._windows[source] = (start, used, suppressed + 1)
                return None
            self._windows[source] = (start, used + 1, 0)
            if len(self._windows) > self.max_sources:
                for key in [k for k, v in self._windows.items() if now - v[0] >= WINDOW_SECONDS][: self.max_sources]:
                    del self._windows[key]
            return suppressed


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The matched route's path template, or ``unmatched`` (the path itself may carry values: never recorded)."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    for candidate in _flat(routes):
        try:
            match, _ = candidate.matches(scope)
        except Exception:  # a route of a kind that cannot match a bare scope: not this one
            log.debug("route not matched", route=type(candidate).__name__)
            continue
        template = getattr(candidate, "path_format", None) or getattr(candidate, "path", None)
        if match is Match.FULL and template:
            return str(template)
    return "unmatched"


def _flat(routes: Sequence[Any]) -> Iterator[Any]:
    # FastAPI includes routers as branches; their effective routes carry the full path templates.
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


class RefusedRecorder:
    def __init__(self, app: ASGIApp, *, hub: Hub, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.hub = hub
        self.routes = routes
        self.budget = RefusalBudget(hub.settings.refused_records_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status in RECORDED_STATUSES or (scope.get("state") or {}).get(REFUSED_MARK):
                    await self._record(scope, status)
            await send(message)

        await self.app(scope, receive, watched)

    async def _record(self, scope: Scope, status: int) -> None:
        state = scope.get("state") or {}
        if state.get("hygie_recorded"):
            return
        client = scope.get("client")
        source = client_address(str(client[0]) if client else None)
        suppressed = self.budget.take(source)
        if suppressed is None:
            return
        reason = state.get("hygie_refusal") or ("body too large" if status == 413 else "form or request refused")
        detail: dict[str, Any] = {"route": route_template(self.routes, scope), "method": scope.get("method"),
                                  "status": status, "reason": reason}  # fmt: skip
        if suppressed:
            detail["suppressed"] = suppressed
        try:
            await run_in_threadpool(record_now, self.hub.session, actor="anonymous", action="request.refused",
                                    outcome=Outcome.FAILED, detail=detail)  # fmt: skip
        except Exception:
            # The refusal stands whatever happens to its record; a failing database is the breakers' business.
            log.exception("refused request not recorded", status=status)
