"""The FastAPI application: one hub, the governance API, the audit log's public endpoints."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hygie.governance.errors import GovernanceError
from hygie.hub import Hub
from hygie.portal.routes import accounts, citizens, policy, projects


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(
        title="Hygie",
        summary="Sovereign platform for national health-insurance data",
        description="Purpose-bound projects over pseudonymised, encrypted national claims. Every act is recorded.",
        version="0.1.0",
    )
    app.state.hub = hub

    @app.exception_handler(GovernanceError)
    async def governance_error(_request: Request, exc: GovernanceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.get("/healthz", tags=["service"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(accounts.router)
    app.include_router(citizens.router)
    app.include_router(projects.router)
    app.include_router(policy.router)
    _include_audit(app, hub)
    return app


def _include_audit(app: FastAPI, hub: Hub) -> None:
    try:
        from hygie.audit import http as audit_http
    except ImportError:  # the transparency log's endpoints arrive with the audit layer
        return
    app.include_router(audit_http.router)
    app.dependency_overrides[audit_http.get_hub] = lambda: hub
