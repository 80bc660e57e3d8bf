# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Public policy: lawful purposes, what a view can hold, potential identifiers. No login, no data."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from hygie.governance.policy import (
    COARSENED,
    FORBIDDEN_PURPOSES,
    GATED_COLUMNS,
    PURPOSE_LABELS,
    selectable_columns,
)
from hygie.portal.deps import HubDep

router = APIRouter(prefix="/policy", tags=["policy"])


class PolicyOut(BaseModel):
    purposes: dict[str, str]
    forbidden_purposes: dict[str, str]
    tables: dict[str, list[str]]
    potential_identifiers: dict[str, dict[str, list[str]]]
    coarsened_by_default: dict[str, dict[str, str]]
    max_potential_identifiers: int
    disclosure_threshold: int
    reviewers_required: int
    project_max_days: int


@router.get(
    "",
    summary="The rules every project follows",
    openapi_extra={"x-hygie-audit": "not recorded: the platform's published rules, no data, no act"},
)
def policy(hub: HubDep) -> PolicyOut:
    s = hub.settings
    return PolicyOut(
        purposes={str(k): v for k, v in PURPOSE_LABELS.items()},
        forbidden_purposes=FORBIDDEN_PURPOSES,
        tables={t: list(c) for t, c in selectable_columns().items()},
        potential_identifiers={p.value: {t: list(c) for t, c in tables.items()} for p, tables in GATED_COLUMNS.items()},
        coarsened_by_default=COARSENED,
        max_potential_identifiers=s.max_potential_identifiers,
        disclosure_threshold=s.disclosure_threshold,
        reviewers_required=s.reviewers_required,
        project_max_days=s.project_max_days,
    )
