# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Classes of route: each has its own admission limits, so heavy research work never takes citizens' capacity.

A path is classified by its prefix, before routing (the middleware runs outside the router). Unknown paths fall in
the governance class, which holds the staff's everyday work and has a moderate share; so does sign-in (/auth,
/connexion): its password hashing is costly, and a flood of sign-ins must not take the capacity of signed-in
citizens' reads.
"""

from __future__ import annotations

import re
from enum import StrEnum

from hygie.config import AdmissionLimits, Settings


class RouteClass(StrEnum):
    CITIZEN = "citizen"
    GOVERNANCE = "governance"
    RESEARCH = "research"
    PUBLIC = "public"
    HEALTH = "health"


class Dependency(StrEnum):
    DATABASE = "database"
    WAREHOUSE = "warehouse"
    """The encrypted Parquet warehouse and the DuckDB engine over it (views, analyses, membership files)."""
    CUSTODY = "custody"
    """The key custody (keystore): sign-in tokens, pseudonyms, blind indexes and the data keys of care data."""


HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# Heavy research work: analyses and jobs run the engine over project views; a view read or refresh decrypts data;
# dummy data is generated. The research pages that start analyses count too.
_RESEARCH = re.compile(
    r"^/(?:projects/[^/]+/(?:analyses|view|refresh|dummy[^/]*|outputs|jobs)|jobs|analyses|outputs)(?:/|$)"
    r"|^/recherche/.*(?:analyses|dummy|donnees-fictives)"
)
# Citizens: the API under /me, their pages under /citoyen, the public register, breach check and home pages.
_CITIZEN = re.compile(r"^/(?:me|citoyen|registre|verification-fuite)(?:/|$)|^/$")
_PUBLIC = re.compile(r"^/(?:register|audit|journal|breach-check|static|openapi\.json|docs|redoc)(?:/|$)")
# Citizens' paths that read the warehouse (care data, membership files) besides the research class.
_CITIZEN_WAREHOUSE = re.compile(r"^/(?:me/(?:data-uses|reimbursements)|citoyen/(?:remboursements|utilisations))")


def classify(path: str) -> RouteClass:
    if path in HEALTH_PATHS:
        return RouteClass.HEALTH
    if _RESEARCH.match(path):
        return RouteClass.RESEARCH
    if _CITIZEN.match(path):
        return RouteClass.CITIZEN
    if _PUBLIC.match(path):
        return RouteClass.PUBLIC
    return RouteClass.GOVERNANCE


def dependencies(path: str, route_class: RouteClass) -> tuple[Dependency, ...]:
    """What a request needs working; an open breaker on any of them answers 503 before the request is run."""
    if route_class is RouteClass.HEALTH or path.startswith("/static/") or path in {"/openapi.json", "/docs", "/redoc"}:
        return ()
    if route_class is RouteClass.RESEARCH or _CITIZEN_WAREHOUSE.match(path):
        return (Dependency.DATABASE, Dependency.WAREHOUSE, Dependency.CUSTODY)
    return (Dependency.DATABASE, Dependency.CUSTODY)


def limits(settings: Settings, route_class: RouteClass) -> AdmissionLimits:
    limits: AdmissionLimits = getattr(settings, f"admission_{route_class.value}")
    return limits
