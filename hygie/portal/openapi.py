# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The OpenAPI document says every answer a route can give, errors included.

Routes answer refusals and failures with ``{"detail": "..."}`` (and ``retry_after`` when shed): 401 without valid
credentials, 403 when refused, 404, 409 when the object's state forbids it, 422 when a rule is broken (FastAPI's
own 422 for malformed requests has a list in ``detail``), 429 when rate-limited, 503 when busy or a dependency is
down. Schemathesis checks every response against this document (tests/portal/test_openapi_conformance.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What was wrong, and what to do."},
        "retry_after": {"type": "integer", "description": "Seconds to wait before trying again (503)."},
    },
}
ERRORS = {
    "400": "The request cannot be answered as asked (e.g. a proof beyond the log's size)",
    "401": "Not signed in, or the session or token has expired",
    "403": "Refused (and recorded)",
    "404": "No such object",
    "409": "The object's state does not allow this",
    "429": "Too many requests: try again later",
    "503": "Busy or a dependency is unavailable: try again later (nothing was lost)",
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, summary=app.summary, description=app.description,
            routes=app.routes,
        )  # fmt: skip
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"] = ERROR_SCHEMA
        error = {"$ref": "#/components/schemas/Error"}
        for item in document.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                for status, text in ERRORS.items():
                    responses.setdefault(
                        status, {"description": text, "content": {"application/json": {"schema": error}}}
                    )
                invalid = responses.get("422")
                if invalid is None:
                    responses["422"] = {
                        "description": "A rule was broken",
                        "content": {"application/json": {"schema": error}},
                    }
                else:
                    content = invalid.setdefault("content", {}).setdefault("application/json", {})
                    existing = content.get("schema")
                    content["schema"] = {"anyOf": [existing, error]} if existing else error
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
