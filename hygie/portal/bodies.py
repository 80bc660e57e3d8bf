# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The base of every JSON request body of the API: a field the body does not declare is refused, never ignored.

A body that silently drops what it does not know hides a caller's mistake (a misspelt ``reason`` is not a reason)
and lets an attacker probe for fields. Every request model of hygie/portal/routes derives from :class:`RequestBody`
(tests/portal/test_request_bodies.py holds every route of the app to it), so the refusal is the validation error of
the schema: 422, without echoing the field's name or value, and recorded as refused input (hygie/portal/refused.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    """A JSON request body: unknown fields are refused (422)."""

    model_config = ConfigDict(extra="forbid")
