# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Every JSON request body of the API refuses fields it does not declare (hygie/portal/bodies.py): a route added
with a model that forgets it fails here, before the black-box sweep (tests/security/test_bad_input.py) would."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from hygie.portal import routes
from hygie.portal.bodies import RequestBody


def routers() -> list[Any]:
    """Every API route module (found, not listed: a module added later is held to the rule too)."""
    modules = [importlib.import_module(f"{routes.__name__}.{m.name}") for m in pkgutil.iter_modules(routes.__path__)]
    return [module.router for module in modules if hasattr(module, "router")]


def body_params(dependant: Dependant) -> list[Any]:
    return [*dependant.body_params, *(p for d in dependant.dependencies for p in body_params(d))]


def body_models() -> list[tuple[str, type[BaseModel]]]:
    found = []
    for router in routers():
        for route in router.routes:
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
