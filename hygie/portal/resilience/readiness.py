# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Probes of the dependencies, and the service endpoints: /readyz (may this instance take traffic?) and /metrics."""

from __future__ import annotations

import duckdb
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from hygie.audit import Outcome, record_now
from hygie.governance.errors import Denied
from hygie.governance.policy import Role
from hygie.hub import Hub
from hygie.keys import HUB_PSEUDONYM_KEY
from hygie.portal.deps import ActorDep
from hygie.portal.resilience.breaker import BreakerState, probe
from hygie.portal.resilience.state import Resilience


def database_check(hub: Hub) -> None:
    with hub.engine.connect() as connection:
        connection.execute(text("SELECT 1")).one()


def warehouse_check(hub: Hub) -> None:
    """The warehouse directory is readable and the query engine runs."""
    if not hub.warehouse.directory.is_dir():
        raise FileNotFoundError("the warehouse directory is missing")
    next(iter(hub.warehouse.directory.iterdir()), None)
    with duckdb.connect(config={"temp_directory": ""}) as con:
        con.execute("SELECT 1").fetchall()


def keystore_check(hub: Hub) -> None:
    """Keys are held and usable: every key listed, and the pseudonym key computes (a MAC of a fixed label, no data)."""
    hub.custody.all_keys()
    hub.custody.mac(HUB_PSEUDONYM_KEY, [b"hygie readiness probe"])


router = APIRouter(tags=["service"])

METRICS_READERS = frozenset({Role.OPERATOR, Role.AUDITOR})
"""Who may read /metrics on the API port: those who run the platform and those who check it."""

_NOT_RECORDED = "not recorded: service state only (no data, no identifier), polled by load balancers and monitoring"


@router.get(
    "/readyz",
    summary="Whether this instance can answer: database reachable, keys open, no breaker open, not draining",
    responses={503: {"description": "Not ready: the body says which check failed"}},
    openapi_extra={"x-hygie-audit": _NOT_RECORDED},
)
async def readyz(request: Request) -> JSONResponse:
    hub: Hub = request.app.state.hub
    resilience: Resilience = request.app.state.resilience
    seconds = hub.settings.dependency_probe_seconds
    checks = {
        "database": await probe(lambda: database_check(hub), seconds),
        "keystore": await probe(lambda: keystore_check(hub), seconds),
    }
    breakers = {str(d): str(b.state) for d, b in resilience.breakers.items()}
    ready = (
        all(problem is None for problem in checks.values())
        and all(b.state is BreakerState.CLOSED for b in resilience.breakers.values())
        and not resilience.drain.draining
    )
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
        "breakers": breakers,
        "draining": resilience.drain.draining,
    }
    return JSONResponse(body, status_code=200 if ready else 503, headers={"Cache-Control": "no-store"})


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latency, queue depth, in flight, load shed, breakers (an operator or "
    "auditor; or the separate listener of metrics_host:metrics_port, without credentials)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"description": "Not signed in"},
               403: {"description": "Neither an operator nor an auditor"}},
    openapi_extra={"x-hygie-audit": "not recorded: counters and timings of the service, no data, no identifier "
                   "(refused attempts are recorded)"},
)  # fmt: skip
async def metrics(request: Request, actor: ActorDep) -> Response:
    if actor.role not in METRICS_READERS:
        hub: Hub = request.app.state.hub
        message = f"a {actor.role_name or 'visitor'} may not read the service metrics; operators and auditors do"
        await run_in_threadpool(
            record_now, hub.session, actor=actor.ref, role=actor.role_name, action="service.metrics",
            outcome=Outcome.DENIED, detail={"reason": message},
        )  # fmt: skip
        error = Denied(message)
        error.recorded = True
        raise error
    resilience: Resilience = request.app.state.resilience
    return Response(resilience.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
