# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The FastAPI application: one hub, the governance API, the audit log's public endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import start_http_server
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hygie.governance.errors import GovernanceError
from hygie.governance.limits import Limited
from hygie.governance.throttle import SignInThrottle
from hygie.hub import Hub
from hygie.portal import openapi, pages
from hygie.portal.background import start_background
from hygie.portal.refused import RefusedRecorder, refusal_reason
from hygie.portal.resilience import Resilience, install_resilience
from hygie.portal.routes import accounts, alerts, audit_search, citizens, policy, projects, register, reimbursements
from hygie.portal.routes import analysis as analysis_routes
from hygie.portal.routes import breach as breach_routes
from hygie.portal.routes import control as control_routes
from hygie.portal.routes import dummy as dummy_data
from hygie.portal.routes.breach import upload_limit
from hygie.portal.uploads import BodyLimit, keep_uploads_in_memory

UPLOAD_PATHS = frozenset({"/breach/incidents", "/controle/violations/import"})
"""The routes that take a leaked file; every other body is held to ``request_body_max_kib``."""

log = structlog.get_logger("hygie.portal")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While serving: signed checkpoints every few seconds, DPO alerts evaluated, projects past their term ended
    (hygie.portal.background), unless ``serve_background_tasks`` leaves them to `hygie background`."""
    hub: Hub = app.state.hub
    listener = _start_metrics_listener(app, hub)
    stop_background = start_background(hub) if hub.settings.serve_background_tasks else None
    # Workers from the start: this process takes its share of the hub's queue, including jobs other processes
    # accepted, without waiting for an analysis request of its own.
    from hygie.analysis.worker import workers_for

    workers_for(hub)
    try:
        yield
    finally:
        if stop_background is not None:
            stop_background()
        if listener is not None:
            listener.shutdown()
            listener.server_close()
        if getattr(app.state, "owns_hub", False):
            hub.close()


def app_from_environment() -> FastAPI:
    """The application over the hub of the environment's settings, which it closes when it stops: the factory each
    server process of `hygie serve --workers N` calls."""
    from hygie.config import get_settings
    from hygie.console import open_hub

    app = create_app(open_hub(get_settings()))
    app.state.owns_hub = True
    return app


def _start_metrics_listener(app: FastAPI, hub: Hub) -> WSGIServer | None:
    """Prometheus metrics on a listener of their own (``metrics_host``, loopback by default, ``metrics_port``),
    apart from the API port; none unless ``metrics_port`` is set."""
    if hub.settings.metrics_port is None:
        return None
    resilience: Resilience = app.state.resilience
    server, _thread = start_http_server(
        hub.settings.metrics_port, addr=hub.settings.metrics_host, registry=resilience.metrics.registry
    )
    log.info("metrics listener", host=hub.settings.metrics_host, port=server.server_port)
    return server


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="Hygie",
        summary="Sovereign platform for national health-insurance data",
        description="Purpose-bound projects over pseudonymised, encrypted national claims. Every act is recorded.",
        version="0.1.0",
        # FastAPI's native OpenTelemetry: off. The portal's metrics are its own (Prometheus, on a listener apart);
        # traces of requests would leave with their paths for whatever provider a library configured, and checking
        # for one read the environment three times per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.hub = hub
    app.state.signin_throttle = SignInThrottle(hub.settings)

    @app.exception_handler(GovernanceError)
    async def governance_error(request: Request, exc: GovernanceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, Limited):  # sign-in backoff (Throttled) and every database limit: 429 with Retry-After
            headers = {"Retry-After": str(exc.retry_after)}
        # A service's refusal is on the record already (its act recorded it): not a second time as refused input.
        request.state.hygie_recorded = True
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # An address no route serves, asked by a browser: the pages' French "not found", not FastAPI's English JSON
        # (programs, which do not ask for HTML, keep the JSON).
        from hygie.portal.pages.web import not_found, wants_page

        if exc.status_code == 404 and wants_page(request):
            return not_found(request)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # What was wrong, where: never the submitted values (a NIR typed in the wrong field stays out of answers,
        # logs and the record). The refusal is recorded by RefusedRecorder.
        errors = [{"loc": _location(e), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        request.state.hygie_refusal = refusal_reason(exc.errors())
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
        # An id or number beyond what the database stores (2^63 on SQLite, 2^31 for PostgreSQL integers) is a
        # malformed request, not a server failure; the value itself is never echoed.
        return JSONResponse({"detail": "a number in the request is out of range"}, status_code=422)

    @app.exception_handler(StatementError)
    async def statement_error(request: Request, exc: StatementError) -> JSONResponse:
        if isinstance(exc.orig, OverflowError | DataError) or isinstance(exc, DataError):
            return await out_of_range(request, exc)
        # Anything else goes on to the resilience middleware: a fault of the database (resilience/faults.py
        # dependency_of: "disk image is malformed", I/O error, connection lost...) becomes its 503 with Retry-After
        # and counts against the database's breaker; any other is a bug, a 500.
        raise exc

    @app.get(
        "/healthz",
        tags=["service"],
        summary="The process is up",
        openapi_extra={"x-hygie-audit": "not recorded: says nothing about data or governance"},
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(accounts.router)
    app.include_router(citizens.router)
    app.include_router(projects.router)
    app.include_router(policy.router)
    app.include_router(register.router)
    app.include_router(alerts.router)
    app.include_router(reimbursements.router)
    app.include_router(audit_search.router)
    pages.install(app)
    from hygie.portal.pages import oidc as oidc_pages  # citizens' identity provider path (issue 14)

    app.include_router(oidc_pages.router)
    app.include_router(analysis_routes.router)
    app.include_router(breach_routes.router)
    app.include_router(dummy_data.router)
    app.include_router(control_routes.router)
    _include_audit(app)
    # An oversized body is refused before anything reads it.
    app.add_middleware(
        BodyLimit,
        limit=hub.settings.request_body_max_kib * 2**10,
        upload_limit=keep_uploads_in_memory(upload_limit(hub.settings)),
        uploads=UPLOAD_PATHS,
    )
    # Refused input (422, 413) is recorded, at most refused_records_per_minute per source.
    app.add_middleware(RefusedRecorder, hub=hub, routes=app.router.routes)
    # Outermost of the app's own layers: admission (and draining, breakers) decides before anything else runs, so a
    # request shed under overload costs no more than reading its path; an admitted one holds its slot for the
    # layers above too (recording a refused input is a database write).
    install_resilience(app, hub)
    openapi.install(app)
    return app


def _location(error: Any) -> list[Any]:
    """Where a validation error is; an unknown field's name is what the client typed: not echoed back."""
    loc = list(error.get("loc", ()))
    if error.get("type") == "extra_forbidden" and loc:
        loc[-1] = "(unknown field)"
    return loc


def _include_audit(app: FastAPI) -> None:
    from hygie.audit import http as audit_http

    app.include_router(audit_http.router)  # its get_hub reads app.state.hub
