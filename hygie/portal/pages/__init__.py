"""The portal's pages: server-rendered French pages over the same services as the JSON API, styled with the
French state design system (DSFR, vendored in ``hygie/portal/static/dsfr`` by ``scripts/vendor-dsfr``).

``install(app)`` adds the pages and the static files to an application.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    from hygie.portal.pages import (
        airlock,
        analyses,
        citizen,
        enrolment,
        oversight,
        public,
        research,
        review,
        signin,
        violations,
    )

    for module in (public, signin, enrolment, citizen, research, analyses, airlock, review, oversight, violations):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
