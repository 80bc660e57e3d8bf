"""Every JSON request body of the API refuses fields it does not declare (hygie/portal/bodies.py): a route added
with a model that forgets it fails here, before the black-box sweep (tests/security/test_bad_input.py) would."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hygie.portal.bodies import RequestBody
from hygie.portal.routes import (
    accounts,
    alerts,
    analysis,
    audit_search,
    breach,
    citizens,
    dummy,
    policy,
    projects,
    register,
    reimbursements,
)

ROUTERS = [
    accounts,
    alerts,
    analysis,
    audit_search,
    breach,
    citizens,
    dummy,
    policy,
    projects,
    register,
    reimbursements,
]


def body_params(dependant: Dependant) -> list[Any]:
    return [*dependant.body_params, *(p for d in dependant.dependencies for p in body_params(d))]


def body_models() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for module in ROUTERS:
        for route in module.router.routes:
            if not isinstance(route, APIRoute):
                continue
            for param in body_params(route.dependant):
                annotation = param.field_info.annotation
                if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                    found.append((f"{sorted(route.methods)[0]} {route.path}", annotation))
    return found


def test_the_routes_have_json_bodies() -> None:
    assert len(body_models()) >= 20


@pytest.mark.parametrize(("route", "model"), body_models(), ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_every_body_refuses_unknown_fields(route: str, model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid", f"{route}: {model.__name__} ignores unknown fields"
    # The API's own models derive from the shared base (the analysis spec, from hygie.analysis, forbids on its own).
    assert issubclass(model, RequestBody) or model.__module__.startswith("hygie.analysis"), (route, model)
