# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The portal stays up and never lies: admission control per class of route, deadlines, circuit breakers,
readiness, graceful draining and Prometheus metrics (see docs/portal.md, "Resilience").

:func:`install_resilience` wires it all into an app; the modules are:

- :mod:`.classes`: classes of route and what each depends on;
- :mod:`.admission`: bounded concurrency and short queues with deadlines per class;
- :mod:`.breaker`: a circuit breaker per dependency, probed when half-open;
- :mod:`.faults`: which dependency a failure belongs to (the one place that says so);
- :mod:`.deadline`: deadlines on blocking calls;
- :mod:`.answers`: the 503s (a French page for browsers, JSON for API clients);
- :mod:`.drain`: graceful shutdown;
- :mod:`.metrics`, :mod:`.readiness`: /metrics and /readyz;
- :mod:`.middleware`: the ASGI middleware that applies the above to every request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from hygie.hub import Hub
from hygie.portal.resilience.classes import Dependency
from hygie.portal.resilience.deadline import call_with_deadline, interrupt_after
from hygie.portal.resilience.drain import uvicorn_options
from hygie.portal.resilience.faults import DependencyUnavailable
from hygie.portal.resilience.middleware import ResilienceMiddleware
from hygie.portal.resilience.readiness import database_check, keystore_check, router, warehouse_check
from hygie.portal.resilience.state import Resilience

__all__ = [
    "Dependency",
    "DependencyUnavailable",
    "Resilience",
    "call_with_deadline",
    "install_resilience",
    "interrupt_after",
    "uvicorn_options",
]


def install_resilience(app: FastAPI, hub: Hub) -> Resilience:
    """Put the resilience middleware in front of every route of ``app``, add /readyz and /metrics, and hook draining
    into the app's lifespan (its own lifespan runs unchanged inside)."""
    resilience = Resilience.build(
        hub.settings,
        {
            Dependency.DATABASE: lambda: database_check(hub),
            Dependency.WAREHOUSE: lambda: warehouse_check(hub),
            Dependency.CUSTODY: lambda: keystore_check(hub),
        },
    )
    app.state.resilience = resilience
    app.include_router(router)
    app.add_middleware(
        ResilienceMiddleware,
        admission=resilience.admission,
        breakers=resilience.breakers,
        drain=resilience.drain,
        metrics=resilience.metrics,
        settings=hub.settings,
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        import asyncio

        async with inner(application) as state:
            resilience.drain.hook_signals(asyncio.get_running_loop())
            try:
                yield state
            finally:
                resilience.drain.unhook_signals()

    app.router.lifespan_context = lifespan
    return resilience
