# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
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
        control_leads,
        control_rate,
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
    app.include_router(control_rate.router)  # the improper-payment rate (hygie.control)
    app.include_router(control_leads.router)  # leads found by rules, with their evidence (hygie.control)
    app.include_router(control_leads.approvals)  # second persons' decisions on lifting a lead's pseudonym
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
